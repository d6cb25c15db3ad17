"""Installation for keras_structconv (Keras 3 / TensorFlow structured convolutions)."""

from setuptools import find_packages, setup

setup(
    name="keras_structconv",
    version="0.1.0",
    description=(
        "Structured convolution operators for Keras 3: PSConv2D, TreeConv2D, "
        "TreeAttention (TAM), AOGNets and a quadtree decoder (QGN)."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["keras_structconv", "keras_structconv.*"]),
    package_data={"keras_structconv.datasets": ["data/*.npz"]},
    include_package_data=True,
    install_requires=[
        "tensorflow-cpu==2.21.0",
        "keras==3.15.1",
        "keras-tuner",
        # keras-tuner imports tensorboard lazily inside `search()` without declaring it.
        "tensorboard",
        "tensorflow-datasets",
        "numpy",
        "pillow",
        "matplotlib",
    ],
    extras_require={"dev": ["pytest", "pytest-xdist", "ruff", "hypothesis"]},
    entry_points={"console_scripts": ["structconv=keras_structconv.cli:main"]},
)
