"""The harness must pass a correct layer and catch broken ones (wrong config, wrong gradient)."""

import importlib
import re

import keras
import pytest
import tensorflow as tf

from tests.conftest import REPO
from tests.layer_harness import (
    HARNESSES,
    LayerCase,
    LayerHarness,
    check_batch_size_one,
    check_config_round_trip,
    check_fit_step,
    check_fresh_process_load,
    check_keras_save_load,
    check_overfit,
    check_reference,
)
from tests.toy_factories import PACKAGE, ChannelScale  # y = x * w * scale: a correct toy layer


@keras.saving.register_keras_serializable(package=PACKAGE)
class ForgetfulScale(ChannelScale):
    """Broken: `get_config` drops `scale`, so a reloaded layer computes something else."""

    def get_config(self):
        config = super().get_config()
        del config["scale"]
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class WrongGradientScale(ChannelScale):
    """Broken: the forward is right, the gradient w.r.t. the input is doubled."""

    def call(self, x):
        @tf.custom_gradient
        def scaled(t, w):
            def grad(upstream):
                dw = tf.reduce_sum(upstream * t, axis=[0, 1, 2]) * self.scale
                return 2.0 * upstream * w * self.scale, dw

            return t * w * self.scale, grad

        return scaled(x, tf.convert_to_tensor(self.w))


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchMixingScale(ChannelScale):
    """Broken: subtracts the batch mean, so one image's output depends on the others."""

    def call(self, x):
        return (x - tf.reduce_mean(x, axis=0, keepdims=True)) * self.w * self.scale


@keras.saving.register_keras_serializable(package=PACKAGE)
class SignalDroppingScale(ChannelScale):
    """Broken: multiplies by a weight but throws the input away, so nothing can be learnt."""

    def call(self, x):
        return tf.zeros_like(x) + self.w * self.scale


def scale_reference(layer, x):
    return x * layer.w * layer.scale


def toy_case(layer_class, **kwargs):
    return LayerCase(
        factory=lambda: layer_class(value=0.5, scale=3.0),
        input_shape=(2, 5, 6, 4),
        reference=scale_reference,
        subprocess_load=False,
        **kwargs,
    )


class TestHarnessOnCorrectToyLayer(LayerHarness):
    """Positive control: the whole harness passes a correct layer (the overfit check included)."""

    case = toy_case(ChannelScale, overfit_steps=150)


def test_catches_wrong_get_config():
    with pytest.raises(AssertionError, match="misses arguments"):
        check_config_round_trip(toy_case(ForgetfulScale))


def test_catches_wrong_get_config_through_save_and_load(tmp_path):
    with pytest.raises(AssertionError, match="reload"):
        check_keras_save_load(toy_case(ForgetfulScale), tmp_path)


def test_catches_wrong_gradient():
    with pytest.raises(AssertionError, match="d/d input"):
        check_reference(toy_case(WrongGradientScale))


def test_catches_batch_mixing():
    with pytest.raises(AssertionError, match="batch 1"):
        check_batch_size_one(toy_case(BatchMixingScale))


def test_catches_weights_that_do_not_train():
    frozen = LayerCase(
        factory=lambda: ChannelScale(scale=0.0),  # zero scale: w receives a zero gradient
        input_shape=(2, 5, 6, 4),
        subprocess_load=False,
    )
    with pytest.raises(AssertionError, match="did not move"):
        check_fit_step(frozen)


def test_catches_layer_that_cannot_learn():
    with pytest.raises(AssertionError, match="training accuracy"):
        check_overfit(toy_case(SignalDroppingScale), steps=40)


def _harness_classes_in_the_suite():
    """"module.Class" of every `class TestX(LayerHarness):` written in a test module."""
    found = set()
    for path in (REPO / "tests").rglob("test_*.py"):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for name in re.findall(r"^class (\w+)\(LayerHarness\):", path.read_text(), re.M):
            found.add(f"{module}.{name}")
    return found


def test_every_harness_layer_loads_in_one_fresh_process(tmp_path):
    """The fresh-process half of the `.keras` check, for all the suite's harnesses at once."""
    classes = _harness_classes_in_the_suite()
    for name in classes:
        importlib.import_module(name.rsplit(".", 1)[0])  # registers its harness
    assert set(HARNESSES) == classes
    cases = {
        name.rsplit(".", 1)[1]: harness.case
        for name, harness in sorted(HARNESSES.items())
        if harness.case.subprocess_load
    }
    assert len(cases) == len(classes) - 1  # all but the toy layer, which only this module knows
    check_fresh_process_load(cases, tmp_path)


def test_fresh_process_load_catches_a_layer_the_package_does_not_register(tmp_path):
    # ChannelScale is registered by tests/toy_factories.py, which the subprocess never imports.
    with pytest.raises(AssertionError, match="fresh-process load failed"):
        check_fresh_process_load({"toy": toy_case(ChannelScale)}, tmp_path)
