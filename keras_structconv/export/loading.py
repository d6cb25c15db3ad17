"""Loading `.keras` files that use this package's layers.

`load_model` registers the classes before Keras reads the file and explains a class the
installed version lacks; `missing_package_hint` explains Keras' "Could not locate class" error
to applications that call `keras.saving.load_model` themselves.
"""

from __future__ import annotations

import json
import zipfile
from typing import Any

import keras

from keras_structconv.export._files import PathLike

__all__ = ["load_model", "missing_package_hint", "registered_names_in_file"]

REGISTERED_PACKAGE = "keras_structconv"


def load_model(
    filepath: PathLike,
    custom_objects: dict[str, Any] | None = None,
    compile: bool = True,
    safe_mode: bool = True,
) -> keras.Model:
    """`keras.saving.load_model` with every keras_structconv class registered.

    A `.keras` file names this package's layers as `keras_structconv>TreeAttention` and so on;
    Keras resolves those names only after `import keras_structconv` has run the registrations.
    This function is also `keras_structconv.load_model`.

    Args:
        filepath: a `.keras` (or legacy `.h5`) file.
        custom_objects: further classes and functions, as for `keras.saving.load_model`.
        compile: compile the model with its saved optimizer and losses.
        safe_mode: refuse to deserialize lambdas (Keras' default, True).

    Returns:
        The model.

    Raises:
        TypeError: the file names a keras_structconv class that this version does not have
            (the message lists them and this version).

    Example:

    ```python
    import keras_structconv as ksc

    model = ksc.load_model("tree_resnet20.keras")
    ```
    """
    import keras_structconv  # noqa: F401  (runs every registration, models and quadtree too)

    try:
        return keras.saving.load_model(
            filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode
        )
    except TypeError as error:
        if "Could not locate" not in str(error):
            raise
        unknown = [
            name for name in registered_names_in_file(filepath)
            if keras.saving.get_registered_object(name) is None
        ]
        if not unknown:
            raise
        raise TypeError(
            f"{filepath} names {', '.join(unknown)}, which this keras_structconv "
            f"({keras_structconv.__version__}) does not have: the file was saved by another "
            "version of the package. Install that version, or pass the classes in "
            f"`custom_objects`. Keras said: {error}"
        ) from error


def registered_names_in_file(filepath: PathLike) -> list[str]:
    """The `keras_structconv>Name` registered names a `.keras` file's config refers to.

    Example:

    ```python
    registered_names_in_file("tree_resnet20.keras")  # ['keras_structconv>TreeConv2D']
    ```
    """
    try:
        with zipfile.ZipFile(filepath) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return []
    found: set[str] = set()

    def visit(value):
        if isinstance(value, dict):
            name = value.get("registered_name")
            if isinstance(name, str) and name.startswith(f"{REGISTERED_PACKAGE}>"):
                found.add(name)
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(config)
    return sorted(found)


def missing_package_hint(filepath: PathLike) -> str | None:
    """A sentence telling to `import keras_structconv` when `filepath` (a `.keras` file) names
    this package's classes; None when it names none. For applications that load with
    `keras.saving.load_model` themselves and want to explain a "Could not locate class" error.

    Example:

    ```python
    try:
        model = keras.saving.load_model(path)
    except TypeError as error:
        hint = missing_package_hint(path)
        raise TypeError(f"{error}\\n{hint}" if hint else str(error)) from error
    ```
    """
    names = registered_names_in_file(filepath)
    if not names:
        return None
    return (
        f"{filepath} uses keras_structconv layers ({', '.join(names)}): `import "
        "keras_structconv` before `keras.saving.load_model`, or load it with "
        "`keras_structconv.load_model(path)`."
    )
