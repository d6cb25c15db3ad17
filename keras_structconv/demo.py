"""The demo behind `structconv demo`: the zoo's trained operators loaded through the hub and
evaluated on the embedded test images beside the baseline, then a CIFAR ResNet-20 (He et al.,
2016) trained on the 2,000-image CIFAR-10 sample embedded in the package, saved as `.keras` and
as a SavedModel, and both reloads checked against the trained model's outputs.

Example:

```python
from keras_structconv import datasets, demo

_, (x_test, y_test) = datasets.load_embedded_cifar10()
for entry in demo.zoo_models():  # the manifest's *_cifar10 models, the baseline first
    print(entry["handle"], demo.zoo_accuracy(entry["handle"], x_test, y_test))

(x_train, y_train), (x_test, y_test) = demo.demo_data(limit=256, seed=0)
model = demo.train_demo_model(x_train, y_train, epochs=1, batch_size=64, seed=0)
test_images = demo.standardized(x_test)
probabilities = model.predict(test_images)
keras_path, export_path = demo.save_demo_model(model, "out")
print(demo.reload_differences(probabilities, test_images, keras_path, export_path))
```
"""

from pathlib import Path

import keras
import numpy as np

from keras_structconv import datasets, hub, models

DEMO_EPOCHS = 10
DEMO_BATCH_SIZE = 32
DEMO_PEAK_LR = 0.1
DEMO_MIN_ACCURACY = 0.35
# Largest |difference| of the softmax outputs tolerated between the trained model and a reload.
RELOAD_TOLERANCE = 1e-4
# Zoo models: names in the hub manifest, and the baseline the operators are shown beside.
ZOO_SUFFIX = "_cifar10"
ZOO_BASELINE = "resnet20_cifar10"
# Largest |measured - reported| accuracy on the 500 embedded test images (1 image): the same
# weights give the same predictions but for near-ties float rounding may flip.
ZOO_TOLERANCE = 0.002


def train_demo_model(images, labels, epochs, batch_size, seed):
    """ResNet-20 trained with the standard CIFAR augmentation (pad-4 crop, flip), progress bar."""
    train = datasets.cifar10_dataset(
        images, labels, batch_size=batch_size, augment=True, shuffle=True, seed=seed
    )
    model = models.ResNet20()
    model.compile(
        optimizer=demo_optimizer(epochs * len(train)),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    # The dataset reshuffles itself each epoch (seeded); fit must not try to.
    model.fit(train, epochs=epochs, shuffle=False, verbose=1)
    return model


def demo_status(accuracy, min_accuracy, differences):
    """Exit status: 0 when the accuracy reaches `min_accuracy` and every reload matches, else 1."""
    reloads_match = all(d <= RELOAD_TOLERANCE for d in differences.values())
    return 0 if accuracy >= min_accuracy and reloads_match else 1


def demo_data(limit, seed):
    """The embedded sample; with `limit`, a seeded random subset of each split."""
    splits = datasets.load_embedded_cifar10()
    if limit is None:
        return splits
    rng = np.random.default_rng(seed)
    subsets = []
    for x, y in splits:
        keep = np.sort(rng.permutation(len(x))[:limit])
        subsets.append((x[keep], y[keep]))
    return tuple(subsets)


def standardized(images):
    """The test images through the same standardisation as training (no augmentation)."""
    dataset = datasets.cifar10_dataset(images, np.zeros(len(images)), batch_size=len(images))
    return np.concatenate([x.numpy() for x, _ in dataset])


def demo_optimizer(total_steps):
    """SGD (Nesterov momentum 0.9), linear warm-up over the first 10% of steps, cosine decay to 0.

    The warm-up keeps the first steps from diverging at a peak rate high enough for so few epochs.
    """
    warmup = max(1, total_steps // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(1, total_steps - warmup), warmup_target=DEMO_PEAK_LR, warmup_steps=warmup
    )
    return keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=5e-4)


def save_demo_model(model, output_dir):
    """Writes `resnet20_demo.keras` and the SavedModel folder `resnet20_demo_savedmodel` into
    `output_dir` (created if missing); returns both paths."""
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    keras_path = Path(output_dir) / "resnet20_demo.keras"
    export_path = Path(output_dir) / "resnet20_demo_savedmodel"
    model.save(keras_path)
    model.export(str(export_path), verbose=False)
    return keras_path, export_path


def reload_differences(expected, images, keras_path, export_path):
    """Max |expected - reloaded output| for the `.keras` file and the SavedModel, on `images`."""
    reloaded = keras.models.load_model(keras_path)
    from_keras = reloaded.predict(images, batch_size=250, verbose=0)
    serving = keras.layers.TFSMLayer(str(export_path), call_endpoint="serve", dtype="float32")
    from_savedmodel = np.concatenate(
        [np.asarray(serving(images[i : i + 250])) for i in range(0, len(images), 250)]
    )
    return {
        ".keras (keras.models.load_model)": float(np.max(np.abs(from_keras - expected))),
        "SavedModel (keras.layers.TFSMLayer)": float(np.max(np.abs(from_savedmodel - expected))),
    }


def zoo_models() -> list[dict]:
    """The newest version of every CIFAR-10 zoo model in the hub manifest in effect, baseline
    first, as `keras_structconv.hub.list_models()` describes them (empty when none is
    published). Reads the manifest only: nothing is downloaded."""
    newest = {}
    for entry in hub.list_models():
        if entry["name"].endswith(ZOO_SUFFIX):
            if entry["name"] not in newest or entry["version"] > newest[entry["name"]]["version"]:
                newest[entry["name"]] = entry
    return sorted(newest.values(), key=lambda e: (e["name"] != ZOO_BASELINE, e["name"]))


def zoo_accuracy(handle, images, labels) -> float:
    """Accuracy of the hub model `handle` (loaded with `keras_structconv.hub.load`, from the
    cache, the repository's zoo/dist/ or the network) on raw-pixel `images`."""
    model = hub.load(handle, progress=False)
    probabilities = model.predict(images, batch_size=250, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=-1) == np.asarray(labels)))
