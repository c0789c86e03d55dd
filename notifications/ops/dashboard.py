"""The figures operators look at: per channel and provider over a window, circuit breakers,
broker queues per priority lane, the oldest waiting delivery, dead letters and workers per queue.
Read by the admin dashboard, /metrics, /health/ready and `manage.py ops_status`."""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Min
from django.utils import timezone

from channels_delivery import registry
from channels_delivery.engine.circuit import breaker
from config.celery import PRIORITY_LANES, QUEUES
from config.celery import app as celery_app
from notifications.models import Delivery, DeliveryStatus, Notification

SUMMARY_SQL = """
SELECT d.channel, d.provider, count(*),
       count(*) FILTER (WHERE d.sent_at IS NOT NULL),
       count(*) FILTER (WHERE d.status = 'delivered'),
       count(*) FILTER (WHERE d.status IN ('failed', 'bounced', 'undelivered')),
       count(*) FILTER (WHERE d.status IN ('sent', 'delivered')),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM d.sent_at - n.created_at) * 1000
       ) FILTER (WHERE d.sent_at IS NOT NULL)
FROM {delivery} d JOIN {notification} n ON n.id = d.notification_id
WHERE d.created_at >= %s AND d.created_at < %s
GROUP BY d.channel, d.provider
ORDER BY d.channel, d.provider
"""


def delivery_summary(since, until):
    """Per channel and provider over deliveries created in [since, until): counts and latency."""
    sql = SUMMARY_SQL.format(delivery=Delivery._meta.db_table, notification=Notification._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql, [since, until])
        rows = cursor.fetchall()
    summary = []
    for channel, provider, total, sent, delivered, failed, succeeded, percentiles in rows:
        decided = succeeded + failed
        p50, p95, p99 = percentiles or (None, None, None)
        summary.append({
            "channel": channel, "provider": provider, "total": total, "sent": sent, "delivered": delivered,
            "failed": failed, "success_rate": round(succeeded / decided, 4) if decided else None,
            "latency_ms": {"p50": p50, "p95": p95, "p99": p99},
        })
    return summary


def providers():
    return sorted({provider.name for name in registry.NAMES for provider in registry.kit(name).providers})


def circuit_states():
    """{provider: "closed" | "half_open" | "open"}, from the breakers' shared Redis state."""
    return {name: breaker(name).state() for name in providers()}


def lane_names():
    """Broker priority steps -> the lane names callers know (urgent, high, medium, low)."""
    return {step: lane for lane, step in PRIORITY_LANES.items()}


def queue_depths(queues=QUEUES):
    """{queue: {lane: messages waiting}}; on Redis per priority lane, on RabbitMQ one total ("all")."""
    lanes = lane_names()
    depths = {}
    with celery_app.connection_for_read() as conn:
        channel = conn.default_channel
        if hasattr(channel, "_q_for_pri"):
            steps = sorted(lanes)
            with channel.conn_or_acquire() as client:
                pipe = client.pipeline()
                for queue in queues:
                    for step in steps:
                        pipe.llen(channel._q_for_pri(queue, step))
                sizes = iter(pipe.execute())
            for queue in queues:
                depths[queue] = {lanes[step]: int(next(sizes)) for step in steps}
        else:
            for queue in queues:
                depths[queue] = {"all": channel.queue_declare(queue=queue, passive=True).message_count}
    return depths


def oldest_waiting(now=None):
    """{channel: seconds} since the oldest delivery still `queued` was queued (index on status, updated_at)."""
    now = now or timezone.now()
    rows = (
        Delivery.objects.filter(status=DeliveryStatus.QUEUED)
        .values("channel").annotate(oldest=Min("updated_at")).order_by()
    )
    return {row["channel"]: max((now - row["oldest"]).total_seconds(), 0.0) for row in rows}


def dead_letter_count(since=None):
    queryset = Delivery.objects.dead_letters()
    if since is not None:
        queryset = queryset.filter(updated_at__gte=since)
    return queryset.count()


def workers_per_queue(timeout=None):
    """{queue: [worker names]} for every known queue: who answered `active_queues` in time."""
    timeout = settings.NOTIFY_HEALTH_WORKER_TIMEOUT if timeout is None else timeout
    # A connection of its own, closed after: a pooled one may have died with a Redis restart, and
    # waiting for replies on a dead connection fails where a fresh one would answer.
    with celery_app.connection_for_read() as connection:
        answers = celery_app.control.inspect(timeout=timeout, connection=connection).active_queues() or {}
    seen = {queue: [] for queue in QUEUES}
    for worker, queues in sorted(answers.items()):
        for queue in queues or []:
            seen.setdefault(queue["name"], []).append(worker)
    return seen


def overview(now=None):
    """Everything the dashboard shows, each part independent: one that fails says why."""
    now = now or timezone.now()
    parts = {
        "last_hour": lambda: delivery_summary(now - timedelta(hours=1), now),
        "last_day": lambda: delivery_summary(now - timedelta(days=1), now),
        "circuits": circuit_states,
        "queues": queue_depths,
        "oldest_waiting": lambda: oldest_waiting(now),
        "dead_letters": dead_letter_count,
        "dead_letters_last_day": lambda: dead_letter_count(now - timedelta(days=1)),
        "workers": workers_per_queue,
    }
    result, errors = {"generated_at": now}, {}
    for name, read in parts.items():
        try:
            result[name] = read()
        except Exception as error:  # a down Redis must not take the whole page with it
            errors[name] = f"{type(error).__name__}: {error}"
            result[name] = None
    result["errors"] = errors
    return result
