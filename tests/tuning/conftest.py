"""Searches in this process run their few training steps eagerly (`tf.function`s not traced).

A trial here trains two or three steps of a tiny network, where tracing the train, test and
timing steps costs more than running them: measured, `test_search.py` takes 42 s eagerly against
85 s traced. What the eager run could hide (graph-only failures in the search's own code) is
covered by the searches that stay traced: the tests marked `traced` and every search that runs
in a subprocess (`test_distributed.py`); the traced path of each operator and model is what their
own tests check.
"""

import pytest
import tensorflow as tf


@pytest.fixture(autouse=True)
def _eager_functions_unless_marked_traced(request):
    if request.node.get_closest_marker("traced") is not None:
        yield
        return
    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(False)
