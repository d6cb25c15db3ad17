"""The shared layer-test harness: every layer of the library passes these checks.

Use it by subclassing `LayerHarness` in the layer's test module with a `LayerCase`:

    from tests.layer_harness import LayerCase, LayerHarness

    def reference(layer, x):
        # plain TF written from the definition, reading the layer's variables
        return tf.nn.conv2d(x, layer.kernel, 1, "SAME")

    class TestMyConvHarness(LayerHarness):
        case = LayerCase(
            factory=lambda: MyConv(8, 3),
            input_shape=(2, 9, 9, 4),
            reference=reference,
        )

pytest then collects one test per check (`test_reference`, `test_config_round_trip`, ...). Each
check is also a plain function (`check_reference(case)`, ...) that raises `AssertionError` on a
failure, which `tests/test_layer_harness.py` uses to prove the harness catches broken layers.

The checks:
- forward equals `reference(layer, x)` and the gradients w.r.t. the input and every trainable
  weight equal the reference's gradients (`atol`/`rtol`, default 1e-4);
- `get_config` names every constructor argument, `from_config` rebuilds an equal layer;
- `.keras` save + `load_model` gives equal outputs in this process; and in a fresh subprocess
  that only imports `keras_structconv` (`check_fresh_process_load`, which
  `tests/test_layer_harness.py` runs once for every harness of the suite: one subprocess, one
  TensorFlow import, instead of one per layer);
- `model.export()` reloaded with `keras.layers.TFSMLayer(..., dtype="float32")` gives equal
  outputs, also with `None` spatial dims when `case.none_spatial`;
- a `fit` step under `float32`, `mixed_float16` and `mixed_bfloat16` (variables stay float32,
  every trainable weight moves, the loss is finite) and one with `jit_compile=True` (skipped, with
  the layer's reason, when the layer sets `supports_jit = False`);
- batch size 1 gives the same values as the first row of a larger batch, and trains;
- a tiny model using the layer overfits one batch of 64 real CIFAR-10 images (the embedded
  sample) to >= 90 % training accuracy within `case.overfit_steps` steps.
"""

import dataclasses
import inspect
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

REPO = Path(__file__).resolve().parents[1]
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
# Every `LayerHarness` subclass defined in a module imported so far, by "module.Class".
HARNESSES = {}


@dataclasses.dataclass
class LayerCase:
    """What the harness needs to know about a layer.

    Attributes:
        factory: builds a fresh, unbuilt layer (no arguments).
        input_shape: full input shape including the batch (batch >= 2), e.g. `(2, 9, 9, 8)`.
        reference: optional `reference(layer, x) -> tensor`, an independent computation of the
            layer's output (inference mode) from its variables; differentiable w.r.t. both.
        none_spatial: whether the layer accepts `None` height and width at build time.
        atol, rtol: tolerances of the reference and equality checks.
        may_not_move: names (substrings) of trainable weights allowed to stay put in a fit step.
        overfit: run the CIFAR-10 overfitting check.
        overfit_steps: step budget of that check.
        subprocess_load: run the fresh-subprocess `.keras` load (needs the layer to be importable
            from `keras_structconv` alone; toy test layers turn it off).
        other_spatial: a second (height, width) to feed the exported `None`-spatial model.
    """

    factory: Callable[[], keras.layers.Layer]
    input_shape: tuple
    reference: Callable | None = None
    none_spatial: bool = True
    atol: float = 1e-4
    rtol: float = 1e-4
    may_not_move: tuple = ()
    overfit: bool = True
    overfit_steps: int = 120
    subprocess_load: bool = True
    other_spatial: tuple | None = None

    def sample(self, seed=0, shape=None):
        rng = np.random.default_rng(seed)
        return rng.standard_normal(shape or self.input_shape).astype("float32")


# ----------------------------------------------------------------------------- helpers


def _single_layer_model(case, layer, spatial=None):
    """A functional model `Input -> layer` (spatial dims static unless `spatial` overrides)."""
    shape = tuple(case.input_shape[1:])
    if spatial is not None:
        shape = tuple(spatial) + shape[2:]
    inputs = keras.Input(shape=shape)
    outputs = layer(inputs)
    return keras.Model(inputs, outputs)


def _assert_close(actual, expected, case, what):
    actual = np.asarray(actual, dtype="float64")
    expected = np.asarray(expected, dtype="float64")
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, atol=case.atol, rtol=case.rtol, err_msg=what)


def forward_and_gradients(fn, x, variables, cotangent):
    """Output of `fn(x)` and the gradients of <output, cotangent> w.r.t. x and `variables`."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        loss = tf.reduce_sum(tf.cast(y, "float32") * cotangent)
    grads = tape.gradient(loss, [x] + list(variables))
    return y, grads


class _policy:
    """Context manager setting the global dtype policy, restoring float32 afterwards."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        keras.mixed_precision.set_global_policy(self.name)

    def __exit__(self, *exc):
        keras.mixed_precision.set_global_policy("float32")


