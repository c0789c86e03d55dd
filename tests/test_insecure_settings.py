"""With DEBUG off, the public development SECRET_KEY is refused: by the system check (manage.py
check, migrate), and by the web and Celery processes as they start."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from config.checks import secret_key_check

ROOT = Path(__file__).resolve().parent.parent


def run(args, **env):
    environment = {key: value for key, value in os.environ.items() if key not in ("DJANGO_SECRET_KEY", "DJANGO_DEBUG")}
    environment.update(env)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=60)


def test_the_check_names_the_fallback_key(settings):
    settings.DEBUG, settings.SECRET_KEY = False, settings.INSECURE_SECRET_KEY
    [error] = secret_key_check()
    assert error.id == "notify.E001" and error.is_serious()


@pytest.mark.parametrize("key", ["short", "a" * 60])
def test_short_or_repetitive_keys_are_refused(settings, key):
    settings.DEBUG, settings.SECRET_KEY = False, key
    assert [error.id for error in secret_key_check()] == ["notify.E001"]


def test_a_long_random_key_or_debug_passes(settings):
    settings.DEBUG, settings.SECRET_KEY = False, "x7Qp-2vL9sK_0aZrT4mW8yB1nC6dE3fG5hJ"
    assert secret_key_check() == []
    settings.DEBUG, settings.SECRET_KEY = True, settings.INSECURE_SECRET_KEY
    assert secret_key_check() == []


def test_manage_py_check_fails_without_a_secret_key():
    refused = run(["manage.py", "check"])
    assert refused.returncode != 0 and "notify.E001" in refused.stderr
    assert run(["manage.py", "check"], DJANGO_DEBUG="1").returncode == 0
    assert run(["manage.py", "check"], DJANGO_SECRET_KEY="k" + os.urandom(24).hex()).returncode == 0


def test_the_web_process_refuses_to_load_with_the_fallback_key():
    refused = run(["-c", "import config.asgi"])
    assert refused.returncode != 0 and "DJANGO_SECRET_KEY is not set" in refused.stderr
    assert run(["-c", "import config.asgi"], DJANGO_SECRET_KEY="k" + os.urandom(24).hex()).returncode == 0


def test_a_worker_refuses_to_start_with_the_fallback_key(worker_env):
    env = {key: value for key, value in worker_env.items() if key != "DJANGO_SECRET_KEY"}
    refused = run(["-m", "celery", "-A", "config", "worker", "-Q", "nothing-here", "-c", "1", "--without-gossip",
                   "--without-mingle", "-P", "solo"], **env)
    assert refused.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in refused.stdout + refused.stderr
    assert settings.SECRET_KEY  # the test process itself is unaffected
