"""Postgres, Redis or the broker unreachable: every request answers 503 with Retry-After in the
one error format, and nothing is accepted half-way. Each test really cuts the service off: the
connection is pointed at a closed port, or our own Postgres backend is terminated mid-request."""

import contextlib
import socket

import psycopg
import pytest
from django.db import connection

from config.celery import app as celery_app
from notifications.models import Broadcast, IdempotencyRecord, Notification

from tests.conftest import database_url

SEND = {"recipients": ["42"], "category": "orders", "title": "Order 123 shipped"}


@pytest.fixture
def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_unavailable(response):
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) >= 1
    assert response.json() == {"error": {
        "status": 503, "code": "unavailable",
        "message": "A backing service is unavailable; nothing was accepted. Try again shortly.",
    }}


@contextlib.contextmanager
def postgres_unreachable(port):
    saved = connection.settings_dict["HOST"], connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["HOST"], connection.settings_dict["PORT"] = "127.0.0.1", port
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["HOST"], connection.settings_dict["PORT"] = saved


@contextlib.contextmanager
def broker_unreachable(port):
    saved = celery_app.conf.broker_url
    celery_app.conf.broker_url = f"redis://127.0.0.1:{port}/0"
    reset_producers()
    try:
        yield
    finally:
        celery_app.conf.broker_url = saved
        reset_producers()


def reset_producers():
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.mark.django_db(transaction=True)
def test_postgres_unreachable_answers_503_on_every_kind_of_path(app_api, make_user, closed_port, client):
    from notifications.planning.unsubscribe import token_for

    token = token_for(make_user("42").pk, "orders", "email", "42@example.com")
    with postgres_unreachable(closed_port):
        assert_unavailable(app_api.post("/api/notifications/", SEND, format="json"))
        assert_unavailable(app_api.get("/api/notifications/"))
        unsubscribe = client.post(f"/unsubscribe/{token}/")
        assert unsubscribe.status_code == 503 and "Retry-After" in unsubscribe
    assert Notification.objects.count() == 0
    assert app_api.post("/api/notifications/", SEND, format="json").status_code == 202


@pytest.mark.django_db(transaction=True)
def test_postgres_dying_mid_request_stores_nothing(app_api, make_user):
    """Our backend is terminated just before the notification rows are inserted."""
    make_user("42")

    def terminate_before_insert(execute, sql, params, many, context):
        if sql.startswith('INSERT INTO "notifications_notification"'):
            pid = context["connection"].connection.info.backend_pid
            with psycopg.connect(database_url(), autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", [pid])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(terminate_before_insert):
        response = app_api.post("/api/notifications/", SEND, format="json", HTTP_IDEMPOTENCY_KEY="order-123")
    assert_unavailable(response)
    connection.close()
    assert Notification.objects.count() == 0 and IdempotencyRecord.objects.count() == 0
    # The client's retry with the same key goes through once Postgres answers again.
    retry = app_api.post("/api/notifications/", SEND, format="json", HTTP_IDEMPOTENCY_KEY="order-123")
    assert retry.status_code == 202 and Notification.objects.count() == 1


@pytest.mark.django_db
def test_redis_unreachable_answers_503(app_api, make_user, closed_port, settings, client):
    make_user("42")
    settings.CACHES = {**settings.CACHES, "throttle": {**settings.CACHES["throttle"],
                                                       "LOCATION": f"redis://127.0.0.1:{closed_port}/0"}}
    assert_unavailable(app_api.post("/api/notifications/", SEND, format="json"))
    assert_unavailable(client.get("/unsubscribe/some-token/"))
    assert Notification.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_broker_unreachable_withdraws_what_was_stored(app_api, make_user, closed_port):
    make_user("42")
    with broker_unreachable(closed_port):
        send = app_api.post("/api/notifications/", SEND, format="json", HTTP_IDEMPOTENCY_KEY="order-9")
        plain = app_api.post("/api/notifications/", SEND, format="json")  # stored without a transaction
        broadcast = app_api.post("/api/notifications/", {"to": {"all": True}, "category": "orders", "title": "Hi"},
                                 format="json")
    assert_unavailable(send)
    assert_unavailable(plain)
    assert_unavailable(broadcast)
    # Nothing half-way: no notification waits undispatched, no broadcast, no recorded answer.
    assert Notification.objects.count() == 0 and Broadcast.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0
    retry = app_api.post("/api/notifications/", SEND, format="json", HTTP_IDEMPOTENCY_KEY="order-9")
    assert retry.status_code == 202 and Notification.objects.count() == 1