# ----------------------------------------------------------------------------- checks


def check_reference(case):
    """Forward and gradients (input and every trainable weight) equal the reference's."""
    layer = case.factory()
    x = case.sample()
    y = layer(x, training=False)
    cotangent = tf.constant(np.random.default_rng(1).standard_normal(y.shape), "float32")
    weights = layer.trainable_variables
    y_layer, g_layer = forward_and_gradients(
        lambda t: layer(t, training=False), x, weights, cotangent
    )
    y_ref, g_ref = forward_and_gradients(lambda t: case.reference(layer, t), x, weights, cotangent)
    _assert_close(y_layer, y_ref, case, "forward vs reference")
    names = ["input"] + [w.path for w in weights]
    for name, a, b in zip(names, g_layer, g_ref, strict=True):
        assert (a is None) == (b is None), f"gradient w.r.t. {name}: one side is None"
        if a is not None:
            _assert_close(tf.convert_to_tensor(a), tf.convert_to_tensor(b), case, f"d/d {name}")


def check_config_round_trip(case):
    """`get_config` names every constructor argument; `from_config` rebuilds an equal layer."""
    layer = case.factory()
    x = case.sample()
    y = layer(x, training=False)
    config = layer.get_config()
    params = inspect.signature(type(layer).__init__).parameters
    missing = [
        name
        for name, p in params.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and name not in config
    ]
    assert not missing, f"get_config() of {type(layer).__name__} misses arguments {missing}"
    registered = keras.saving.get_registered_name(type(layer))
    assert keras.saving.get_registered_object(registered) is type(layer), (
        f"{type(layer).__name__} is not registered as serializable"
    )
    clone = type(layer).from_config(config)
    clone(x, training=False)
    assert clone.get_config() == config, "from_config(get_config()) changes the config"
    clone.set_weights(layer.get_weights())
    _assert_close(clone(x, training=False), y, case, "clone from config, same weights")
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is type(layer)


def check_keras_save_load(case, tmp_path):
    """`.keras` save + `load_model` gives equal outputs."""
    model = _single_layer_model(case, case.factory())
    x = case.sample()
    expected = model(x, training=False)
    path = Path(tmp_path) / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    _assert_close(loaded(x, training=False), expected, case, ".keras reload")


# Loads every file given on its command line (pairs FILE.keras FILE.npy) and writes each output
# beside its input; it imports nothing of the package but `keras_structconv`.
_FRESH_PROCESS_LOADER = textwrap.dedent(
    """
    import sys
    import numpy as np, keras, keras_structconv  # noqa: F401  (registers the layers)
    for model_path, input_path in zip(sys.argv[1::2], sys.argv[2::2]):
        model = keras.models.load_model(model_path)
        np.save(input_path.replace(".npy", "_out.npy"),
                np.asarray(model(np.load(input_path), training=False)))
    """
)


def check_fresh_process_load(cases, tmp_path):
    """Each case's `.keras` file, loaded in one fresh subprocess that imports only
    `keras_structconv`, gives the outputs of the model that saved it. `cases` maps a name to a
    `LayerCase`."""
    expected, arguments = {}, []
    for name, case in cases.items():
        model = _single_layer_model(case, case.factory())
        x = case.sample()
        expected[name] = model(x, training=False)
        model.save(tmp_path / f"{name}.keras")
        np.save(tmp_path / f"{name}.npy", x)
        arguments += [str(tmp_path / f"{name}.keras"), str(tmp_path / f"{name}.npy")]
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS_LOADER, *arguments],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"fresh-process load failed:\n{result.stderr[-3000:]}"
    for name, case in cases.items():
        _assert_close(np.load(tmp_path / f"{name}_out.npy"), expected[name], case,
                      f"{name}: .keras reload in a fresh process")


def check_export(case, tmp_path):
    """`model.export()` + `TFSMLayer(dtype="float32")` equal, `None` spatial dims if allowed."""
    spatial = (None, None) if case.none_spatial else None
    model = _single_layer_model(case, case.factory(), spatial=spatial)
    path = str(Path(tmp_path) / "exported")
    model.export(path, verbose=False)
    reloaded = keras.layers.TFSMLayer(path, call_endpoint="serve", dtype="float32")
    inputs = [case.sample()]
    if case.none_spatial:
        h, w = case.other_spatial or (case.input_shape[1] + 3, case.input_shape[2] + 1)
        inputs.append(case.sample(2, (1, h, w) + tuple(case.input_shape[3:])))
    for x in inputs:
        _assert_close(reloaded(x), model(x, training=False), case, f"SavedModel at {x.shape}")


