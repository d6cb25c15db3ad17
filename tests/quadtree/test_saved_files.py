"""`.keras` files saved before the quadtree modules were split still load and compute the same.

`data/sparse_ops_v0.keras` and `data/decoder_v0.keras` were saved when the sparse layers lived in
one module `keras_structconv.quadtree.sparse` (a file) and `SparseResidualUnit` in
`keras_structconv.quadtree.decoder`; the files record those module paths. `sparse_ops_v0` chains
every sparse layer (SubmanifoldConv2D 3x3 with bias, SparseBatchNormalization, ReLU,
SparseResidualUnit with a projection shortcut and an L2 regulariser, SparseUpsampling2D,
SparseDenseAdd, a 1x1 head) with non-default BN statistics; `decoder_v0` is a 3-level
QuadtreeDecoder with "pred" propagation and dense outputs, whose active sets are neither empty nor
full. The `.npz` files hold the inputs and the outputs computed by the code that saved them.
"""

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_structconv.quadtree import (
    QuadtreeDecoder,
    SparseBatchNormalization,
    SparseDenseAdd,
    SparseResidualUnit,
    SparseUpsampling2D,
    SubmanifoldConv2D,
)
from tests.conftest import skip_if_saved_by_newer_keras

DATA = Path(__file__).parent / "data"


def saved_modules(path):
    """`{class_name: module}` of the objects recorded in a `.keras` file's config."""
    with zipfile.ZipFile(path) as archive:
        pending = [json.loads(archive.read("config.json"))]
    modules = {}
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if "class_name" in node and "module" in node:
                modules[node["class_name"]] = node["module"]
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return modules


def sparse_ops_inputs(arrays):
    return [arrays["features"], arrays["neighbours"], arrays["indices"], arrays["skip"]]


def test_the_fixtures_record_the_old_module_paths():
    sparse_modules = saved_modules(DATA / "sparse_ops_v0.keras")
    for name in ("SubmanifoldConv2D", "SparseBatchNormalization", "SparseUpsampling2D",
                 "SparseDenseAdd"):
        assert sparse_modules[name] == "keras_structconv.quadtree.sparse", name
    assert sparse_modules["SparseResidualUnit"] == "keras_structconv.quadtree.decoder"
    decoder_modules = saved_modules(DATA / "decoder_v0.keras")
    assert decoder_modules["QuadtreeDecoder"] == "keras_structconv.quadtree.decoder"


def test_loads_every_sparse_layer_saved_before_the_split():
    skip_if_saved_by_newer_keras(DATA / "sparse_ops_v0.keras")
    model = keras.models.load_model(DATA / "sparse_ops_v0.keras")
    arrays = np.load(DATA / "sparse_ops_v0.npz")
    expected_types = {
        "conv": SubmanifoldConv2D,
        "norm": SparseBatchNormalization,
        "unit": SparseResidualUnit,
        "up": SparseUpsampling2D,
        "add": SparseDenseAdd,
        "head": SubmanifoldConv2D,
    }
    for name, layer_type in expected_types.items():
        assert type(model.get_layer(name)) is layer_type, name
    unit = model.get_layer("unit")
    assert unit.shortcut_conv is not None and len(unit.losses) == 3  # L2 on three kernels
    outputs, child_indices = model(sparse_ops_inputs(arrays), training=False)
    np.testing.assert_allclose(outputs, arrays["outputs"], atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(child_indices, arrays["child_indices"])


@pytest.mark.parametrize("fixture", ["sparse_ops_v0", "decoder_v0"])
def test_a_file_saved_before_the_split_saves_again(tmp_path, fixture):
    skip_if_saved_by_newer_keras(DATA / f"{fixture}.keras")
    model = keras.models.load_model(DATA / f"{fixture}.keras")
    model.save(tmp_path / "again.keras")
    again = keras.models.load_model(tmp_path / "again.keras")
    assert [w.path for w in again.weights] == [w.path for w in model.weights]
    for ours, theirs in zip(again.weights, model.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.path)
    # Saved again, the file records where the classes live now.
    for name, module in saved_modules(tmp_path / "again.keras").items():
        registered = keras.saving.get_registered_object(f"keras_structconv>{name}")
        if registered is not None:
            assert module == registered.__module__, name


def test_loads_a_quadtree_decoder_saved_before_the_split():
    skip_if_saved_by_newer_keras(DATA / "decoder_v0.keras")
    model = keras.models.load_model(DATA / "decoder_v0.keras")
    arrays = np.load(DATA / "decoder_v0.npz")
    decoder = model.get_layer("decoder")
    assert type(decoder) is QuadtreeDecoder
    assert decoder.propagation == "pred" and decoder.output_mode == "dense"
    outputs = model([arrays["features_0"], arrays["features_1"]], training=False)
    for level in range(3):
        expected_mask = arrays[f"masks_{level}"]
        np.testing.assert_array_equal(outputs["masks"][level], expected_mask)
        np.testing.assert_allclose(
            outputs["logits"][level], arrays[f"logits_{level}"], atol=1e-5, rtol=1e-5
        )
    # The fixture is a real test of "pred" propagation: some, not all, sites are active.
    assert 0 < arrays["masks_0"].mean() < 1 and 0 < arrays["masks_1"].mean() < 1
