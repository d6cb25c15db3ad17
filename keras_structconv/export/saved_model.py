"""SavedModel export for TF-Serving and `keras.layers.TFSMLayer`, traced on the portable path.

A plain `model.export()` keeps the training formulation's XLA-compiled functions, which only a
TensorFlow with XLA runs; `export_saved_model` writes the portable formulation instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from keras_structconv.export._files import PathLike
from keras_structconv.export._tracing import ShapeLike, input_specs
from keras_structconv.layers._portable import portable_ops

__all__ = ["export_saved_model"]


def export_saved_model(
    model: keras.Model,
    path: PathLike,
    *,
    input_shape: ShapeLike | Sequence[ShapeLike] | None = None,
    verbose: bool = False,
    **kwargs: Any,
) -> None:
    """Exports `model` as a SavedModel (endpoint "serve"), traced on the portable path.

    This is `model.export(path)` inside `portable_ops()`: the serving function contains no
    XLA-compiled functions, custom gradients or complex numbers, so TF-Serving, the TFLite
    converter and `keras.layers.TFSMLayer` load it on any TensorFlow build. The batch axis stays
    dynamic; spatial sizes follow the model's inputs unless `input_shape` fixes them.

    Args:
        model: a built Keras model (models with their own `export`, like `QGN`, use theirs).
        path: the SavedModel folder.
        input_shape: the shape of one example, without the batch axis; default: the model's.
        verbose: print Keras' summary of the endpoints.
        **kwargs: passed to `model.export` (e.g. `propagation=` for QGN).

    Example:

    ```python
    export_saved_model(model, "model_savedmodel")
    serving = keras.layers.TFSMLayer("model_savedmodel", call_endpoint="serve",
                                     dtype="float32")
    probabilities = serving(images)
    ```
    """
    if input_shape is not None:
        kwargs["input_signature"] = input_specs(model, input_shape, None)
    with portable_ops():
        model.export(str(path), format="tf_saved_model", verbose=verbose, **kwargs)
