"""Helpers shared by the tests: waiting for an outcome, free ports, engine state, small builders."""

import socket
import time

import redis
from django.conf import settings

from notifications.models import Category, Delivery, Notification, NotificationStatus


def wait_until(predicate, timeout=20.0, interval=0.05, message="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def in_a_fresh_window(seconds=60, room=10):
    """Waits, if need be, until the current fixed throttle window (notifications/api/throttling.py)
    has at least `room` seconds left, so that a test's few requests all count in one window."""
    left = seconds - time.time() % seconds
    if left < room:
        time.sleep(left + 0.05)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reset_engine_state():
    """Forget circuit and rate-limit state so one test's outage does not leak into the next."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter("notify:*"))
    if keys:
        client.delete(*keys)


def chain(user, *links, title="Hello"):
    """A dispatched notification whose one route is the given (channel, status, extra) links."""
    notification = Notification.objects.create(
        recipient=user, category=Category.objects.get(key="orders"), title=title,
        status=NotificationStatus.DISPATCHED, routes=[[channel for channel, *_ in links]],
    )
    rows = []
    for position, (channel, status, *extra) in enumerate(links):
        message = {"email": {"to": user.email, "subject": title, "text": "Body"},
                   "inapp": {"user_id": user.pk, "title": title, "body": ""},
                   "sms": {"to": "+14155550100", "text": title}}[channel]
        rows.append(Delivery.objects.create(
            notification=notification, channel=channel, status=status, position=position, message=message,
            **(extra[0] if extra else {}),
        ))
    return notification, rows


def window_max(times, width=1.0):
    """The most events inside any window of `width` seconds."""
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] > width:
            start += 1
        best = max(best, end - start + 1)
    return best


def send(api, **body):
    response = api.post("/api/notifications/", {"category": "orders", "title": "Order shipped", **body}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["ids"]


def end_user_token(client, username, *, key=None, algorithm="HS256", lifetime=300, audience="notifications",
                   kid=None, **claims):
    """A JWT as an app signs it for one of its users (PyJWT, like the apps' own code)."""
    import jwt

    now = int(time.time())
    payload = {"sub": username, "aud": audience, "iat": now, "exp": now + lifetime, **claims}
    payload = {name: value for name, value in payload.items() if value is not None}
    signing_key = key if key is not None else client.token_secret
    return jwt.encode(payload, signing_key, algorithm=algorithm, headers={"kid": kid or client.key_prefix})
