"""A receiver that attacks the caller: answers a user could point a webhook or push subscription
at. Raw sockets, since a well-behaved HTTP server cannot drip-feed its headers.

Modes: `gzip_bomb` (the given status, a gzip body that inflates to `inflated_mb` MiB),
`drip_headers` (the status line one byte at a time), `drip_body` (a 201 whose body trickles
forever), `answer` (a plain answer with the given status). `requests` records what reached it.
"""

import socket
import threading
import time
import zlib


def gzip_bomb(inflated_mb):
    """A gzip member of `inflated_mb` MiB of zeros, about 1/1000 of that on the wire."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1024 * 1024)
    parts = [compressor.compress(chunk) for _ in range(inflated_mb)]
    return b"".join(parts) + compressor.flush()


class HostileReceiver:
    def __init__(self):
        self.mode, self.status, self.inflated_mb, self.drip_interval = "answer", 201, 200, 0.2
        self.requests = []  # (request line, headers) of each request received
        self.on_request = None  # called with (request line, headers) before answering
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.stopped = threading.Event()
        self._bomb = {}

    @property
    def url(self):
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def start(self):
        threading.Thread(target=self.serve, daemon=True).start()
        return self

    def stop(self):
        self.stopped.set()
        self.listener.close()

    def bomb(self):
        if self.inflated_mb not in self._bomb:
            self._bomb[self.inflated_mb] = gzip_bomb(self.inflated_mb)
        return self._bomb[self.inflated_mb]

    def serve(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def read_request(self, conn):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", 0))
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        self.requests.append((lines[0], headers))
        return headers

    def answer(self, conn):
        try:
            if self.read_request(conn) is None:
                return
            if self.on_request is not None:
                self.on_request(*self.requests[-1])
            if self.mode == "gzip_bomb":
                body = self.bomb()
                conn.sendall(
                    f"HTTP/1.1 {self.status} X\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
            elif self.mode == "drip_headers":
                for byte in b"HTTP/1.1 201 Created\r\nX-Slow: " + b"a" * 100_000:
                    if self.stopped.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(self.drip_interval)
            elif self.mode == "drip_body":
                conn.sendall(f"HTTP/1.1 {self.status} Created\r\nContent-Length: 100000000\r\n\r\n".encode())
                while not self.stopped.is_set():
                    conn.sendall(b"x")
                    time.sleep(self.drip_interval)
            else:
                conn.sendall(f"HTTP/1.1 {self.status} X\r\nContent-Length: 2\r\n\r\nok".encode())
        except OSError:
            pass  # the caller hung up on us, as it should
        finally:
            conn.close()
