"""/health/live: the process answers. /health/ready: it can do its work.

Ready means: Postgres answers, Redis (shared state) answers, the broker accepts a connection,
beat's heartbeat is recent (its Redis lock, refreshed every tick, still held), and every queue
has at least one worker answering within NOTIFY_HEALTH_WORKER_TIMEOUT. Each check reports
`ok` and a reason; any failure makes the answer 503.
"""

import time

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from config.celery import QUEUES
from config.celery import app as celery_app
from notifications.clock.beat import LOCK_KEY
from notifications.ops import dashboard


def check_postgres():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "SELECT 1 answered"


def redis_client(url):
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def check_redis():
    redis_client(settings.REDIS_URL).ping()
    return "PING answered"


def check_broker():
    with celery_app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return f"connected ({conn.transport_cls})"


def check_beat():
    remaining_ms = redis_client(settings.REDIS_URL).pttl(LOCK_KEY)
    if remaining_ms is None or remaining_ms < 0:
        raise RuntimeError(f"no beat heartbeat: {LOCK_KEY} is not held (beat stopped for over "
                           f"{settings.NOTIFY_BEAT_LOCK_TTL}s, or never started)")
    age = max(settings.NOTIFY_BEAT_LOCK_TTL - remaining_ms / 1000, 0)
    return f"heartbeat {age:.1f}s ago"


def check_workers():
    wanted = settings.NOTIFY_HEALTH_QUEUES or QUEUES
    seen = dashboard.workers_per_queue()
    missing = [queue for queue in wanted if not seen.get(queue)]
    if missing:
        raise RuntimeError(
            f"no worker answered within {settings.NOTIFY_HEALTH_WORKER_TIMEOUT}s for queue(s): {', '.join(missing)}"
        )
    return ", ".join(f"{queue}: {len(seen[queue])}" for queue in wanted)


def checks():
    listed = {"postgres": check_postgres, "redis": check_redis, "broker": check_broker}
    if settings.NOTIFY_HEALTH_CHECK_BEAT:
        listed["beat"] = check_beat
    listed["workers"] = check_workers
    return listed


def run_checks():
    results = {}
    for name, check in checks().items():
        started = time.perf_counter()
        try:
            results[name] = {"ok": True, "reason": check()}
        except Exception as error:
            results[name] = {"ok": False, "reason": f"{type(error).__name__}: {error}"[:500]}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return results


@never_cache
def live(request):
    return JsonResponse({"status": "ok"})


@never_cache
def ready(request):
    results = run_checks()
    ok = all(result["ok"] for result in results.values())
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": results}, status=200 if ok else 503)