def check_fit_step(case, policy="float32", jit_compile=False, batch_size=None):
    """One `fit` step: finite loss, float32 variables, the layer's compute dtype, weights move."""
    with _policy(policy):
        layer = case.factory()
        model = _single_layer_model(case, layer)
        shape = None if batch_size is None else (batch_size,) + tuple(case.input_shape[1:])
        x = case.sample(shape=shape)
        y_shape = model.compute_output_shape(x.shape)
        target = np.random.default_rng(3).standard_normal(y_shape).astype("float32")
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", jit_compile=jit_compile)
        expected_dtype = {"float32": "float32", "mixed_float16": "float16",
                          "mixed_bfloat16": "bfloat16"}[policy]
        assert layer.compute_dtype == expected_dtype, f"compute dtype {layer.compute_dtype}"
        out = layer(tf.constant(x), training=False)
        assert out.dtype == expected_dtype, f"output dtype {out.dtype} under {policy}"

        def stuck_weights():
            return [
                w.path for w, w0 in zip(layer.trainable_weights, start, strict=True)
                if np.array_equal(np.array(w), w0)
                and not any(s in w.path for s in case.may_not_move)
            ]

        start = [np.array(w) for w in layer.trainable_weights]
        history = {}
        for _ in range(4):  # a float16 loss scale may skip its first step(s) on overflow
            history = model.fit(x, target, batch_size=len(x), epochs=1, verbose=0).history
            if not stuck_weights():
                break
        assert np.all(np.isfinite(history["loss"])), f"loss {history['loss']} under {policy}"
        for w in layer.weights:
            if w.dtype.startswith("float"):
                assert w.dtype == "float32", f"variable {w.path} is {w.dtype} under {policy}"
        stuck = stuck_weights()
        assert not stuck, f"trainable weights that did not move under {policy}: {stuck}"


def check_batch_size_one(case):
    """Batch 1 computes what the first row of a larger batch computes, and trains."""
    layer = case.factory()
    x = case.sample()
    full = layer(x, training=False)
    single = layer(x[:1], training=False)
    _assert_close(single, full[:1], case, "batch 1 vs first row of the batch")
    check_fit_step(case, batch_size=1)


def _overfit_model(case, layer):
    """Image -> strided 3x3 stem to the layer's channels -> layer -> BN/ReLU -> GAP -> Dense."""
    channels = case.input_shape[-1]
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(channels, 3, strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
    x = keras.layers.ReLU()(x)
    x = layer(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.AveragePooling2D(4)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10)(x)
    return keras.Model(inputs, outputs)


def one_cifar_batch(n=64):
    """The first `n` images of the embedded CIFAR-10 sample (real images, all 10 classes)."""
    from keras_structconv.datasets import load_embedded_cifar10

    (x, y), _ = load_embedded_cifar10()
    order = np.random.default_rng(0).permutation(len(y))
    return x[order[:n]].astype("float32"), y[order[:n]].astype("int32")


def check_overfit(case, steps=None):
    """A tiny model using the layer overfits 64 CIFAR-10 images to >= 90 % accuracy."""
    keras.utils.set_random_seed(0)
    x, y = one_cifar_batch()
    model = _overfit_model(case, case.factory())
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    steps = steps or case.overfit_steps
    # One epoch of `steps` full-batch steps: the same updates as `steps` one-step epochs, without
    # Keras' per-epoch work (callbacks, iterator, logs), which made this check 4x slower.
    batches = tf.data.Dataset.from_tensors((x, y)).repeat(steps)
    model.fit(batches, epochs=1, shuffle=False, verbose=0)
    _, accuracy = model.evaluate(x, y, batch_size=len(x), verbose=0)
    assert accuracy >= 0.9, f"training accuracy {accuracy:.3f} < 0.90 after {steps} steps"


# ----------------------------------------------------------------------------- pytest glue


class LayerHarness:
    """Subclass with `case = LayerCase(...)`; pytest collects one test per check."""

    case: LayerCase

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        HARNESSES[f"{cls.__module__}.{cls.__name__}"] = cls

    def test_reference(self):
        if self.case.reference is None:
            pytest.skip("no reference function given for this case")
        check_reference(self.case)

    def test_config_round_trip(self):
        check_config_round_trip(self.case)

    def test_keras_save_load(self, tmp_path):
        check_keras_save_load(self.case, tmp_path)

    def test_export_tfsmlayer(self, tmp_path):
        check_export(self.case, tmp_path)

    @pytest.mark.parametrize("policy", POLICIES)
    def test_fit_step(self, policy):
        check_fit_step(self.case, policy)

    def test_fit_step_jit(self):
        layer = self.case.factory()
        if not layer.supports_jit:
            pytest.skip(f"{type(layer).__name__} sets supports_jit = False (see its docstring)")
        check_fit_step(self.case, jit_compile=True)

    def test_batch_size_one(self):
        check_batch_size_one(self.case)

    def test_overfit_one_cifar_batch(self):
        if not self.case.overfit:
            pytest.skip("overfitting check turned off for this case")
        check_overfit(self.case)
