import pytest

from tests.support.workers import BeatProcess


@pytest.fixture
def beat(worker_env, tmp_path):
    """A real celery beat process for one test (the test database is flushed between tests)."""
    process = BeatProcess(worker_env, log_dir=tmp_path).start()
    yield process
    process.stop()
