"""The HTTP tier as the Procfile runs it (granian, WSGI, psycopg pool): under more concurrent
requests than it has Postgres connections it sheds load with 503 + Retry-After, never a 500, and
never holds more connections than its pools allow; a statement stuck past DATABASE_STATEMENT_TIMEOUT
is cancelled and answered the same way."""

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from notifications.models import Notification
from tests.support.workers import WebServerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_overload_is_shed_with_503_and_retry_after_never_500(worker_env, tmp_path, sender_key, make_user):
    make_user("ada")
    # One process, many threads, one pooled connection that a request waits for at most 0.05 s.
    env = {**worker_env, "WEB_CONCURRENCY": "1", "WEB_THREADS": "16", "DATABASE_POOL_MAX_SIZE": "1",
           "DATABASE_POOL_TIMEOUT": "0.05", "NOTIFY_THROTTLE_CLIENT_RATE": "100000/minute"}
    server = WebServerProcess(env, log_dir=tmp_path, name="web").start()
    try:
        headers = {"Authorization": f"Bearer {sender_key}"}
        body = {"recipients": ["ada"], "category": "orders", "title": "hi", "channels": ["inapp"]}
        assert requests.post(f"{server.url}/api/notifications/", json=body, headers=headers, timeout=30).status_code == 202

        def send(_):
            response = requests.post(f"{server.url}/api/notifications/", json=body, headers=headers, timeout=30)
            return response.status_code, response.headers.get("Retry-After"), response.text

        with ThreadPoolExecutor(max_workers=32) as pool:
            answers = list(pool.map(send, range(200)))
        statuses = sorted({status for status, _, _ in answers})
        shed = [answer for answer in answers if answer[0] == 503]
        assert set(statuses) <= {202, 503}, statuses
        assert shed, "32 concurrent callers on one pooled connection should have been shed"
        assert all(retry_after and '"status":503' in text.replace(" ", "") for _, retry_after, text in shed)
        assert "Internal Server Error" not in server.log()
    finally:
        server.stop()


def test_a_statement_past_the_timeout_is_cancelled_and_the_request_answers_503(worker_env, tmp_path, sender_key,
                                                                               make_user):
    """A stuck query cannot keep one of the pool's connections: Postgres cancels it after
    DATABASE_STATEMENT_TIMEOUT seconds, and the request answers 503 + Retry-After."""
    make_user("ada")
    env = {**worker_env, "WEB_CONCURRENCY": "1", "WEB_THREADS": "2", "DATABASE_POOL_MAX_SIZE": "1",
           "DATABASE_STATEMENT_TIMEOUT": "0.5"}
    server = WebServerProcess(env, log_dir=tmp_path, name="web").start()
    headers = {"Authorization": f"Bearer {sender_key}"}
    body = {"recipients": ["ada"], "category": "orders", "title": "hi", "channels": ["inapp"]}
    try:
        with psycopg.connect(worker_env["DATABASE_URL"]) as holder:
            # another session holds the table, so the send's INSERT waits for it
            holder.execute("LOCK TABLE notifications_notification IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            response = requests.post(f"{server.url}/api/notifications/", json=body, headers=headers, timeout=30)
            waited = time.monotonic() - started
            holder.rollback()
        assert response.status_code == 503 and response.headers["Retry-After"], response.text
        assert 0.5 <= waited < 5
        # the connection went back to the pool unharmed: the next send is stored
        assert requests.post(f"{server.url}/api/notifications/", json=body, headers=headers,
                             timeout=30).status_code == 202
        assert Notification.objects.filter(recipient__username="ada").count() == 1
        assert "Internal Server Error" not in server.log()
    finally:
        server.stop()
