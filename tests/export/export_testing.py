"""Helpers of the export tests: small models of each layer with random normalisation
statistics, inputs, the 1e-4 relative comparison, and a fresh Python process.

Normalisation statistics are drawn at random before every comparison: fresh BatchNorm layers
are identities at inference and would hide a wrong export. ONNX tests skip when tf2onnx or
onnxruntime is missing (the `export` extra). `zoo/export_check.py` converts every builder; its
`randomize_batch_norm` and `relative_error` serve here too.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_structconv as ksc
from tests.conftest import REPO

TOLERANCE = 1e-4
HAS_ONNX = all(
    importlib.util.find_spec(module) is not None for module in ("tf2onnx", "onnx", "onnxruntime")
)
needs_onnx = pytest.mark.skipif(
    not HAS_ONNX, reason="tf2onnx/onnxruntime not installed (pip install '.[export]')"
)
HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None


def load_export_check():
    path = REPO / "zoo" / "export_check.py"
    spec = importlib.util.spec_from_file_location("zoo_export_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export_check = load_export_check()


# PSConv2D (t = 4) runs blocks of fewer than 8 input channels as masked dense convs ("narrow");
# wider ones as grouped convs per slot with rolled outputs (oneDNN on) or as one conv per input
# block (oneDNN off): run these tests under both settings to cover the three formulations.
NARROW = 16  # 4 channels per block
WIDE = 32  # 8 channels per block
LAYER_CASES = {
    "PSConv2D-narrow-stride1": (NARROW, lambda: ksc.PSConv2D(NARROW, 3)),
    "PSConv2D-narrow-stride2": (NARROW, lambda: ksc.PSConv2D(NARROW, 3, strides=2)),
    "PSConv2D-wide-stride1": (WIDE, lambda: ksc.PSConv2D(WIDE, 3)),
    "PSConv2D-wide-stride2": (WIDE, lambda: ksc.PSConv2D(WIDE, 3, strides=2)),
    "TreeConv2D-paper": (16, lambda: ksc.TreeConv2D(16, 3)),
    "TreeConv2D-reference": (16, lambda: ksc.layers.ReferenceTreeConv2D(16, 3)),
    "TreeAttention": (16, lambda: ksc.TreeAttention(2)),
    "AOGBlock": (16, lambda: ksc.AOGBlock(16, 2)),
    "GroupedConv2D": (16, lambda: ksc.GroupedConv2D(16, 3, groups=4, padding="same")),
}
# Odd spatial size: the strided and padded paths meet an uneven edge.
SPATIAL = (9, 9)


def layer_model(name, seed=0):
    channels, factory = LAYER_CASES[name]
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((*SPATIAL, channels)), factory()])
    export_check.randomize_batch_norm(model, seed)
    return model


def images_for(model, batch=2, seed=1):
    shape = tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(seed).normal(size=(batch, *shape)).astype("float32")


def assert_matches(actual, expected, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error = export_check.relative_error(actual, expected)
    assert error <= TOLERANCE, f"{what}: max relative error {error:.2e} > {TOLERANCE}"


class SearchSorted(keras.layers.Layer):
    """A layer using `tf.searchsorted` (TF's LowerBound op), which neither TFLite's builtin set
    nor ONNX has."""

    def call(self, inputs):
        flat = tf.reshape(inputs, (tf.shape(inputs)[0], -1))
        positions = tf.searchsorted(tf.sort(flat), flat)
        return tf.cast(tf.reshape(positions, tf.shape(inputs)), inputs.dtype)


def searchsorted_model():
    return keras.Sequential([keras.Input((4, 4, 2)), SearchSorted(name="sorting_layer")])


def run_python(script, env=None):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=REPO, capture_output=True,
        text=True, timeout=300, env={**os.environ, **(env or {})},
    )
