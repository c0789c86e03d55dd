"""Who is on a WebSocket: an app-signed end-user token, else the Django session.

Browsers cannot set headers on a WebSocket, so the token travels as a subprotocol offer
(`new WebSocket(url, ["notifications", "bearer." + token])`); other clients may send
`Authorization: Bearer <token>`. Never in the query string: servers log the path.
"""

import logging
from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from django.conf import settings
from django.db import DatabaseError

from notifications.api import end_user_tokens
from notifications.ops.metrics import WS_HANDSHAKES
from notifications.realtime.batching import Batch

logger = logging.getLogger(__name__)

SUBPROTOCOL = "notifications"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."


def token_from(scope):
    scheme, _, token = (header(scope, b"authorization") or "").partition(" ")
    if scheme == "Bearer" and token:
        return token
    for offered in scope.get("subprotocols", []):
        if offered.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            return offered[len(TOKEN_SUBPROTOCOL_PREFIX):]
    return None


def authenticate_all(handshakes):
    """[(token, path)] -> [(user, auth) or (None, None)], one user query per API client."""
    results = end_user_tokens.verify_many([token for token, _path in handshakes])
    for (_token, path), result in zip(handshakes, results):
        if isinstance(result, end_user_tokens.RefusedToken):
            end_user_tokens.log_refusal(result, f"WebSocket {path}")
    return [(None, None) if isinstance(result, end_user_tokens.RefusedToken) else result for result in results]


authenticate = Batch(authenticate_all)


def header(scope, name):
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def same_origin(scope):
    """A session cookie rides along on any site's WebSocket to us: only our own pages may use it
    (served by this host, or by the web tier at PUBLIC_BASE_URL)."""
    origin, host = header(scope, b"origin"), header(scope, b"host")
    if not origin:
        return False
    return urlsplit(origin).netloc in {host, urlsplit(settings.PUBLIC_BASE_URL).netloc}


class EndUserTokenMiddleware:
    """Puts the token's user in scope["user"], or scope["auth_refused"] = True for a bad token.
    Without a token, Channels' session stack runs (only then: it resolves the session user on its
    single thread-sensitive thread), and a session user counts only on a same-origin connection."""

    def __init__(self, app):
        self.app = app
        self.session_auth = AuthMiddlewareStack(SameOriginSession(app))

    pending = 0  # handshakes of this process waiting for their database work

    async def __call__(self, scope, receive, send):
        token = token_from(scope)
        if token is None:
            return await self.session_auth(scope, receive, send)
        # After a restart every client comes back at once. Work on a bounded number and turn
        # the rest away at once (they retry with backoff): queued without bound, handshakes
        # outlive their clients' timeouts and none completes.
        if EndUserTokenMiddleware.pending >= settings.NOTIFY_WS_MAX_PENDING_HANDSHAKES:
            WS_HANDSHAKES.labels("busy").inc()
            await send({"type": "websocket.close", "code": 1013})
            return
        EndUserTokenMiddleware.pending += 1
        try:
            user, auth = await authenticate((token, scope.get("path", "")))
        except DatabaseError:
            # Postgres unreachable: not the client's fault, so no 4401; it is turned away like a
            # busy process (403 to the handshake) and comes back with backoff.
            logger.warning("the database is unavailable, so a WebSocket handshake was turned away unchecked", exc_info=True)
            WS_HANDSHAKES.labels("unavailable").inc()
            await send({"type": "websocket.close", "code": 1013})
            return
        finally:
            EndUserTokenMiddleware.pending -= 1
        return await self.app({**scope, "user": user, "auth": auth, "auth_refused": user is None}, receive, send)


class SameOriginSession:
    """A session user only from our own pages (see same_origin)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if not same_origin(scope):
            scope = {**scope, "user": None}
        return await self.app(scope, receive, send)


def WebSocketAuthStack(app):  # noqa: N802 (named like Channels' own stacks)
    return EndUserTokenMiddleware(app)
