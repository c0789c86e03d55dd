"""`/ws/notifications/` end to end: a real `websockets` client, real uvicorn processes serving
config.asgi, a real Celery worker delivering in-app, Redis as the channel layer, Postgres."""

import json
import logging
import socket
import time

import pytest
from rest_framework.test import APIClient
from websockets.exceptions import ConnectionClosed

from notifications.models import Delivery, DeliveryGroups, DeliveryStatus, Notification

from tests.support import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def receive(ws, timeout=15):
    return json.loads(ws.recv(timeout=timeout))


def until(ws, kind, timeout=15):
    """The next message of this type; the ones before it are returned too."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        message = receive(ws, timeout=max(0.1, deadline - time.monotonic()))
        if message["type"] == kind:
            return message, seen
        seen.append(message)


def greeting(ws):
    """What the server sends on connect: the missed notifications, their count, the unread count.
    A notification delivered just before the connection opened may also be pushed live among them
    (a connection joins its group before it reads the inbox: it can repeat one, never lose one), so
    the missed ones are the `count` notifications right before the marker."""
    unread, before = until(ws, "unreadCount")
    types = [m["type"] for m in before]
    assert "missedNotifications" in types, types
    at = len(types) - 1 - types[::-1].index("missedNotifications")
    count = before[at]["count"]
    batch = [m for m in before[:at] if m["type"] == "notification"]
    assert len(batch) >= count and set(types) <= {"notification", "missedNotifications"}, types
    return batch[len(batch) - count:], unread["count"]


def sender(shop):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {shop.key}")
    return api


def send(shop, *recipients, title="Order 123 shipped", category="orders", **extra):
    response = sender(shop).post(
        "/api/notifications/",
        {"recipients": list(recipients), "category": category, "title": title, "message": "On its way.",
         "priority": "high", "data": {"order": 123}, "channels": ["inapp"], **extra},
        format="json",
    )
    assert response.status_code == 202, response.content
    return response.json()["ids"]


def wait_delivered(notification_id):
    wait_until(
        lambda: Delivery.objects.filter(
            notification_id=notification_id, channel="inapp", status__in=DeliveryGroups.REACHED
        ).exists(),
        message="in-app delivery sent",
    )


def test_online_user_gets_the_notification_live(celery_worker, asgi_server, open_socket, shop, token_for, make_user):
    make_user("ada")
    ws = open_socket(token_for("ada"))
    assert greeting(ws) == ([], 0)

    [notification_id] = send(shop, "ada")

    message, _ = until(ws, "notification")
    assert message == {
        "type": "notification", "id": notification_id, "category": "orders", "title": "Order 123 shipped",
        "message": "On its way.", "priority": "high", "data": {"order": 123},
        "created_at": message["created_at"], "read_at": None, "seen_at": None,
    }
    assert message["created_at"].startswith(str(Notification.objects.get(id=notification_id).created_at.date()))
    # The badge follows a new notification at once, without a reconnect.
    assert receive(ws, timeout=5) == {"type": "unreadCount", "count": 1}


def test_two_devices_on_two_asgi_processes_both_get_it(
    celery_worker, asgi_server, second_asgi_server, open_socket, shop, token_for, make_user
):
    make_user("ada")
    make_user("bob")
    phone = open_socket(token_for("ada"))
    laptop = open_socket(token_for("ada"), server=second_asgi_server, via="subprotocol")
    assert laptop.subprotocol == "notifications"
    bob = open_socket(token_for("bob"), server=second_asgi_server)
    for ws in (phone, laptop, bob):
        greeting(ws)

    [notification_id] = send(shop, "ada")

    assert until(phone, "notification")[0]["id"] == notification_id
    assert until(laptop, "notification")[0]["id"] == notification_id
    # Bob's connection hears nothing of Ada's inbox.
    with pytest.raises(TimeoutError):
        receive(bob, timeout=1.0)


def test_missed_notifications_after_reconnect(celery_worker, asgi_server, open_socket, shop, token_for, make_user):
    make_user("ada")
    ws = open_socket(token_for("ada"))
    greeting(ws)
    [first] = send(shop, "ada", title="first")
    until(ws, "notification")
    ws.close()

    # Offline: these wait in the inbox. Another of ada's devices sees them pushed live, so their
    # pushes are over before this one reconnects (one could otherwise land among its greeting).
    other_device = open_socket(token_for("ada"))
    greeting(other_device)
    second, third = send(shop, "ada", title="second")[0], send(shop, "ada", title="third")[0]
    wait_delivered(second)
    wait_delivered(third)
    assert {until(other_device, "notification")[0]["id"] for _ in range(2)} == {second, third}

    ws = open_socket(token_for("ada"))
    missed, unread = greeting(ws)
    assert [m["title"] for m in missed] == ["first", "second", "third"]  # unread ones, oldest first
    assert unread == 3

    ws.send(json.dumps({"type": "requestMissedNotifications", "after": first, "requestId": "r1"}))
    end, answers = until(ws, "missedNotifications")
    assert [m["id"] for m in answers] == [second, third]
    assert end["requestId"] == "r1" and end["count"] == 2
    assert until(ws, "unreadCount")[0] == {"type": "unreadCount", "count": 3, "requestId": "r1"}

    since = Notification.objects.get(id=second).created_at.isoformat()
    ws.send(json.dumps({"type": "requestMissedNotifications", "since": since}))
    _, answers = until(ws, "missedNotifications")
    assert [m["id"] for m in answers] == [third]


def test_missed_notifications_keep_only_the_configured_days(asgi_server, open_socket, token_for, make_user):
    from django.utils import timezone

    ada = make_user("ada")
    for days, title in [(8, "too old"), (6, "recent")]:
        notification = Notification.objects.create(
            recipient=ada, category_id="orders", title=title, created_at=timezone.now() - timezone.timedelta(days=days)
        )
        Delivery.objects.create(notification=notification, channel="inapp", status=DeliveryStatus.SENT)
    missed, unread = greeting(open_socket(token_for("ada")))
    assert [m["title"] for m in missed] == ["recent"]
    assert unread == 2  # the count is the inbox's, as over REST


def test_read_and_ack_are_persisted_seen_by_every_device_and_over_rest(
    celery_worker, asgi_server, second_asgi_server, open_socket, shop, token_for, make_user
):
    ada = make_user("ada")
    first, second = send(shop, "ada", title="one")[0], send(shop, "ada", title="two")[0]
    wait_delivered(first)
    wait_delivered(second)
    phone = open_socket(token_for("ada"))
    laptop = open_socket(token_for("ada"), server=second_asgi_server)
    assert greeting(phone)[1] == 2
    greeting(laptop)

    phone.send(json.dumps({"type": "read", "id": first}))
    for ws in (phone, laptop):
        status, _ = until(ws, "notificationStatus")
        assert status["id"] == first and status["status"] == "read" and status["at"]
        assert until(ws, "unreadCount")[0]["count"] == 1

    laptop.send(json.dumps({"type": "ack", "id": second}))
    for ws in (phone, laptop):
        status, _ = until(ws, "notificationStatus")
        assert (status["id"], status["status"]) == (second, "seen")

    rest = APIClient()
    rest.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for('ada')}")
    by_id = {n["id"]: n for n in rest.get("/api/notifications/").json()["results"]}
    assert by_id[first]["read_at"] is not None and by_id[second]["seen_at"] is not None
    assert by_id[second]["read_at"] is None
    assert rest.get("/api/notifications/unread-count/").json() == {"unread": 1}

    # A read over REST reaches the open connections too.
    assert rest.put(f"/api/notifications/{second}/read").status_code == 200
    status, _ = until(laptop, "notificationStatus")
    assert (status["id"], status["status"]) == (second, "read")
    assert until(laptop, "unreadCount")[0]["count"] == 0
    assert Notification.objects.filter(recipient=ada, read_at__isnull=True).count() == 0


def test_subscribe_filters_categories(celery_worker, asgi_server, open_socket, shop, token_for, make_user):
    make_user("ada")
    ws = open_socket(token_for("ada"))
    greeting(ws)
    ws.send(json.dumps({"type": "subscribe", "categories": ["messages"], "requestId": 7}))
    assert receive(ws) == {"type": "subscribed", "categories": ["messages"], "requestId": 7}

    send(shop, "ada", title="an order", category="orders")
    [wanted] = send(shop, "ada", title="a message", category="messages")

    assert until(ws, "notification")[0]["id"] == wanted
    ws.send(json.dumps({"type": "subscribe", "categories": "all"}))
    assert until(ws, "subscribed")[0]["categories"] == "all"


def test_update_preferences_is_validated_like_rest(asgi_server, open_socket, token_for, make_user):
    make_user("ada")
    ws = open_socket(token_for("ada"))
    greeting(ws)
    rest = APIClient()
    rest.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for('ada')}")
    bad = {"email": "yes", "fax": True, "channels": {"system": {"email": False}, "nope": {"sms": True}},
           "quietHours": {"timezone": "Mars/Olympus", "start": "22:00", "end": "22:00"}}

    ws.send(json.dumps({"type": "updatePreferences", "preferences": bad, "requestId": "p1"}))
    error = receive(ws)
    rest_error = rest.put("/api/notifications/preferences/", bad, format="json")
    assert rest_error.status_code == 400
    assert error["type"] == "error" and error["code"] == "invalid" and error["requestId"] == "p1"
    assert error["errors"] == rest_error.json()["error"]["fields"]

    good = {"email": False, "channels": {"orders": {"inApp": True}},
            "quietHours": {"timezone": "Europe/Paris", "start": "22:00", "end": "07:00"}}
    ws.send(json.dumps({"type": "updatePreferences", "preferences": good}))
    answer = receive(ws)
    assert answer["type"] == "preferences"
    assert answer["preferences"] == rest.get("/api/notifications/preferences/").json()
    assert answer["preferences"]["email"] is False and answer["preferences"]["quietHours"]["end"] == "07:00"


def test_bad_messages_get_errors_and_the_connection_lives_on(asgi_server, open_socket, token_for, make_user):
    make_user("ada")
    stranger = Notification.objects.create(recipient=make_user("bob"), category_id="orders", title="bob's")
    ws = open_socket(token_for("ada"))
    greeting(ws)
    cases = [
        ("{not json", "invalid_json"),
        (json.dumps([1, 2]), "invalid_message"),
        (json.dumps({"type": "shout"}), "unknown_type"),
        (json.dumps({"type": "read"}), "invalid"),
        (json.dumps({"type": "ack", "id": "not-a-uuid"}), "invalid"),
        (json.dumps({"type": "read", "id": str(stranger.id)}), "not_found"),  # someone else's
    ]
    for text, code in cases:
        ws.send(text)
        error = receive(ws)
        assert (error["type"], error["code"]) == ("error", code), text
    ws.send(b"\x00binary")
    assert receive(ws)["code"] == "invalid_message"
    ws.send(json.dumps({"type": "ping", "requestId": "still-here"}))
    assert receive(ws) == {"type": "pong", "requestId": "still-here"}
    assert Notification.objects.get(id=stranger.id).read_at is None


def test_a_flood_of_bad_messages_closes_the_connection(asgi_server, open_socket, token_for, make_user):
    make_user("ada")
    ws = open_socket(token_for("ada"))
    greeting(ws)
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(50):
            ws.send("{junk")
            receive(ws, timeout=5)
    assert closed.value.rcvd.code == 1008


def test_other_rules_per_message_type(asgi_server, open_socket, token_for, make_user):
    make_user("ada")
    ws = open_socket(token_for("ada"))
    greeting(ws)
    for text, code in [
        (json.dumps({"type": "ack", "id": "not-a-uuid"}), "invalid"),
        (json.dumps({"type": "subscribe", "categories": ["nope"]}), "invalid"),
        (json.dumps({"type": "requestMissedNotifications", "since": "yesterday"}), "invalid"),
        (json.dumps({"type": "requestMissedNotifications", "after": "00000000-0000-0000-0000-000000000000"}), "not_found"),
    ]:
        ws.send(text)
        error = receive(ws)
        assert (error["type"], error["code"]) == ("error", code), text
        assert error["message"]


def token_refusals(shop, token_for, make_user):
    make_user("root", is_staff=True)
    return {
        "garbage": "abc.def.ghi",
        "expired": token_for("ada", lifetime=-120),
        "wrong audience": token_for("ada", audience="elsewhere"),
        "wrong client secret": token_for("ada", key="x" * 64),
        "unknown client": token_for("ada", kid="ffffffff"),
        "operator account": token_for("root"),
    }


@pytest.mark.parametrize("via", ["header", "subprotocol"])
def test_bad_tokens_close_with_4401_and_are_logged_without_the_token(
    asgi_server, open_socket, shop, token_for, make_user, via
):
    make_user("ada")
    for name, token in token_refusals(shop, token_for, make_user).items():
        ws = open_socket(token, via=via)
        with pytest.raises(ConnectionClosed) as closed:
            receive(ws, timeout=5)
        assert closed.value.rcvd.code == 4401, name
        assert token not in asgi_server.log()
    assert "end-user token refused on WebSocket /ws/notifications/: expired" in asgi_server.log()


def test_no_credentials_or_a_foreign_session_close_with_4401(asgi_server, open_socket, make_user, client):
    ada = make_user("ada", password="pw-for-ada")
    with pytest.raises(ConnectionClosed) as closed:
        receive(open_socket(), timeout=5)
    assert closed.value.rcvd.code == 4401
    # A session cookie sent by another site's page (cross-site WebSocket hijacking) counts for nothing.
    client.force_login(ada)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    foreign = open_socket(additional_headers={"Cookie": cookie}, origin="https://evil.example")
    with pytest.raises(ConnectionClosed) as closed:
        receive(foreign, timeout=5)
    assert closed.value.rcvd.code == 4401
    # The same cookie from our own page is Ada.
    ours = open_socket(additional_headers={"Cookie": cookie}, origin=asgi_server.url)
    assert greeting(ours) == ([], 0)


def test_dead_connection_is_closed_by_the_heartbeat(worker_env, tmp_path, token_for, make_user):
    """A client that stops answering pings (a phone that lost its network) is dropped."""
    from tests.support.workers import AsgiServerProcess

    make_user("ada")
    server = AsgiServerProcess(worker_env, log_dir=tmp_path, name="asgi-ping", ping_interval=0.5, ping_timeout=0.5).start()
    try:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        raw.sendall(
            (f"GET /ws/notifications/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
             f"Authorization: Bearer {token_for('ada')}\r\n\r\n").encode()
        )
        started = time.monotonic()
        received = b""
        while True:  # read (pings included) and never answer: the server must hang up
            chunk = raw.recv(65536)
            if not chunk:
                break
            received += chunk
        assert received.startswith(b"HTTP/1.1 101")
        assert time.monotonic() - started < 8
    finally:
        server.stop()


def test_push_failure_never_fails_a_rest_mark(settings, make_user, token_for, caplog):
    """Redis unreachable: the mark is still stored; the event is logged as lost (the inbox has it)."""
    from channels.layers import channel_layers

    ada = make_user("ada")
    notification = Notification.objects.create(recipient=ada, category_id="orders", title="x")
    settings.CHANNEL_LAYERS = {"default": {**settings.CHANNEL_LAYERS["default"],
                                           "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}}
    channel_layers.backends.pop("default", None)
    try:
        rest = APIClient()
        rest.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for('ada')}")
        with caplog.at_level(logging.WARNING, logger="notifications.realtime.events"):
            assert rest.put(f"/api/notifications/{notification.id}/read").status_code == 200
    finally:
        channel_layers.backends.pop("default", None)
    assert Notification.objects.get(id=notification.id).read_at is not None
    assert "could not push" in caplog.text


def handshake_request(server, token):
    return (f"GET /ws/notifications/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n").encode()


def raw_websocket(server, token):
    """A client that completes the handshake and then never reads: a stalled phone on a bad network."""
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.sendall(handshake_request(server, token))
    assert raw.recv(12) == b"HTTP/1.1 101"
    return raw


def test_a_slow_client_never_holds_up_the_others(asgi_server, open_socket, token_for, make_user):
    from notifications.realtime import events

    ada_user = make_user("ada")
    slow_user = make_user("slow")
    stalled = raw_websocket(asgi_server, token_for("slow"))
    ada = open_socket(token_for("ada"))
    greeting(ada)
    try:
        # Far more than the kernel buffers and the channel layer's per-connection backlog hold.
        big = {"type": "notificationStatus", "id": "x", "status": "read", "at": None, "padding": "x" * 20000}
        events.send_to_user(slow_user.pk, *[big] * 400)
        started = time.monotonic()
        events.send_to_user(ada_user.pk, events.unread_count_message(42))
        assert receive(ada, timeout=5) == {"type": "unreadCount", "count": 42}
        assert time.monotonic() - started < 2
    finally:
        stalled.close()


def test_a_reconnect_storm_is_turned_away_not_queued(worker_env, tmp_path, token_for, make_user):
    """With room for one handshake at a time, a burst of connects gets quick refusals (the
    clients retry with backoff) instead of a queue that outlives their timeouts."""
    from concurrent.futures import ThreadPoolExecutor

    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect as ws_connect

    from tests.support.workers import AsgiServerProcess

    make_user("ada")
    token = token_for("ada")
    server = AsgiServerProcess({**worker_env, "NOTIFY_WS_MAX_PENDING_HANDSHAKES": "1"}, log_dir=tmp_path,
                               name="asgi-storm").start()

    def attempt(_):
        started = time.monotonic()
        try:
            with ws_connect(server.ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=20) as ws:
                greeting(ws)
                return "connected", time.monotonic() - started
        except InvalidStatus as refused:
            return refused.response.status_code, time.monotonic() - started

    try:
        with ThreadPoolExecutor(max_workers=30) as pool:
            outcomes = list(pool.map(attempt, range(30)))
    finally:
        server.stop()
    kinds = {kind for kind, _ in outcomes}
    assert "connected" in kinds and 403 in kinds, outcomes
    assert kinds <= {"connected", 403}
    assert max(took for kind, took in outcomes if kind == 403) < 10


def test_a_push_to_hundreds_of_users_at_once_reaches_every_one(asgi_server, shop, token_for, django_user_model, caplog):
    """More users than one relay batch (NOTIFY_WS_RELAY_BATCH, 200): the batches reach the ASGI
    process's relay, which hands every connection its own message."""
    import asyncio

    from websockets.asyncio.client import connect

    from notifications.realtime import events
    from notifications.tenancy import grant

    users = django_user_model.objects.bulk_create([django_user_model(username=f"crowd{n}") for n in range(250)])
    grant(shop, users)
    tokens = {user.pk: token_for(user.username) for user in users}

    async def connected(token, gate):
        async with gate:  # within NOTIFY_WS_MAX_PENDING_HANDSHAKES
            ws = await connect(asgi_server.ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=20)
            while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "unreadCount":
                pass
            return ws

    async def scenario():
        gate = asyncio.Semaphore(16)
        sockets = dict(zip(tokens, await asyncio.gather(*(connected(token, gate) for token in tokens.values()))))
        try:
            await asyncio.to_thread(events.send_to_users, {user_id: [events.unread_count_message(user_id)] for user_id in sockets})
            return {user_id: json.loads(await asyncio.wait_for(ws.recv(), 10)) for user_id, ws in sockets.items()}
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets.values()))

    with caplog.at_level(logging.WARNING, logger="notifications.realtime.events"):
        received = asyncio.run(scenario())
    assert "could not push" not in caplog.text
    assert received == {user_id: {"type": "unreadCount", "count": user_id} for user_id in tokens}


