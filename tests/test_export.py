"""keras_structconv.export: the layers and one builder per family convert to TFLite with builtin
ops only and to ONNX (tf2onnx, opset 17), and the runtimes (LiteRT or tf.lite, onnxruntime) give
the Keras outputs to 1e-4 relative; the SavedModel export is the portable one; unsupported ops
are named with their layer; `load_model` resolves the package's classes in a fresh process.

Normalisation statistics are drawn at random before every comparison: fresh BatchNorm layers
are identities at inference and would hide a wrong export. ONNX tests skip when tf2onnx or
onnxruntime is missing (the `export` extra). `zoo/export_check.py` converts every builder.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_structconv as ksc
from keras_structconv import export
from keras_structconv._internals import onednn_enabled

REPO = Path(__file__).resolve().parents[1]
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
# block (oneDNN off): run this module under both settings to cover the three formulations.
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


# ------------------------------------------------------------------------------ layers
@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_converts_to_tflite_builtin_ops_and_matches(name):
    model = layer_model(name)
    x = images_for(model)
    flatbuffer = export.to_tflite(model)  # builtin ops only (the default)
    assert_matches(export.tflite_predict(flatbuffer, x), model.predict(x, verbose=0), name)


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_converts_to_tflite_with_dynamic_batch(name):
    """`batch_size=None`, as Keras' own exports trace: no static batch for a converter to fold
    shape-dependent ops with."""
    model = layer_model(name)
    x = images_for(model, batch=3)
    flatbuffer = export.to_tflite(model, batch_size=None)
    assert_matches(export.tflite_predict(flatbuffer, x), model.predict(x, verbose=0), name)


@needs_onnx
@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_converts_to_onnx_and_matches(name, tmp_path):
    model = layer_model(name)
    x = images_for(model, batch=3)
    path = tmp_path / "model.onnx"
    export.to_onnx(model, path, batch_size=None)
    assert_matches(export.onnx_predict(path, x), model.predict(x, verbose=0), name)


@pytest.mark.parametrize("interpreter", ["tensorflow", "litert"])
def test_tflite_predict_runs_in_both_interpreters(interpreter, tmp_path):
    if interpreter == "litert" and not HAS_LITERT:
        pytest.skip("ai-edge-litert not installed")
    model = layer_model("TreeAttention")
    x = images_for(model, batch=4)
    path = tmp_path / "nested" / "folder" / "model.tflite"
    flatbuffer = export.to_tflite(model, path)
    assert path.read_bytes() == flatbuffer
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.tflite"]  # no temp file left
    predicted = export.tflite_predict(path, x, interpreter=interpreter)
    assert_matches(predicted, model.predict(x, verbose=0), interpreter)


def test_multi_input_model_keeps_the_input_order(tmp_path):
    """Two inputs concatenated: swapping them would change the output."""
    keras.utils.set_random_seed(0)
    first, second = keras.Input((8, 8, 8), name="zeta"), keras.Input((8, 8, 24), name="alpha")
    mixed = keras.layers.Concatenate()([first, second])
    model = keras.Model([first, second], ksc.PSConv2D(WIDE, 3)(mixed))
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(2, 8, 8, 8)).astype("float32"),
         rng.normal(size=(2, 8, 8, 24)).astype("float32")]
    expected = model.predict(x, verbose=0)
    assert_matches(export.tflite_predict(export.to_tflite(model), x), expected, "TFLite")
    if HAS_ONNX:
        export.to_onnx(model, tmp_path / "model.onnx")
        assert_matches(export.onnx_predict(tmp_path / "model.onnx", x), expected, "ONNX")


def test_dict_outputs_come_back_by_name(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, NARROW))
    features = ksc.PSConv2D(NARROW, 3)(inputs)
    outputs = {"zeta": features, "alpha": keras.layers.GlobalAveragePooling2D()(features)}
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, NARROW)).astype("float32")
    expected = model.predict(x, verbose=0)
    converted = {"TFLite": export.tflite_predict(export.to_tflite(model), x)}
    if HAS_ONNX:
        export.to_onnx(model, tmp_path / "model.onnx")
        converted["ONNX"] = export.onnx_predict(tmp_path / "model.onnx", x)
    for runtime, outputs in converted.items():
        assert sorted(outputs) == ["alpha", "zeta"], runtime
        for key in outputs:
            assert_matches(outputs[key], expected[key], f"{runtime} {key}")


@needs_onnx
def test_onnx_graph_has_only_the_model_inputs(tmp_path):
    """`Normalization` with given statistics keeps them as captured constants, which tf2onnx
    alone turns into graph inputs (as in `keras.applications.EfficientNetB0`)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 5.0, 6.0]),
        keras.layers.Conv2D(NARROW, 1),
        ksc.PSConv2D(NARROW, 3),
    ])
    x = np.random.default_rng(0).normal(2.0, 2.0, size=(2, 8, 8, 3)).astype("float32")
    proto = export.to_onnx(model, tmp_path / "model.onnx")
    assert len(proto.graph.input) == 1, [graph_input.name for graph_input in proto.graph.input]
    assert_matches(export.onnx_predict(tmp_path / "model.onnx", x), model.predict(x, verbose=0),
                   "ONNX")


