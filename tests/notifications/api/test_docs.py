"""Swagger UI and ReDoc work offline: the web process, started as the Procfile starts it after
bin/serve's collectstatic, serves both pages and every asset they load itself."""

import os
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from tests.support.workers import procfile_exec

ROOT = Path(__file__).resolve().parents[3]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Links(HTMLParser):
    """Every URL a page makes the browser load: src, href and ReDoc's spec-url."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in {"src", "href", "spec-url"} and value]


def links(page):
    parser = Links()
    parser.feed(page)
    return parser.urls


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("web")
    port = free_port()
    env = {
        **os.environ,
        "STATIC_ROOT": str(log_dir / "static"),  # a fresh one: nothing collected before this test
        "WEB_PORT": str(port),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONUNBUFFERED": "1",
        "NOTIFY_PUBLIC_SCHEMA": "true",  # the pages are fetched without signing in
    }
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    log_path = log_dir / "web.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            ["bash", "-c", procfile_exec("web")],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            requests.get(f"{base}/api/docs/", timeout=2)
            break
        except (requests.ConnectionError, requests.Timeout):  # granian listens before its workers load the app
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"web did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
    yield base, log_path
    process.terminate()
    process.wait(30)


def fetch_assets(base, urls):
    fetched = {}
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{url} is not served by this service"
        response = requests.get(base + url, timeout=10)
        assert response.status_code == 200, url
        assert response.content, url
        fetched[url] = response
    return fetched


def test_swagger_ui_loads_only_assets_the_service_serves(web):
    base, _log = web
    page = requests.get(f"{base}/api/docs/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "://" not in page.text  # no CDN, no absolute link of any kind
    urls = links(page.text)
    assets = fetch_assets(base, urls)

    by_name = {url.rsplit("/", 1)[-1].split("?")[0]: response for url, response in assets.items()}
    assert by_name["swagger-ui.css"].headers["Content-Type"].startswith("text/css")
    assert by_name["swagger-ui-bundle.js"].headers["Content-Type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in by_name["swagger-ui-bundle.js"].text
    assert by_name["favicon-32x32.png"].headers["Content-Type"] == "image/png"
    # The start-up script is its own request (no inline script for a CSP to block); it points
    # Swagger UI at the schema, which the same service answers.
    [script] = [url for url in urls if url.startswith("/api/docs/")]
    assert 'url: "/api/schema/' in assets[script].text
    schema = requests.get(f"{base}/api/schema/", timeout=30)
    assert schema.status_code == 200 and "/api/notifications/" in schema.text


def test_redoc_loads_only_assets_the_service_serves(web):
    base, _log = web
    page = requests.get(f"{base}/api/redoc/", timeout=10)
    assert page.status_code == 200
    assert "://" not in page.text  # drf-spectacular's own page would load Google Fonts
    urls = links(page.text)
    assert "/api/schema/" in urls
    assets = fetch_assets(base, [url for url in urls if url != "/api/schema/"])
    [bundle] = [response for url, response in assets.items() if url.endswith("redoc.standalone.js")]
    assert "Redoc" in bundle.text


def test_web_starts_without_static_files_warnings(web):
    _base, log_path = web
    output = log_path.read_text()
    assert "Started worker-" in output  # granian, as the Procfile runs web
    assert "No directory at" not in output