def test_the_relay_joins_again_after_redis_lost_its_membership(asgi_server, open_socket, token_for, make_user, settings):
    """Redis restarted without persistence forgets the relays' group: each ASGI process's relay
    joins again within NOTIFY_WS_RELAY_RENEW (1 s here), so live pushes resume by themselves."""
    import redis

    from notifications.realtime import events

    ada = make_user("ada")
    ws = open_socket(token_for("ada"))
    greeting(ws)
    store = redis.Redis.from_url(settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["address"])
    assert store.delete(f"asgi:group:{events.RELAY_GROUP}") == 1  # channels-redis' key for the group
    deadline = time.monotonic() + 10
    while True:  # pushes sent before the relay is back are lost (the inbox still has the truth)
        events.send_to_user(ada.pk, events.unread_count_message(2))
        try:
            assert receive(ws, timeout=0.5) == {"type": "unreadCount", "count": 2}
            break
        except TimeoutError:
            assert time.monotonic() < deadline, "the relay never joined again"


def test_pushes_still_arrive_after_a_quiet_spell_longer_than_the_redis_block(asgi_server, open_socket, token_for, make_user):
    """channels-redis blocks 5 s per read; with redis-py 8's default 5 s socket timeout every quiet
    read ended in a TimeoutError (CHANNEL_LAYER_HOST raises the timeout)."""
    from notifications.realtime import events

    ada = make_user("ada")
    ws = open_socket(token_for("ada"))
    greeting(ws)
    time.sleep(6.5)
    events.send_to_user(ada.pk, events.unread_count_message(3))
    assert receive(ws, timeout=5) == {"type": "unreadCount", "count": 3}
    assert "TimeoutError" not in asgi_server.log()