def test_unknown_spatial_size_needs_input_shape():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None, None, 16)), ksc.TreeConv2D(16, 3)])
    with pytest.raises(ValueError, match=r"input_shape.*Received: input_shape=None"):
        export.to_tflite(model)
    x = np.random.default_rng(0).normal(size=(2, 12, 10, 16)).astype("float32")
    flatbuffer = export.to_tflite(model, input_shape=(12, 10, 16))
    assert_matches(export.tflite_predict(flatbuffer, x), model.predict(x, verbose=0), "12x10")
    with pytest.raises(ValueError, match=r"batch_size.*Received: batch_size=0"):
        export.to_tflite(model, input_shape=(12, 10, 16), batch_size=0)


def test_fixed_batch_needs_a_multiple_of_it():
    model = layer_model("GroupedConv2D")
    flatbuffer = export.to_tflite(model, batch_size=2)
    x = images_for(model, batch=4)
    assert_matches(export.tflite_predict(flatbuffer, x), model.predict(x, verbose=0), "batch 2")
    with pytest.raises(ValueError, match="fixed batch size of 2"):
        export.tflite_predict(flatbuffer, x[:3])


# --------------------------------------------------------------------- unsupported ops
class SearchSorted(keras.layers.Layer):
    """A layer using `tf.searchsorted` (TF's LowerBound op), which neither TFLite's builtin set
    nor ONNX has."""

    def call(self, inputs):
        flat = tf.reshape(inputs, (tf.shape(inputs)[0], -1))
        positions = tf.searchsorted(tf.sort(flat), flat)
        return tf.cast(tf.reshape(positions, tf.shape(inputs)), inputs.dtype)


def searchsorted_model():
    return keras.Sequential([keras.Input((4, 4, 2)), SearchSorted(name="sorting_layer")])


def test_tflite_error_names_the_unsupported_op_and_its_layer():
    with pytest.raises(export.UnsupportedOpsError) as caught:
        export.to_tflite(searchsorted_model())
    assert caught.value.ops == ("LowerBound",)
    assert "sorting_layer" in str(caught.value)
    assert "builtin_only=False" in str(caught.value)


@needs_onnx
def test_onnx_error_names_the_unsupported_op_and_writes_nothing(tmp_path):
    path = tmp_path / "model.onnx"
    with pytest.raises(export.UnsupportedOpsError) as caught:
        export.to_onnx(searchsorted_model(), path)
    assert caught.value.ops == ("LowerBound",)
    assert "sorting_layer" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_missing_tf2onnx_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # `import tf2onnx` now raises
    with pytest.raises(ImportError, match=r"keras_structconv\[export\]"):
        export.to_onnx(layer_model("GroupedConv2D"), tmp_path / "model.onnx")


# --------------------------------------------------------------------------- SavedModel
def saved_model_functions(path):
    """(op types, names of XLA-compiled functions) of the serving signature's graph."""
    graph_def = tf.saved_model.load(str(path)).signatures["serve"].graph.as_graph_def()
    functions = list(graph_def.library.function)
    ops = {node.op for node in graph_def.node}
    ops.update(node.op for function in functions for node in function.node_def)
    compiled = [f.signature.name for f in functions if f.attr["_XlaMustCompile"].b]
    return ops, compiled


def test_saved_model_export_is_portable_and_serves(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((*SPATIAL, WIDE)),
        ksc.PSConv2D(WIDE, 3),
        ksc.TreeConv2D(WIDE, 3),
        ksc.layers.ReferenceTreeConv2D(WIDE, 3),
        ksc.TreeAttention(2),
        ksc.AOGBlock(WIDE, 2),
        ksc.GroupedConv2D(WIDE, 3, groups=4, padding="same"),
    ])
    export_check.randomize_batch_norm(model)
    path = tmp_path / "savedmodel"
    export.export_saved_model(model, path)
    ops, compiled = saved_model_functions(path)
    assert compiled == []
    assert not ops & {"Bitcast", "Complex", "Real", "Imag", "XlaOptimizationBarrier"}, ops
    x = images_for(model, batch=3)  # the batch axis stays dynamic
    expected = model.predict(x, verbose=0)
    serving = keras.layers.TFSMLayer(str(path), call_endpoint="serve", dtype="float32")
    assert_matches(serving(x), expected, "TFSMLayer")
    signature = tf.saved_model.load(str(path)).signatures["serve"]
    (output,) = signature(tf.constant(x)).values()
    assert_matches(output, expected, "serving signature")


