"""A small threaded HTTP server on 127.0.0.1 that records requests and can inject faults.

Each fake provider subclasses FakeProvider and implements handle(request) -> (status, headers, body).
Faults are queued with fail_next(): a status code with headers, a delay, a dropped connection, or
a timeout (the answer never comes before the client gives up). `requests` holds the requests the
fake accepted; `received` holds every request that reached it, faulted or refused included.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes
    received_at: float = field(default_factory=time.time)

    def json(self):
        return json.loads(self.body)

    def form(self):
        return {key: values[0] if len(values) == 1 else values for key, values in parse_qs(self.body.decode()).items()}


@dataclass
class Fault:
    status: int = 500
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    drop: bool = False  # close the connection without answering
    timeout: bool = False  # hold the connection past any sane client timeout, then drop it


class FakeProvider:
    # How long a `timeout` fault holds the connection; clients under test time out well before.
    hang_seconds = 3.0

    def __init__(self, tls=None):
        self.requests = []
        self.received = []  # every request, answered by a fault or not
        self.faults = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler_class())
        self.scheme = "http"
        if tls is not None:  # an SDK that only speaks https: serve it with tls.TestCertificate
            self.server.socket = tls.server_context().wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        host, port = self.server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def reset(self):
        with self.lock:
            self.requests.clear()
            self.received.clear()
            self.faults.clear()

    def fail_next(self, count=1, **fault):
        with self.lock:
            self.faults.extend(Fault(**fault) for _ in range(count))

    def wait_for(self, count, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.requests) >= count:
                return self.requests
            time.sleep(0.05)
        raise AssertionError(f"expected {count} requests at {type(self).__name__}, got {len(self.requests)}")

    def handle(self, request):
        raise NotImplementedError

    def handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def serve(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = RecordedRequest(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                with fake.lock:
                    fake.received.append(request)
                    fault = fake.faults.pop(0) if fake.faults else None
                if fault is not None:
                    if fault.delay:
                        time.sleep(fault.delay)
                    if fault.timeout:
                        time.sleep(fake.hang_seconds)
                    if fault.drop or fault.timeout:
                        self.close_connection = True
                        self.connection.close()
                        return
                    if fault.status:
                        self.answer(fault.status, fault.headers, fault.body)
                        return
                status, headers, response_body = fake.handle(request)
                if 200 <= status < 300:
                    with fake.lock:
                        fake.requests.append(request)
                self.answer(status, headers, response_body)

            def answer(self, status, headers, body):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = serve

        return Handler