def test_a_malformed_batch_on_the_relay_group_is_dropped_and_the_relay_listens_on(
    asgi_server, open_socket, token_for, make_user
):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from notifications.realtime import events

    ada = make_user("ada")
    ws = open_socket(token_for("ada"))
    greeting(ws)
    layer = get_channel_layer()
    for bad in ({"type": "relay.push"}, {"type": "relay.push", "pushes": [[ada.pk, [{"no": "type"}]]]},
                {"type": "relay.push", "pushes": "nonsense"}):
        async_to_sync(layer.group_send)(events.RELAY_GROUP, bad)
    events.send_to_user(ada.pk, events.unread_count_message(5))
    assert receive(ws, timeout=5) == {"type": "unreadCount", "count": 5}
    assert "could not hand out a batch" in asgi_server.log()


def ws_metrics(server):
    """{(name, labels): value} of the realtime processes' notify_ws_* metrics, as `server` serves them."""
    import re

    import requests

    text = requests.get(f"{server.url}/metrics", timeout=10).text
    values = {}
    for name, labels, value in re.findall(r'^(notify_ws_\w+)\{([^}]*)\} ([0-9.e+]+)$', text, re.M):
        values[(name, labels)] = values.get((name, labels), 0.0) + float(value)
    return values


def connections(values):
    return sum(v for (name, _), v in values.items() if name == "notify_ws_connections")


