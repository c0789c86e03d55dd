"""uvicorn's WebSocket protocol for the realtime process (`uvicorn --ws
notifications.realtime.protocol:WebSocketProtocol`, as the Procfile and the compose file run it).

It is websockets' sans-I/O implementation, the one `--ws auto` picks, with each connection's log
lines going through WithoutRoutineConnectionLines unless NOTIFY_WS_LOG_CONNECTIONS=true: uvicorn
and websockets log INFO lines for every WebSocket (notifications/ops/logs.py). uvicorn imports this
module before the application, so settings are read when a connection opens, not on import.
"""

import logging

from django.conf import settings
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from notifications.ops.logs import WithoutRoutineConnectionLines

CONNECTION_LOGGER = WithoutRoutineConnectionLines(logging.getLogger("uvicorn.error"))


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not settings.NOTIFY_WS_LOG_CONNECTIONS:
            # uvicorn's own lines, and websockets' (the connection's sans-I/O protocol).
            self.logger = self.conn.logger = CONNECTION_LOGGER
