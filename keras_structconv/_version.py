"""The package version, the single source read by `setup.py` and `keras_structconv.__version__`."""

__version__ = "0.1.0"
