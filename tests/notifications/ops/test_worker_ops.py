"""What operators see of real workers: /metrics counting deliveries made in worker processes,
the correlation id from the API request in the delivery task's log line, /health/ready, and
the test-notification command."""

import os
import re
import urllib.request

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from channels_delivery.engine.circuit import breaker
from config.celery import app as celery_app
from notifications.models import Delivery, DeliveryStatus

from tests.support import reset_engine_state, wait_until
from tests.support.workers import BeatProcess, WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def metric(text, name, **labels):
    """The value of one sample in Prometheus' text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_deliveries_made_in_worker_processes(celery_worker, sendgrid, app_api, make_user, client,
                                                           settings, metrics_dir, worker_env):
    settings.PROMETHEUS_MULTIPROC_DIR = str(metrics_dir)
    settings.METRICS_TOKEN = "scrape-secret"
    make_user("lin", email="lin@example.com")
    before = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").content.decode()
    sent_before = metric(before, "notify_delivery_attempts_total", channel="email", provider="sendgrid", outcome="sent")

    response = app_api.post("/api/notifications/", {"recipients": ["lin"], "category": "orders", "title": "Shipped",
                                                    "channels": ["email", "inapp"]}, format="json")
    assert response.status_code == 202
    [notification_id] = response.json()["ids"]
    gone_out = [DeliveryStatus.SENT, DeliveryStatus.DELIVERED]  # in-app is delivered at once
    wait_until(lambda: Delivery.objects.filter(notification_id=notification_id, status__in=gone_out).count() == 2,
               message="both channels sent")

    def scraped():
        text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").content.decode()
        sent = metric(text, "notify_delivery_attempts_total", channel="email", provider="sendgrid", outcome="sent")
        return text if sent >= sent_before + 1 else None

    text = wait_until(scraped, message="worker counters in /metrics")
    assert metric(text, "notify_delivery_attempts_total", channel="inapp", outcome="sent") >= 1
    assert metric(text, "notify_delivery_latency_seconds_count", channel="email", provider="sendgrid") >= 1
    assert metric(text, "notify_http_requests_total", route="notification-list", method="POST", status="202") >= 1
    # Per priority lane on Redis; RabbitMQ's queues have one total.
    assert re.search(r'notify_queue_depth\{lane="(urgent|all)",queue="email"\}', text)
    assert metric(text, "notify_circuit_state", provider="sendgrid") == 0
    for _ in range(10):
        breaker("twilio").record_failure()
    opened = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").content.decode()
    assert metric(opened, "notify_circuit_state", provider="twilio") == 2
    reset_engine_state()
    assert "notify_oldest_waiting_delivery_seconds" in text

    # The worker's own exporter serves the same counters (for machines without a web process).
    port = worker_env["NOTIFY_WORKER_METRICS_PORT"]
    exported = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert metric(exported, "notify_delivery_attempts_total", channel="email", provider="sendgrid", outcome="sent") >= 1

    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 403  # the test client comes from 127.0.0.1
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert client.get("/metrics").status_code == 200


def test_dead_letters_retries_and_fallbacks_are_counted(celery_worker, sendgrid, app_api, make_user, client, settings,
                                                        metrics_dir):
    settings.PROMETHEUS_MULTIPROC_DIR = str(metrics_dir)
    make_user("kim", email="kim@example.com")
    read = lambda: client.get("/metrics").content.decode()  # noqa: E731
    dead_before = metric(read(), "notify_dead_letters_total", channel="email")
    sendgrid.fail_next(status=400, body=b'{"errors":[{"message":"Mailbox unavailable"}]}')
    app_api.post("/api/notifications/", {"recipients": ["kim"], "category": "orders", "title": "Bounce",
                                         "channels": ["email"]}, format="json")
    wait_until(lambda: metric(read(), "notify_dead_letters_total", channel="email") >= dead_before + 1,
               message="dead letter counted")
    assert metric(read(), "notify_delivery_attempts_total", channel="email", provider="sendgrid",
                  outcome="permanent_error") >= 1

    # A transient failure is retried, and a permanent one falls back along the chain.
    retries_before = metric(read(), "notify_delivery_retries_total", channel="email")
    fallbacks_before = metric(read(), "notify_fallbacks_total", from_channel="email", to_channel="inapp")
    sendgrid.fail_next(status=503, body=b'{"errors":[{"message":"busy"}]}')
    retried = app_api.post("/api/notifications/", {"recipients": ["kim"], "category": "orders", "title": "Retried",
                                                   "channels": ["email"]}, format="json").json()["ids"][0]
    wait_until(lambda: Delivery.objects.filter(notification_id=retried, status=DeliveryStatus.SENT).exists(),
               message="sent on its retry")
    assert metric(read(), "notify_delivery_retries_total", channel="email") >= retries_before + 1
    sendgrid.fail_next(status=400, body=b'{"errors":[{"message":"Mailbox unavailable"}]}')
    app_api.post("/api/notifications/", {"recipients": ["kim"], "category": "orders", "title": "Fell back",
                                         "channels": [["email", "inapp"]]}, format="json")
    wait_until(lambda: metric(read(), "notify_fallbacks_total", from_channel="email", to_channel="inapp")
               >= fallbacks_before + 1, message="fallback counted")


def control(command, queue, worker):
    """A remote-control command to `worker`, on a connection of its own: a pooled one may have
    died with a Redis restart simulated by an earlier test (CLIENT KILL), and its replies would
    never come."""
    with celery_app.connection_for_write() as connection:
        getattr(celery_app.control, command)(queue, destination=[worker.hostname], reply=True, timeout=5,
                                             connection=connection)


def test_token_bucket_waits_are_counted(celery_worker, worker_env, sendgrid, app_api, make_user, client, settings,
                                        metrics_dir, tmp_path):
    settings.PROMETHEUS_MULTIPROC_DIR = str(metrics_dir)
    reset_engine_state()
    read = lambda: client.get("/metrics").content.decode()  # noqa: E731
    waits_before = metric(read(), "notify_rate_limit_waits_total", provider="sendgrid")
    for n in range(4):
        make_user(f"limited{n}", email=f"limited{n}@example.com")
    # Email goes to a worker whose SendGrid bucket holds one token and refills two a second.
    limited = None
    try:
        control("cancel_consumer", "email", celery_worker)
        limited = WorkerProcess({**worker_env, "NOTIFY_RATE_LIMITS": "sendgrid=2:1"}, log_dir=tmp_path,
                                queues=["email"], concurrency=2, name="rate-limited").start()
        app_api.post("/api/notifications/", {"recipients": [f"limited{n}" for n in range(4)], "category": "orders",
                                             "title": "Throttled", "channels": ["email"]}, format="json")
        sendgrid.wait_for(4, timeout=30)
    finally:
        if limited is not None:
            limited.stop()
        control("add_consumer", "email", celery_worker)
        reset_engine_state()
    assert metric(read(), "notify_rate_limit_waits_total", provider="sendgrid") >= waits_before + 1
    assert metric(read(), "notify_rate_limit_wait_seconds_count", provider="sendgrid") >= 1


def test_the_request_id_follows_the_notification_into_the_delivery_task_log(celery_worker, sendgrid, app_api,
                                                                           make_user):
    make_user("ria", email="ria@example.com")
    response = app_api.post("/api/notifications/", {"recipients": ["ria"], "category": "orders", "title": "Traced",
                                                    "channels": ["email"]}, format="json",
                            HTTP_X_REQUEST_ID="trace-ops-42")
    assert response["X-Request-ID"] == "trace-ops-42"
    [notification_id] = response.json()["ids"]
    delivery = wait_until(lambda: Delivery.objects.filter(notification_id=notification_id, status=DeliveryStatus.SENT).first(),
                          message="sent")
    # The worker's text line: "<time> INFO channels_delivery.engine.delivery [trace-ops-42] delivery <id> sent: ..."
    line = wait_until(lambda: next((line for line in celery_worker.log().splitlines()
                                    if f"delivery {delivery.id} sent" in line), None),
                      message="the delivery task's log line")
    assert " INFO channels_delivery.engine.delivery [trace-ops-42] " in line
    assert not any("nk_" in line for line in celery_worker.log().splitlines())


def test_send_test_notification_command(celery_worker, sendgrid, make_user, capsys):
    make_user("tess", email="tess@example.com")
    call_command("send_test_notification", "tess", "--channel", "email", "--wait", "20")
    out = capsys.readouterr().out
    assert "sent via sendgrid" in out
    assert sendgrid.wait_for(1)[0].json()["personalizations"][0]["to"][0]["email"] == "tess@example.com"
    with pytest.raises(CommandError, match="No user named"):
        call_command("send_test_notification", "nobody", "--channel", "email")
    with pytest.raises(CommandError, match="No category"):
        call_command("send_test_notification", "tess", "--channel", "email", "--category", "nope")


def test_ready_when_everything_answers(celery_worker, worker_env, client, settings, tmp_path):
    settings.NOTIFY_HEALTH_WORKER_TIMEOUT = 2.0
    beat = BeatProcess(worker_env, log_dir=tmp_path).start()
    try:
        response = wait_until(lambda: (r := client.get("/health/ready")).status_code == 200 and r, timeout=15,
                              message="ready")
    finally:
        beat.stop()
    checks = response.json()["checks"]
    assert set(checks) == {"postgres", "redis", "broker", "beat", "workers"}
    assert all(check["ok"] for check in checks.values())
    assert "heartbeat" in checks["beat"]["reason"]
    assert client.get("/health/live").json() == {"status": "ok"}


def test_unready_when_redis_is_unreachable(celery_worker, client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/health/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert not checks["redis"]["ok"] and "Connection" in checks["redis"]["reason"]
    assert checks["postgres"]["ok"]


def test_unready_when_postgres_is_unreachable(client, settings):
    settings.NOTIFY_HEALTH_WORKER_TIMEOUT = 0.2
    original = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["PORT"] = 1
    try:
        response = client.get("/health/ready")
    finally:
        connection.close()
        connection.settings_dict.update(original)
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert not checks["postgres"]["ok"] and "connection" in checks["postgres"]["reason"].lower()
    assert checks["redis"]["ok"]
    assert client.get("/health/live").status_code == 200


def test_unready_when_a_queue_has_no_worker(celery_worker, client, settings):
    settings.NOTIFY_HEALTH_WORKER_TIMEOUT = 1.0
    control("cancel_consumer", "sms", celery_worker)  # the only worker stops taking sms
    try:
        response = client.get("/health/ready")
    finally:
        control("add_consumer", "sms", celery_worker)
    assert response.status_code == 503
    workers = response.json()["checks"]["workers"]
    assert not workers["ok"] and workers["reason"].endswith("queue(s): sms")


def niceness_of(pid):
    """The nice value of a process and of each of its children (a prefork pool's processes), and
    of its session's autogroup where the kernel has them ("/autogroup-12 nice 7")."""
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        processes = [pid, *map(int, children.read().split())]
    autogroup = None
    if os.path.exists(f"/proc/{pid}/autogroup"):
        with open(f"/proc/{pid}/autogroup") as line:
            autogroup = int(line.read().split()[-1])
    return [os.getpriority(os.PRIO_PROCESS, p) for p in processes], autogroup


def test_a_worker_started_with_a_niceness_runs_its_pool_at_it_and_still_delivers(worker_env, sendgrid, app_api,
                                                                               make_user, tmp_path):
    make_user("noor", email="noor@example.com")
    worker = WorkerProcess(worker_env, log_dir=tmp_path, name="niced", extra_args=["--niceness", "7"]).start()
    try:
        niceness, autogroup = niceness_of(worker.process.pid)
        response = app_api.post("/api/notifications/", {"recipients": ["noor"], "category": "orders",
                                                        "title": "Shipped", "channels": ["email"]}, format="json")
        [notification_id] = response.json()["ids"]
        wait_until(lambda: Delivery.objects.filter(notification_id=notification_id, status=DeliveryStatus.SENT).exists(),
                   message="the email sent by the niced worker")
    finally:
        worker.stop()
    assert len(niceness) == 3 and set(niceness) == {os.getpriority(os.PRIO_PROCESS, 0) + 7}
    # It leads its own session (as under honcho): with autogroups, the session's share gives way too.
    assert autogroup in (None, 7)


@pytest.mark.parametrize("value, said", [("25", "Invalid value for '--niceness': 25 is not in the range 0<=x<=19."),
                                         ("low", "Invalid value for '--niceness': 'low' is not a valid integer")])
def test_a_worker_refuses_a_niceness_it_cannot_use_and_says_why(worker_env, tmp_path, value, said):
    worker = WorkerProcess(worker_env, log_dir=tmp_path, name="refused", extra_args=["--niceness", value])
    with pytest.raises(RuntimeError, match="worker exited early"):
        worker.start()
    assert said in worker.log()
