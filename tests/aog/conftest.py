import pytest


@pytest.fixture(autouse=True)
def _float32_policy_and_fresh_names():
    """Overrides the conftest fixture: the grammar is pure Python, no Keras state to reset (and
    `keras.backend.clear_session()` would cost most of these modules' run time)."""
    yield
