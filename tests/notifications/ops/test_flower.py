"""Flower: refuses to start without credentials outside development, binds to loopback, and
its API lists the running workers to those who log in."""

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from notifications.ops import flower

from tests.support import free_port
from tests.support.workers import ROOT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def launch(env, **extra):
    return subprocess.Popen([sys.executable, "-m", "notifications.ops.flower"], cwd=ROOT,
                            env={**os.environ, **env, **extra}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def get(url, auth=None):
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_refuses_to_start_without_credentials_outside_development(worker_env):
    process = launch(worker_env, NOTIFY_ENVIRONMENT="production", FLOWER_BASIC_AUTH="")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "refusing to start Flower without FLOWER_BASIC_AUTH" in output


def test_binds_to_loopback_and_checks_the_credentials(settings):
    assert "--address=127.0.0.1" in flower.flower_argv(settings)
    settings.FLOWER_ADDRESS = "0.0.0.0"
    assert "--address=0.0.0.0" in flower.flower_argv(settings)
    settings.IS_DEVELOPMENT, settings.FLOWER_BASIC_AUTH = True, ""
    assert flower.refusal(settings) is None
    settings.IS_DEVELOPMENT, settings.FLOWER_BASIC_AUTH = False, "admin"
    assert "user:password" in flower.refusal(settings)
    settings.FLOWER_BASIC_AUTH = "admin:s3cret,ops:"
    assert "user:password" in flower.refusal(settings)


def test_api_lists_the_workers_and_refuses_requests_without_credentials(celery_worker, worker_env):
    port = free_port()
    process = launch(worker_env, NOTIFY_ENVIRONMENT="production", FLOWER_BASIC_AUTH="ops:s3cret-pass",
                     FLOWER_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                status, _ = get(f"{base}/api/workers")
                break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, process.stdout.read()
                assert time.time() < deadline, "flower did not start"
                time.sleep(0.3)
        assert status == 401
        assert get(f"{base}/api/workers", auth="ops:wrong")[0] == 401

        def workers():
            status, body = get(f"{base}/api/workers?refresh=1", auth="ops:s3cret-pass")
            assert status == 200, body
            return json.loads(body)

        deadline = time.time() + 30
        listed = workers()
        while not any(name.startswith("all-") for name in listed) and time.time() < deadline:
            time.sleep(1)
            listed = workers()
        [name] = [name for name in listed if name.startswith("all-")]
        queues = {queue["name"] for queue in listed[name].get("active_queues", [])}
        assert {"dispatch", "email", "sms", "inapp", "maintenance"} <= queues
    finally:
        os.killpg(process.pid, 15)
        process.wait(20)
    assert "s3cret-pass" not in (process.stdout.read() or "")
