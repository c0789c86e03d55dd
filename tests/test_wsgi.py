"""config/wsgi.py, the web processes' entry point: what it loaded is frozen out of the collector's
sight, and a request's environ carries none of the process environment's secrets."""

import io
import os
import sys

import pytest

from tests.support.collector import collector_after

LONG_KEY = "k3Y-for-the-collector-test-only-0123456789abcdefghijklmnop"


def test_the_web_process_freezes_what_it_loaded():
    _threshold, frozen = collector_after("import config.wsgi", DJANGO_SECRET_KEY=LONG_KEY)
    assert frozen > 10000  # Django, DRF and the app's modules


@pytest.mark.django_db
def test_a_request_sees_its_own_variables_not_the_process_environment(settings):
    from config.wsgi import application

    settings.ALLOWED_HOSTS = ["api.example.com"]
    # As granian builds it: a copy of the process environment, then the request's own variables.
    assert "DJANGO_SECRET_KEY" in os.environ  # tests/conftest.py sets it for the processes it starts
    environ = dict(os.environ) | {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/health/live", "QUERY_STRING": "", "SCRIPT_NAME": "",
        "SERVER_NAME": "api.example.com", "SERVER_PORT": "443", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.7", "HTTP_HOST": "api.example.com", "HTTP_USER_AGENT": "probe",
        "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    answers = []
    body = b"".join(application(environ, lambda status, headers, exc_info=None: answers.append(status)))

    assert answers == ["200 OK"], body
    # what Django was given is this dict: the process's variables are gone, the request's are all there
    assert "DJANGO_SECRET_KEY" not in environ and "PATH" not in environ
    assert not any(name in environ for name in os.environ if not name.startswith("HTTP_"))
    assert environ["REMOTE_ADDR"] == "192.0.2.7" and environ["HTTP_USER_AGENT"] == "probe"
    assert environ["PATH_INFO"] == "/health/live" and environ["wsgi.url_scheme"] == "https"
