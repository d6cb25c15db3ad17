"""keras_structconv.export.saved_model: the SavedModel holds the portable formulation (no
XLA-compiled functions, no bitcasts or complex numbers), serves through `TFSMLayer` and its
signature with the Keras outputs, and serves in a process with the other oneDNN setting."""

import keras
import numpy as np
import tensorflow as tf

import keras_structconv as ksc
from keras_structconv import export
from keras_structconv._internals import onednn_enabled
from tests.export.export_testing import (
    SPATIAL,
    WIDE,
    assert_matches,
    export_check,
    images_for,
    run_python,
)


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
