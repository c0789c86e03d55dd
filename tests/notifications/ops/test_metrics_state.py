"""/metrics reads shared state at scrape time: a source that is down empties its own gauge (with a
warning), never the scrape."""

import logging

import pytest

pytestmark = pytest.mark.django_db


def test_shared_redis_down_leaves_its_gauges_empty_and_the_scrape_answers(client, settings, caplog):
    settings.METRICS_TOKEN = ""
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="notifications.ops.metrics"):
        response = client.get("/metrics")
    assert response.status_code == 200
    body = response.content.decode()
    assert "# TYPE notify_ws_connections gauge" in body and "notify_ws_connections{" not in body
    assert "# TYPE notify_circuit_state gauge" in body
    assert "metrics: WebSocket connections unavailable" in caplog.text
    assert "metrics: circuit states unavailable" in caplog.text
