"""Smoke check of an installed keras_structconv wheel, run by tools/wheel_smoke.sh in a fresh venv.

Run from outside the source tree: it fails if the package is imported from anywhere but the
venv's site-packages. Checks: the import, `__version__` against the wheel's metadata, the package
data (`py.typed`, the embedded CIFAR-10 sample), one layer through `fit` / `.keras` save / load
with identical predictions, and the `structconv --help` console script.
"""

import importlib.metadata
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path


def check_installed_from_site_packages(package):
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    location = Path(package.__file__).resolve()
    if site_packages not in location.parents:
        raise SystemExit(f"keras_structconv imported from {location}, not from {site_packages}")
    version = importlib.metadata.version("keras_structconv")
    if package.__version__ != version:
        raise SystemExit(f"__version__ {package.__version__!r} != wheel metadata {version!r}")
    if not (location.parent / "py.typed").is_file():
        raise SystemExit("py.typed missing from the installed package")
    print(f"import: keras_structconv {version} from {location.parent}")


def check_embedded_sample(ksc):
    (x_train, y_train), (x_test, y_test) = ksc.datasets.load_embedded_cifar10()
    shapes = (x_train.shape, y_train.shape, x_test.shape, y_test.shape)
    expected = ((2000, 32, 32, 3), (2000,), (500, 32, 32, 3), (500,))
    if shapes != expected:
        raise SystemExit(f"embedded CIFAR-10 sample has shapes {shapes}, expected {expected}")
    print(f"package data: embedded CIFAR-10 sample {x_train.shape[0]} + {x_test.shape[0]} images")
    return x_train[:64], y_train[:64]


def check_fit_save_load(ksc, images, labels):
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(16, 3, padding="same"),
            ksc.PSConv2D(16, 3, cyclic_interval=4),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(images, labels, batch_size=16, epochs=2, verbose=0)
    losses = history.history["loss"]
    if not all(np.isfinite(losses)):
        raise SystemExit(f"fit produced non-finite losses {losses}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "smoke.keras"
        model.save(path)
        reloaded = keras.saving.load_model(path)
    expected = model.predict(images, verbose=0)
    actual = reloaded.predict(images, verbose=0)
    if not isinstance(reloaded.layers[2], ksc.PSConv2D):
        raise SystemExit(f"reloaded layer is {type(reloaded.layers[2]).__name__}, not PSConv2D")
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    print(f"fit/save/load: PSConv2D, losses {[round(x, 4) for x in losses]}, reload identical")


def check_console_script():
    script = Path(sys.executable).parent / "structconv"
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, check=False, timeout=300
    )
    if result.returncode != 0 or "usage: structconv" not in result.stdout:
        raise SystemExit(
            f"structconv --help exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    print("console script: structconv --help ok")


def main():
    import keras_structconv as ksc

    check_installed_from_site_packages(ksc)
    images, labels = check_embedded_sample(ksc)
    check_fit_save_load(ksc, images, labels)
    check_console_script()
    print("wheel smoke check passed")


if __name__ == "__main__":
    main()