def test_metrics_count_connections_handshakes_and_pushes(asgi_server, open_socket, token_for, make_user, shop):
    """The realtime process's /metrics: its relay's open connections (published to Redis on each
    renewal, NOTIFY_WS_RELAY_RENEW 1 s here), handshakes by outcome, events handed out."""
    from websockets.exceptions import ConnectionClosed

    from notifications.realtime import events

    # Earlier tests' connections are closed: every relay's count settles at 0 (a stopped server's
    # key expires after a few renewals).
    wait_until(lambda: connections(ws_metrics(asgi_server)) == 0, timeout=30, message="no connection left open")
    before = ws_metrics(asgi_server)
    ada = make_user("ada")
    phone, laptop = open_socket(token_for("ada")), open_socket(token_for("ada"))
    greeting(phone)
    greeting(laptop)
    refused = open_socket(token_for("ada", audience="someone-else"))
    with pytest.raises(ConnectionClosed):
        refused.recv(timeout=5)
    events.send_to_user(ada.pk, events.unread_count_message(9))
    assert receive(phone)["count"] == receive(laptop)["count"] == 9
    wait_until(lambda: connections(ws_metrics(asgi_server)) == 2, message="the relay published its 2 connections")
    after = ws_metrics(asgi_server)
    counter = lambda values, name, outcome: values.get((name, f'outcome="{outcome}"'), 0.0)  # noqa: E731
    assert counter(after, "notify_ws_handshakes_total", "accepted") - counter(before, "notify_ws_handshakes_total", "accepted") == 2
    assert counter(after, "notify_ws_handshakes_total", "refused") - counter(before, "notify_ws_handshakes_total", "refused") == 1
    assert counter(after, "notify_ws_pushes_total", "queued") - counter(before, "notify_ws_pushes_total", "queued") >= 2
    laptop.close()
    wait_until(lambda: connections(ws_metrics(asgi_server)) == 1, message="the closed connection left the count")


