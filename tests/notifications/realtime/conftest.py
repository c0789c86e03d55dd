import pytest
from websockets.sync.client import connect as ws_connect

from notifications.api.end_user_tokens import new_token_secret
from notifications.models import ApiClient
from notifications.tenancy import grant
from tests.support import end_user_token
from tests.support.workers import AsgiServerProcess

# Small limits, so that a test reaches them quickly.
ASGI_ENV = {"NOTIFY_WS_MAX_BAD_MESSAGES": "8", "NOTIFY_WS_FLOOD_WINDOW": "30", "NOTIFY_WS_RELAY_RENEW": "1"}


@pytest.fixture(scope="session")
def asgi_server(worker_env, tmp_path_factory):
    server = AsgiServerProcess({**worker_env, **ASGI_ENV}, log_dir=tmp_path_factory.mktemp("asgi"), name="asgi-a")
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def second_asgi_server(worker_env, tmp_path_factory):
    server = AsgiServerProcess({**worker_env, **ASGI_ENV}, log_dir=tmp_path_factory.mktemp("asgi"), name="asgi-b")
    yield server.start()
    server.stop()


@pytest.fixture
def shop(make_user, django_user_model, test_app_clients):
    """An app with a send key and an HS256 token secret; `shop.key` is its API key. The users the
    test makes (before or after) are its recipients."""
    client, key = ApiClient.issue("Shop", make_user("shop-owner"), scopes=["send", "read"])
    grant(client, django_user_model.objects.all())
    test_app_clients.append(client)
    client.token_secret = new_token_secret()
    client.save(update_fields=["token_secret"])
    client.key = key
    return client


@pytest.fixture
def token_for(shop):
    def make(username, **options):
        return end_user_token(shop, username, **options)

    return make


@pytest.fixture
def open_socket(asgi_server):
    """Opens a real WebSocket client connection; every one is closed after the test."""
    sockets = []

    def connect(token=None, server=None, via="header", subprotocols=None, additional_headers=None, **options):
        server = server or asgi_server
        headers = dict(additional_headers or {})
        if token and via == "header":
            headers["Authorization"] = f"Bearer {token}"
        offered = subprotocols or (["notifications", f"bearer.{token}"] if token and via == "subprotocol" else None)
        socket = ws_connect(server.ws_url, additional_headers=headers, subprotocols=offered, open_timeout=10, **options)
        sockets.append(socket)
        return socket

    yield connect
    for socket in sockets:
        socket.close()
