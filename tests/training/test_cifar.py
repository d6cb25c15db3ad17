"""The zoo's CIFAR-10 recipe (keras_structconv.training.cifar): decoupled weight decay only on
rank >= 2 variables, the warm-up + cosine schedule against its formula, the model's built-in
standardisation against the data pipeline's, and a data stream that can start at any epoch."""

import math

import keras
import numpy as np
import pytest

from keras_structconv import datasets, training
from keras_structconv.training import cifar


def small_model():
    keras.utils.set_random_seed(0)
    images = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, use_bias=True)(images)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.PReLU(shared_axes=[1, 2])(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(images, keras.layers.Dense(3)(x))


def test_weight_decay_is_decoupled_and_skips_rank_one_variables():
    model = small_model()
    decayed, excluded = cifar.decayed_variables(model)
    assert [tuple(v.shape) for v in decayed] == [(3, 3, 3, 4), (4, 3)]
    # Conv bias, BN gamma and beta, dense bias, and PReLU's slopes, stored as (1, 1, 4).
    assert sorted(tuple(v.shape) for v in excluded) == [(1, 1, 4), (3,), (4,), (4,), (4,)]

    optimizer = cifar.cifar_optimizer(model, total_steps=10, warmup_steps=2,
                                      peak_learning_rate=0.5, weight_decay=0.1)
    before = [np.array(v.numpy()) for v in model.trainable_variables]
    # Steps with zero gradients: the momentum buffers stay 0, so only the decay acts:
    # var <- var * (1 - lr_t * wd) for decayed variables, unchanged for the others.
    zeros = [np.zeros(v.shape, "float32") for v in model.trainable_variables]
    for _ in range(3):
        optimizer.apply_gradients(zip(zeros, model.trainable_variables, strict=True))
    rates = [0.0, 0.25, 0.5]  # warm-up 0 -> 0.5 over 2 steps; the rate of steps 0, 1, 2
    factor = np.prod([1 - rate * 0.1 for rate in rates])
    decayed_ids = {id(v) for v in decayed}
    for variable, initial in zip(model.trainable_variables, before, strict=True):
        expected = initial * factor if id(variable) in decayed_ids else initial
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6)


def test_schedule_is_linear_warmup_then_cosine_to_zero():
    model = small_model()
    optimizer = cifar.cifar_optimizer(model, total_steps=100, warmup_steps=10)
    assert optimizer.nesterov and optimizer.momentum == pytest.approx(0.9)
    assert optimizer.weight_decay == pytest.approx(5e-4)
    for step in (0, 5, 10, 11, 55, 99, 100):
        optimizer.iterations.assign(step)
        if step <= 10:
            expected = 0.1 * step / 10
        else:
            expected = 0.1 * 0.5 * (1 + math.cos(math.pi * (step - 10) / 90))
        assert training.current_learning_rate(optimizer) == pytest.approx(expected, abs=1e-7)
    with pytest.raises(ValueError, match=r"Received: warmup_steps=100"):
        cifar.cifar_optimizer(model, total_steps=100, warmup_steps=100)


def test_model_standardises_raw_pixels_like_the_data_pipeline():
    (x, y), _ = datasets.load_embedded_cifar10()
    model = cifar.cifar_model("resnet20", seed=0)
    standardization = model.get_layer("cifar10_standardization")
    inside = np.asarray(standardization(x[:16].astype("float32")))
    pipeline = next(iter(datasets.cifar10_dataset(x[:16], y[:16], batch_size=16)))[0].numpy()
    np.testing.assert_allclose(inside, pipeline, rtol=1e-5, atol=1e-5)
    # uint8 and float inputs give the same probabilities.
    np.testing.assert_allclose(model.predict(x[:4], verbose=0),
                               model.predict(x[:4].astype("float32"), verbose=0), atol=1e-7)
    assert model.name == "resnet20_cifar10" and model.count_params() == 271_098


def test_training_stream_starts_at_any_epoch_with_the_same_batches():
    (x, y), _ = datasets.load_embedded_cifar10()
    x, y = x[::20], y[::20]  # 100 images, 10 of each class
    whole = list(cifar.training_dataset(x, y, seed=5, epochs=3, batch_size=32))
    resumed = list(cifar.training_dataset(x, y, seed=5, epochs=3, start_epoch=2, batch_size=32))
    assert len(whole) == 9 and len(resumed) == 3  # 3 full batches an epoch (4 images dropped)
    for (a, la), (b, lb) in zip(whole[6:], resumed, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    # Each epoch is a new permutation with new augmentations, of raw pixels in [0, 255].
    first = np.concatenate([labels for _, labels in whole[:3]])
    second = np.concatenate([labels for _, labels in whole[3:6]])
    assert not np.array_equal(first, second)
    assert whole[0][0].dtype == "float32" and float(np.max(whole[0][0])) > 1.0
    # The unaugmented stream holds the images themselves, each at most once an epoch.
    plain = list(cifar.training_dataset(x, y, seed=5, epochs=1, batch_size=32, augment=False))
    images = np.concatenate([batch for batch, _ in plain]).astype("uint8")
    index = {image.tobytes(): i for i, image in enumerate(x)}
    positions = [index[image.tobytes()] for image in images]
    assert len(set(positions)) == 96
    np.testing.assert_array_equal(np.concatenate([lab for _, lab in plain]), y[positions])
    with pytest.raises(ValueError, match=r"Received: start_epoch=4"):
        cifar.training_dataset(x, y, seed=5, epochs=3, start_epoch=4)
    with pytest.raises(ValueError, match=r"Received: num_images=10"):
        cifar.steps_per_epoch(10, 32)
