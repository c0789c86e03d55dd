"""uvicorn's WebSocket protocol for the realtime process (`uvicorn --ws
notifications.realtime.protocol:WebSocketProtocol`, as the Procfile and the compose file run it).

It is websockets' sans-I/O implementation, the one `--ws auto` picks, with three changes:
- each connection's log lines go through WithoutRoutineConnectionLines unless
  NOTIFY_WS_LOG_CONNECTIONS=true: uvicorn and websockets log INFO lines for every WebSocket
  (notifications/ops/logs.py);
- the handshake's answer and what the application sends right after it (the inbox's first
  messages) leave in one write, see HeldWrites;
- a connection lets go of its handshake's request and answer once it is open.
uvicorn imports this module before the application, so settings are read when a connection opens,
not on import.
"""

import logging

from django.conf import settings
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from notifications.ops.logs import WithoutRoutineConnectionLines

CONNECTION_LOGGER = WithoutRoutineConnectionLines(logging.getLogger("uvicorn.error"))


class HeldWrites:
    """A connection's transport from its handshake's answer to the end of that event-loop turn:
    writes are held, then go out as one. uvicorn writes each message as it is sent, and a connecting
    client is sent three at once (the 101 answer, its missed notifications' count, its unread count):
    three send() system calls on the realtime process and three wakeups of the client, where one
    does. Everything but write (and close, which sends what is held first) is the transport's own."""

    def __init__(self, transport):
        self.transport, self.held = transport, []

    def write(self, data):
        self.held.append(data)

    def release(self):
        held, self.held = self.held, []
        if held and not self.transport.is_closing():
            self.transport.write(b"".join(held))

    def close(self):
        self.release()
        self.transport.close()

    def __getattr__(self, name):
        return getattr(self.transport, name)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not settings.NOTIFY_WS_LOG_CONNECTIONS:
            # uvicorn's own lines, and websockets' (the connection's sans-I/O protocol).
            self.logger = self.conn.logger = CONNECTION_LOGGER

    async def send(self, message):
        accepting = message["type"] == "websocket.accept" and not self.handshake_complete
        if accepting and not isinstance(self.transport, HeldWrites):
            self.transport = HeldWrites(self.transport)
            self.loop.call_soon(self.release_writes)
        await super().send(message)
        if accepting:
            # The handshake's request and answer are not read again: a connection held them (and
            # their headers, two dozen objects for the collector to scan) for as long as it lived.
            self.request = self.response = None

    def release_writes(self):
        held, self.transport = self.transport, self.transport.transport
        held.release()
