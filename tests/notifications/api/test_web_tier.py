"""The HTTP tier as the Procfile runs it (granian, WSGI, psycopg pool): under more concurrent
requests than it has Postgres connections it sheds load with 503 + Retry-After, never a 500, and
never holds more connections than its pools allow."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

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
