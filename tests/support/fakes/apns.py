"""Fake Apple Push Notification service: HTTP/2 over TLS (the `h2` library) on 127.0.0.1, with the
test certificate (the client trusts the test CA through APNS_CA_BUNDLE).

POST /3/device/<token> with `authorization: bearer <ES256 JWT>` (checked with the team's key:
`iss` = team id, `kid` = key id, `iat` recent), `apns-topic` = the app's bundle id and a JSON
payload with `aps`; answers 200 with `apns-id`, or Apple's error body {"reason": ...}: 400
BadDeviceToken, 403 InvalidProviderToken, 410 Unregistered (with a timestamp), 429
TooManyRequests; `fail_next(status, reason)` queues others.
"""

import json
import socket
import ssl
import threading
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded

class FakeAPNs:
    team_id = "TEAM123456"
    key_id = "KEY1234567"
    topic = "com.example.notify"

    def __init__(self, certificate):
        self.certificate = certificate
        key = ec.generate_private_key(ec.SECP256R1())
        self.auth_key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode()
        self.public_key = key.public_key()
        self.unregistered = set()
        self.faults = []
        self.pushes = []  # (token, headers, payload) accepted
        self.received = []  # every request's (token, headers)
        self.lock = threading.Lock()
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)

    @property
    def port(self):
        return self.server.getsockname()[1]

    def start(self):
        threading.Thread(target=self._accept, args=(self.server, self._serve_h2), daemon=True).start()
        return self

    def stop(self):
        self.server.close()

    def reset(self):
        with self.lock:
            self.unregistered.clear()
            self.faults.clear()
            self.pushes.clear()
            self.received.clear()

    def fail_next(self, status, reason, count=1):
        with self.lock:
            self.faults.extend([(status, reason)] * count)

    @staticmethod
    def _accept(listener, serve):
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    # --- the HTTP/2 server -------------------------------------------------------------------
    def _serve_h2(self, raw):
        context = self.certificate.server_context()
        context.set_alpn_protocols(["h2"])
        try:
            sock = context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        conn = H2Connection(config=H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        streams = {}
        try:
            while data := sock.recv(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, RequestReceived):
                        streams[event.stream_id] = [dict(event.headers), b""]
                    elif isinstance(event, DataReceived):
                        streams[event.stream_id][1] += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, StreamEnded):
                        headers, body = streams.pop(event.stream_id)
                        self._respond(conn, event.stream_id, headers, body)
                    elif isinstance(event, ConnectionTerminated):
                        return
                sock.sendall(conn.data_to_send())
        except (OSError, ssl.SSLError):
            pass
        finally:
            sock.close()

    def _respond(self, conn, stream_id, headers, body):
        status, reason = self._decide(headers, body)
        apns_id = headers.get("apns-id") or str(uuid.uuid4())
        response_headers = [(":status", str(status)), ("apns-id", apns_id)]
        if status == 200:
            conn.send_headers(stream_id, response_headers, end_stream=True)
            return
        payload = {"reason": reason}
        if status == 410:
            payload["timestamp"] = int(time.time() * 1000)
        data = json.dumps(payload).encode()
        conn.send_headers(stream_id, response_headers + [("content-type", "application/json")])
        conn.send_data(stream_id, data, end_stream=True)

    def _decide(self, headers, body):
        token = headers.get(":path", "").removeprefix("/3/device/")
        with self.lock:
            self.received.append((token, headers))
            fault = self.faults.pop(0) if self.faults else None
        if fault:
            return fault
        if headers.get(":method") != "POST":
            return 405, "MethodNotAllowed"
        try:
            claims = jwt.decode(headers.get("authorization", "").removeprefix("bearer "), self.public_key,
                                algorithms=["ES256"], options={"require": ["iss", "iat"]})
            if claims["iss"] != self.team_id or jwt.get_unverified_header(
                    headers["authorization"].removeprefix("bearer "))["kid"] != self.key_id:
                return 403, "InvalidProviderToken"
            if claims["iat"] < time.time() - 3600:
                return 403, "ExpiredProviderToken"
        except jwt.PyJWTError:
            return 403, "InvalidProviderToken"
        if headers.get("apns-topic") != self.topic:
            return 400, "TopicDisallowed"
        if len(token) != 64 or any(c not in "0123456789abcdef" for c in token):
            return 400, "BadDeviceToken"
        if token in self.unregistered:
            return 410, "Unregistered"
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, "PayloadEmpty"
        if "aps" not in payload:
            return 400, "PayloadEmpty"
        with self.lock:
            self.pushes.append((token, headers, payload))
        return 200, ""
