import pytest

from tests.support import reset_engine_state


@pytest.fixture(autouse=True)
def clean_engine_state():
    """Forget circuit and rate-limit state so one test's outage does not leak into the next."""
    reset_engine_state()
    yield
    reset_engine_state()
