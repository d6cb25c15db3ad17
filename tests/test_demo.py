"""The demo's pieces: its pass/fail rule, the seeded subset, and saving into a new folder (the
end-to-end run and the reload check catching a changed weight are in test_cli.py)."""

import keras
import numpy as np

from keras_structconv import datasets, demo


def test_demo_status():
    match = {"a": 0.0, "b": demo.RELOAD_TOLERANCE}
    assert demo.demo_status(0.40, 0.35, match) == 0
    assert demo.demo_status(0.30, 0.35, match) == 1
    assert demo.demo_status(0.90, 0.35, {"a": 0.0, "b": 10 * demo.RELOAD_TOLERANCE}) == 1


def test_demo_data_subset_is_seeded_and_drawn_from_the_sample():
    (x_all, y_all), _ = datasets.load_embedded_cifar10()
    (x_train, y_train), (x_test, _) = demo.demo_data(limit=16, seed=3)
    assert len(x_train) == len(y_train) == len(x_test) == 16
    (x_again, _), _ = demo.demo_data(limit=16, seed=3)
    (x_other, _), _ = demo.demo_data(limit=16, seed=4)
    np.testing.assert_array_equal(x_train, x_again)
    assert not np.array_equal(x_train, x_other)
    flat = x_all.reshape(len(x_all), -1)
    for image, label in zip(x_train, y_train, strict=True):
        index = int(np.flatnonzero((flat == image.reshape(-1)).all(axis=1))[0])
        assert y_all[index] == label


def test_save_demo_model_creates_the_folder_and_both_reloads_match(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    images = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    expected = model.predict(images, verbose=0)
    keras_path, export_path = demo.save_demo_model(model, tmp_path / "new" / "folder")
    differences = demo.reload_differences(expected, images, keras_path, export_path)
    assert all(d <= demo.RELOAD_TOLERANCE for d in differences.values())