def test_saved_model_serves_under_the_other_onednn_setting(tmp_path):
    """Exported where oneDNN is on (or off), served where it is off (or on): TF-Serving on a CPU
    without AVX-512 runs TensorFlow's own kernels, which lack some grouped-convolution forms."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((*SPATIAL, WIDE)),
        ksc.GroupedConv2D(WIDE, 3, groups=4, padding="same"),
        ksc.PSConv2D(WIDE, 3, use_bias=True),
    ])
    export_check.randomize_batch_norm(model)
    export.export_saved_model(model, tmp_path / "savedmodel")
    x = images_for(model, batch=3)
    np.save(tmp_path / "x.npy", x)
    other = "0" if onednn_enabled() else "1"
    served = run_python(f"""
        import numpy as np, tensorflow as tf
        serve = tf.saved_model.load({str(tmp_path / "savedmodel")!r}).signatures["serve"]
        (y,) = serve(tf.constant(np.load({str(tmp_path / "x.npy")!r}))).values()
        np.save({str(tmp_path / "y.npy")!r}, y.numpy())
        """, env={"TF_ENABLE_ONEDNN_OPTS": other})
    assert served.returncode == 0, served.stderr[-3000:]
    assert_matches(np.load(tmp_path / "y.npy"), model.predict(x, verbose=0), f"oneDNN={other}")


# ------------------------------------------------------------------------------ loading
def tam_model_file(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 8)), ksc.TreeAttention(2)])
    path = tmp_path / "tam.keras"
    model.save(path)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 8)).astype("float32")
    return model, path, x


def run_python(script, env=None):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=REPO, capture_output=True,
        text=True, timeout=300, env={**os.environ, **(env or {})},
    )


def test_load_model_in_a_fresh_process(tmp_path):
    model, path, x = tam_model_file(tmp_path)
    np.save(tmp_path / "x.npy", x)
    plain = run_python(f"""
        import sys, keras
        keras.saving.load_model({str(path)!r})
        assert "keras_structconv" not in sys.modules
        """)
    assert plain.returncode != 0
    assert "Could not locate class 'TreeAttention'" in plain.stderr
    ours = run_python(f"""
        import numpy as np
        from keras_structconv.export import load_model
        model = load_model({str(path)!r})
        np.save({str(tmp_path / "y.npy")!r}, model.predict(np.load({str(tmp_path / "x.npy")!r})))
        """)
    assert ours.returncode == 0, ours.stderr[-3000:]
    assert_matches(np.load(tmp_path / "y.npy"), model.predict(x, verbose=0), "reloaded")


def test_load_model_names_classes_this_version_lacks(tmp_path):
    _, path, _ = tam_model_file(tmp_path)
    assert export.registered_names_in_file(path) == ["keras_structconv>TreeAttention"]
    hint = export.missing_package_hint(path)
    assert "import keras_structconv" in hint and "keras_structconv.load_model" in hint
    renamed = tmp_path / "renamed.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(renamed, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "config.json":
                config = content.decode().replace("TreeAttention", "TreeAttentionV9")
                content = json.dumps(json.loads(config)).encode()
            target.writestr(item, content)
    with pytest.raises(TypeError, match=r"keras_structconv>TreeAttentionV9.*another version"):
        export.load_model(renamed)


def test_load_model_is_at_the_top_level():
    assert ksc.load_model is export.load_model


# ----------------------------------------------------------------------------- builders
# The zoo's CIFAR models (each operator in a whole network); `python zoo/export_check.py`
# checks every builder (docs/deploying.md has its table), which CI time does not allow here.
BUILDER_FAMILIES = ["PSResNet20", "TreeResNet20", "TAMResNet20"]


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILDER_FAMILIES)
def test_builder_converts_and_matches(name, tmp_path):
    assert name in export_check.builders()  # the script checks it too
    builder = getattr(ksc.models, name)
    row = export_check.check_builder(name, builder, tmp_path, with_onnx=HAS_ONNX)
    assert row["tflite"] == "ok", row
    assert row["tflite_error"] <= TOLERANCE
    if HAS_ONNX:
        assert row["onnx"] == "ok", row


@pytest.mark.slow
def test_export_check_script_prints_the_table(tmp_path, capsys):
    """The script end to end on ResNet-20: one passing row, Markdown and JSON."""
    options = [] if HAS_ONNX else ["--no-onnx"]
    status = export_check.main(
        ["--only", "resnet20", "--no-qgn", "--json", str(tmp_path / "rows.json"), *options]
    )
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert status == 0, rows
    assert [row["model"] for row in rows] == ["ResNet20"]
    assert rows[0]["tflite_error"] <= TOLERANCE
    assert "| ResNet20 | 271,098 | 32x32x3 | ok |" in capsys.readouterr().out
