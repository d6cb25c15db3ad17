"""Installation for keras_structconv (Keras 3 / TensorFlow structured convolutions).

A library declares ranges; the exact versions of our CI and Makefile are in `constraints.txt`.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_version():
    """`__version__` from keras_structconv/_version.py, without importing the package (and TF)."""
    text = (HERE / "keras_structconv" / "_version.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, flags=re.MULTILINE)
    if match is None:
        raise RuntimeError("keras_structconv/_version.py defines no __version__")
    return match.group(1)


# `tensorflow`, not `tensorflow-cpu`: on Linux x86_64 the plain wheel is the CPU build (CUDA
# libraries come only with `tensorflow[and-cuda]`), it exists for every platform, and a
# user who has it (GPU or not) gets no second TensorFlow. Lower bounds: the oldest pair our tests
# pass on (TensorFlow 2.16.2 with Keras 3.6.0; Keras 3.5 lacks `Model.export(verbose=)`); upper
# bounds at the next major version.
INSTALL_REQUIRES = [
    "tensorflow>=2.16.2,<3",
    "keras>=3.6.0,<4",
    "numpy",
]

TUNING = [
    "keras-tuner>=1.4",
    # keras-tuner imports tensorboard lazily inside `search()` without declaring it.
    "tensorboard",
    # KerasTuner's distributed mode (chief/worker over gRPC).
    "grpcio",
    # BayesianOptimization (KerasTuner imports them when the tuner is built).
    "scipy",
    "scikit-learn",
]
# tf2onnx 1.16 pins protobuf 3.20, which cannot stand beside TensorFlow 2.16+'s protobuf.
EXPORT = ["tf2onnx>=1.17", "onnxruntime"]
NOTEBOOKS = ["nbclient", "nbformat", "ipykernel", "matplotlib"]
TFDS = ["tensorflow-datasets"]
VIZ = ["matplotlib", "pillow"]
DOCS = ["pdoc>=14"]
TEST = ["pytest", "pytest-xdist", "ruff", "hypothesis", "build"]

EXTRAS_REQUIRE = {
    "tuning": TUNING,
    # Loading SavedModels from a hub needs only Keras' TFSMLayer and the standard library.
    "hub": [],
    "export": EXPORT,
    "notebooks": NOTEBOOKS,
    "tfds": TFDS,
    "viz": VIZ,
    "docs": DOCS,
    "dev": sorted(set(TEST + TUNING + EXPORT + NOTEBOOKS + TFDS + VIZ + DOCS)),
}

setup(
    name="keras_structconv",
    version=read_version(),
    description=(
        "Structured convolution operators for Keras 3: PSConv2D, TreeConv2D, "
        "TreeAttention (TAM), AOGNets and a quadtree decoder (QGN)."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Science/Research",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Typing :: Typed",
    ],
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["keras_structconv", "keras_structconv.*"]),
    package_data={
        "keras_structconv": ["py.typed"],
        "keras_structconv.datasets": ["data/*.npz"],
        "keras_structconv.hub": ["manifest.json"],
    },
    include_package_data=False,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["structconv=keras_structconv.cli:main"]},
)
