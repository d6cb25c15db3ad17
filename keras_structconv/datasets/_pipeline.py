"""Pieces shared by the dataset pipelines: argument checks, seeds, normalisation.

Randomness: every augmentation draws from stateless random ops keyed by a per-element (or
per-batch) seed taken from `tf.data.Dataset.random(rerandomize_each_iteration=True)`. So a
fixed `seed` gives the same augmented stream in every run, even with parallel `map` calls, while
each epoch still sees new augmentations.
"""

import numpy as np
import tensorflow as tf


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


def check_seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
        raise ValueError(f"`seed` must be an integer or None. Received: seed={seed!r}")


def derived_seeds(seed, count):
    """`count` independent 31-bit seeds from `seed` (all None when `seed` is None)."""
    if seed is None:
        return [None] * count
    state = np.random.SeedSequence(int(seed)).generate_state(count)
    return [int(value) & 0x7FFFFFFF for value in state]


def seed_stream(seed):
    """Infinite dataset of int64 (2,) stateless-op seeds, new values every epoch."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)


def maybe_shuffle(dataset, shuffle, buffer_size, seed):
    if not shuffle:
        return dataset
    return dataset.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)


def standardize(images, mean, std):
    """float32 images in [0, 255] -> (images / 255 - mean) / std per channel."""
    mean = tf.constant(mean, tf.float32)
    std = tf.constant(std, tf.float32)
    return (images / 255.0 - mean) / std
