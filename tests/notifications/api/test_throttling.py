"""The fixed-window throttle in Redis: atomic across threads and processes, 429 with Retry-After."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from notifications.api import throttling
from tests.support import in_a_fresh_window

pytestmark = pytest.mark.django_db


def test_concurrent_requests_never_lose_a_count():
    with ThreadPoolExecutor(max_workers=16) as pool:
        allowed = list(pool.map(lambda _: throttling.hit("test:concurrent", "250/minute", 1000.0)[0], range(300)))
    # Exactly the limit got through: no request read-modified-wrote over another.
    assert allowed.count(True) == 250


def test_windows_are_fixed_and_expire():
    assert throttling.hit("test:windows", "2/minute", 120.5) == (True, 59)
    assert throttling.hit("test:windows", "2/minute", 179.0)[0] is True
    assert throttling.hit("test:windows", "2/minute", 179.5)[0] is False
    assert throttling.hit("test:windows", "2/minute", 180.0)[0] is True  # the next window
    assert 0 < throttling.counter().ttl("throttle:test:windows:3") <= 61


def test_over_the_limit_is_a_429_with_retry_after(app_api, settings):
    settings.NOTIFY_THROTTLE_RATES = {"client": "2/hour", "user": "100/minute"}
    in_a_fresh_window(3600)
    assert [app_api.get("/api/notifications/").status_code for _ in range(3)] == [200, 200, 429]
    response = app_api.get("/api/notifications/")
    assert 1 <= int(response["Retry-After"]) <= 3600


def test_redis_unreachable_is_a_503_not_an_open_door(app_api, settings):
    settings.NOTIFY_THROTTLE_RATES = {"client": "1/hour", "user": "1/hour"}
    settings.CACHES = {**settings.CACHES, "throttle": {**settings.CACHES["throttle"], "LOCATION": "redis://127.0.0.1:1/0"}}
    response = app_api.get("/api/notifications/")
    assert response.status_code == 503 and response["Retry-After"]
