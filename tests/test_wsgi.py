"""config/wsgi.py, the web processes' entry point: what it loaded is frozen out of the collector's
sight, a request's environ carries none of the process environment's secrets, and a complete
response is handed to the server as one list."""

import json
import os
import subprocess
import sys

from tests.support.collector import collector_after
from tests.support.workers import ROOT

LONG_KEY = "k3Y-for-the-collector-test-only-0123456789abcdefghijklmnop"


def test_the_web_process_freezes_what_it_loaded():
    _threshold, frozen = collector_after("import config.wsgi", DJANGO_SECRET_KEY=LONG_KEY)
    assert frozen > 10000  # Django, DRF and the app's modules


# As granian serves a request: it loads the app, copies the process environment once, and starts
# every request's environ from that copy (granian/wsgi.py, _callback_wrapper), then adds the
# request's own variables.
REQUEST = """
import io, json, os, sys
from config.wsgi import application
environ = dict(os.environ) | {
    "REQUEST_METHOD": "GET", "PATH_INFO": "/health/live", "QUERY_STRING": "", "SCRIPT_NAME": "",
    "SERVER_NAME": "api.example.com", "SERVER_PORT": "443", "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "192.0.2.7", "HTTP_HOST": "api.example.com", "HTTP_USER_AGENT": "probe",
    "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
    "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
}
from django.core.signals import request_finished
finished = []
request_finished.connect(lambda **kwargs: finished.append(True), weak=False)
answers = []
body = application(environ, lambda status, headers, exc_info=None: answers.append(status))
print(json.dumps({"answers": answers, "environ": sorted(name for name in environ if isinstance(environ[name], str)),
                  "body": type(body).__name__, "finished": len(finished), "content": b"".join(body).decode()}))
"""


def test_a_request_sees_its_own_variables_not_the_process_environment():
    env = {**os.environ, "DJANGO_SECRET_KEY": LONG_KEY, "DJANGO_ALLOWED_HOSTS": "api.example.com",
           "DATABASE_URL": "postgres://notify:not-a-real-password@127.0.0.1:5432/notify", "http_proxy": ""}
    answer = subprocess.run([sys.executable, "-c", REQUEST], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert answer.returncode == 0, answer.stderr
    seen = json.loads(answer.stdout.splitlines()[-1])

    assert seen["answers"] == ["200 OK"]
    # the body in one list, which granian writes in one call, and the request already finished
    # (its pooled connection returned)
    assert seen["body"] == "list" and seen["finished"] == 1 and json.loads(seen["content"])
    # what Django was given: the process's variables are gone, the request's are all there
    assert not {"DJANGO_SECRET_KEY", "DATABASE_URL", "PATH", "http_proxy"} & set(seen["environ"])
    assert set(seen["environ"]) == {
        "PATH_INFO", "QUERY_STRING", "REMOTE_ADDR", "REQUEST_METHOD", "SCRIPT_NAME", "SERVER_NAME", "SERVER_PORT",
        "SERVER_PROTOCOL", "HTTP_HOST", "HTTP_USER_AGENT", "wsgi.url_scheme",
    }