def server_frames(data):
    """The text of each unmasked, unfragmented frame (payloads under 64 KiB) in `data`."""
    texts = []
    while data:
        length, start = data[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(data[2:4], "big"), 4
        texts.append(data[start:start + length].decode())
        data = data[start + length:]
    return texts


def test_the_handshake_answer_and_the_inbox_leave_in_one_write(asgi_server, token_for, make_user):
    """The 101 and the inbox's first messages are put together and sent at once (HeldWrites), so
    the client's first read has them all."""
    ada = make_user("ada")
    notification = Notification.objects.create(recipient=ada, category_id="orders", title="Order shipped")
    Delivery.objects.create(notification=notification, channel="inapp", status=DeliveryStatus.SENT)
    raw = socket.create_connection(("127.0.0.1", asgi_server.port), timeout=10)
    try:
        raw.sendall(handshake_request(asgi_server, token_for("ada")))
        first_read = raw.recv(65536)
    finally:
        raw.close()
    head, _, frames = first_read.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    assert [json.loads(text)["type"] for text in server_frames(frames)] == ["notification", "missedNotifications", "unreadCount"]


def test_a_client_hanging_up_while_its_inbox_loads_leaves_no_connection_behind(asgi_server, token_for, make_user):
    """Its handshake is accepted after the inbox is read; a client gone by then makes that send fail
    (uvicorn raises ClientDisconnected, and no disconnect event follows). The connection still
    leaves its relay: none is counted, and pushes are not handed to it."""
    make_user("ada")
    token = token_for("ada")
    wait_until(lambda: connections(ws_metrics(asgi_server)) == 0, timeout=30, message="no connection left open")
    accepted = lambda: ws_metrics(asgi_server).get(("notify_ws_handshakes_total", 'outcome="accepted"'), 0.0)  # noqa: E731
    before = accepted()
    for _ in range(5):
        raw = socket.create_connection(("127.0.0.1", asgi_server.port), timeout=10)
        raw.sendall(handshake_request(asgi_server, token))
        raw.shutdown(socket.SHUT_WR)  # gone before the inbox is read: the server sees the end at once
        raw.close()
    wait_until(lambda: accepted() - before == 5, message="the 5 handshakes were checked and their inboxes read")
    time.sleep(3)  # three renewals (NOTIFY_WS_RELAY_RENEW is 1 s here), each publishing the count
    assert connections(ws_metrics(asgi_server)) == 0
    assert "Exception in ASGI application" not in asgi_server.log()


def test_without_the_channel_layer_a_connection_still_gets_its_inbox(worker_env, tmp_path, shop, token_for, make_user):
    """Redis (the channel layer) unreachable: connections still open and get what they missed from
    Postgres, and a mark is persisted; only live pushes wait for the relay, which keeps trying."""
    from websockets.sync.client import connect as ws_connect

    from tests.support.workers import AsgiServerProcess

    ada = make_user("ada")
    waiting = Notification.objects.create(recipient=ada, category_id="orders", title="waiting")
    Delivery.objects.create(notification=waiting, channel="inapp", status=DeliveryStatus.SENT)
    server = AsgiServerProcess({**worker_env, "CHANNEL_LAYER_URL": "redis://127.0.0.1:1/0"}, log_dir=tmp_path,
                               name="asgi-no-redis").start()
    try:
        headers = {"Authorization": f"Bearer {token_for('ada')}"}
        with ws_connect(server.ws_url, additional_headers=headers, open_timeout=15) as ws:
            missed, unread = greeting(ws)
            assert [m["title"] for m in missed] == ["waiting"] and unread == 1
            ws.send(json.dumps({"type": "read", "id": str(waiting.id)}))
            wait_until(lambda: Notification.objects.get(id=waiting.id).read_at is not None, message="read persisted")
        assert "the relay could not join the channel layer" in server.log()
    finally:
        server.stop()


def test_with_postgres_unreachable_a_handshake_is_turned_away_to_retry_and_logged(worker_env, tmp_path, token_for, make_user):
    """Not a 4401 (the token may be fine) and not a 500: a 403 like a busy process, which clients
    retry with backoff, and a log line without the token."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect as ws_connect

    from tests.support.workers import AsgiServerProcess

    make_user("ada")
    token = token_for("ada")
    server = AsgiServerProcess({**worker_env, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere"}, log_dir=tmp_path,
                               name="asgi-no-postgres").start()
    try:
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(server.ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=30)
        assert refused.value.response.status_code == 403
        wait_until(lambda: "the database is unavailable, so a WebSocket handshake was turned away unchecked" in server.log(),
                   message="the refusal logged")
        assert token not in server.log() and "Exception in ASGI application" not in server.log()
    finally:
        server.stop()


def test_routine_connection_lines_stay_out_of_the_log_and_the_rest_stays_in(
    asgi_server, open_socket, token_for, make_user
):
    """uvicorn and websockets log three INFO lines per WebSocket (30,000 for a 10,000-client
    reconnect); they are dropped unless NOTIFY_WS_LOG_CONNECTIONS is set, the rest is kept."""
    make_user("ada")
    ws = open_socket(token_for("ada"))
    greeting(ws)
    ws.close()
    refused = open_socket("not-a-token")
    with pytest.raises(ConnectionClosed):
        receive(refused, timeout=5)
    wait_until(lambda: "end-user token refused on WebSocket" in asgi_server.log(), message="refusal logged")
    log = asgi_server.log()
    assert "Uvicorn running on" in log
    assert "[accepted]" not in log and "connection open" not in log and "connection closed" not in log


def test_the_routine_lines_are_dropped_before_a_record_is_made_and_the_others_pass(caplog):
    from notifications.ops.logs import WithoutRoutineConnectionLines

    made = []
    inner = logging.getLogger("tests.uvicorn.error")
    inner.setLevel(logging.DEBUG)
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(lambda *args, **kwargs: made.append(args[3]) or factory(*args, **kwargs))
    try:
        connection = WithoutRoutineConnectionLines(inner)
        connection.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", "/ws/notifications/")
        connection.info("connection open")
        connection.info("connection closed")
        assert made == []
        with caplog.at_level(logging.DEBUG, logger="tests.uvicorn.error"):
            connection.info('%s - "WebSocket %s" %d', "127.0.0.1:5000", "/ws/notifications/", 403)
            connection.error("parser failed")
            connection.debug("< EOF")
    finally:
        logging.setLogRecordFactory(factory)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", '127.0.0.1:5000 - "WebSocket /ws/notifications/" 403'), ("ERROR", "parser failed"), ("DEBUG", "< EOF")]
    # Attributed to whoever logged it, not to the adapter.
    assert {r.pathname for r in caplog.records} == {__file__}
    assert connection.level == logging.DEBUG and connection.isEnabledFor(logging.DEBUG)


def test_with_log_connections_set_the_routine_lines_are_kept(worker_env, tmp_path, token_for, make_user):
    from websockets.sync.client import connect as ws_connect

    from tests.support.workers import AsgiServerProcess

    make_user("ada")
    server = AsgiServerProcess({**worker_env, "NOTIFY_WS_LOG_CONNECTIONS": "true"}, log_dir=tmp_path, name="asgi-loud").start()
    try:
        with ws_connect(server.ws_url, subprotocols=["notifications", f"bearer.{token_for('ada')}"], open_timeout=30) as ws:
            greeting(ws)
        wait_until(lambda: "connection open" in server.log(), message="the opening logged")
        assert '"WebSocket /ws/notifications/" [accepted]' in server.log()
    finally:
        server.stop()


class notifications_table_gone:
    """The notifications table renamed away for a while: every query of it fails in Postgres (as
    when the database breaks mid-request), while the token check, which reads no notification, works."""

    def __enter__(self):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '10s'")
            cursor.execute("ALTER TABLE notifications_notification RENAME TO notifications_notification_away")

    def __exit__(self, *exc):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE notifications_notification_away RENAME TO notifications_notification")


def test_an_inbox_read_failing_on_connect_closes_with_1013_to_retry_and_is_logged(
    asgi_server, open_socket, token_for, make_user
):
    make_user("ada")
    token = token_for("ada")
    with notifications_table_gone():
        ws = open_socket(token)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                receive(ws, timeout=10)
        assert closed.value.rcvd.code == 1013
    wait_until(lambda: "the database failed while reading a connecting user's inbox" in asgi_server.log(),
               message="the failure logged")
    assert "Exception in ASGI application" not in asgi_server.log() and token not in asgi_server.log()
    # Once the database answers again, the same token connects and gets its inbox.
    assert greeting(open_socket(token)) == ([], 0)


def test_a_message_meeting_a_database_failure_gets_an_error_and_the_connection_lives_on(
    asgi_server, open_socket, token_for, make_user
):
    ada = make_user("ada")
    notification = Notification.objects.create(recipient=ada, category_id="orders", title="Order shipped")
    Delivery.objects.create(notification=notification, channel="inapp", status=DeliveryStatus.SENT)
    ws = open_socket(token_for("ada"))
    greeting(ws)
    with notifications_table_gone():
        ws.send(json.dumps({"type": "read", "id": str(notification.id), "requestId": "r1"}))
        error = receive(ws)
        assert error["type"] == "error" and error["code"] == "unavailable" and error["requestId"] == "r1"
    notification.refresh_from_db()
    assert notification.read_at is None
    ws.send(json.dumps({"type": "read", "id": str(notification.id), "requestId": "r2"}))
    status, _ = until(ws, "notificationStatus")
    assert status["id"] == str(notification.id) and status["status"] == "read"
    notification.refresh_from_db()
    assert notification.read_at is not None
    assert "Exception in ASGI application" not in asgi_server.log()
