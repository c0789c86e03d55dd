"""The Celery app: one queue per channel (from the channel registry) so each scales on its own."""

import logging
import os

import click
from celery import Celery, signals
from kombu import Queue

from channels_delivery import registry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Message priority per notification priority. On Redis, 0 is served first: each queue is a list
# per step (0, 3, 6, 9) and a worker pops the lower step first, so an urgent message never waits
# behind a bulk backlog, only behind what a worker has already prefetched. RabbitMQ ignores
# priorities on these (non-priority) queues.
PRIORITY_LANES = {"urgent": 0, "high": 3, "medium": 6, "low": 9}


def message_priority(priority):
    return PRIORITY_LANES.get(priority, PRIORITY_LANES["medium"])


CHANNEL_QUEUES = [entry.queue for entry in registry.CHANNELS]
QUEUES = ["dispatch", *CHANNEL_QUEUES, "maintenance"]

app = Celery("notify")
# Broker, reliability and limits come from CELERY_* settings (read from the environment).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_queues=[Queue(name) for name in QUEUES],
    task_default_queue="dispatch",
    task_routes={
        "notifications.*": {"queue": "dispatch"},
        "maintenance.*": {"queue": "maintenance"},
        **{entry.task_name: {"queue": entry.queue} for entry in registry.CHANNELS},
        **{entry.chunk_task_name: {"queue": entry.queue} for entry in registry.CHANNELS},
        # status events to API clients' status webhooks go out like webhooks
        "channels_delivery.send_status_event": {"queue": "webhook"},
    },
)
app.autodiscover_tasks(["notifications", "notifications.clock", "channels_delivery.engine"])


# `celery worker --niceness N`: the Procfile runs every worker at ${WORKER_NICENESS:-10}, so on a
# machine shared with the web tier the API keeps answering under load and deliveries wait
# (durably, in the broker) instead of requests.
app.user_options["worker"].add(click.Option(
    ("--niceness",), type=click.IntRange(0, 19), default=0, show_default=True,
    help="CPU priority of the worker and its pool (nice(2) increment): 10 gives way to the web tier.",
))


@signals.worker_init.connect
def lower_cpu_priority(sender, **kwargs):
    """--niceness, set before the pool starts, so a prefork pool's children inherit it."""
    niceness = sender.options.get("niceness") or 0
    if not niceness:
        return
    os.nice(niceness)
    # With the kernel's autogroups (/proc/sys/kernel/sched_autogroup_enabled), the processes of a
    # session share one CPU share whatever their own nice: a worker that leads its own session
    # (honcho, bin/serve's Procfile runner, starts each entry so) gives its session's share away too.
    if os.getsid(0) == os.getpid() and os.path.exists("/proc/self/autogroup"):
        try:
            with open("/proc/self/autogroup", "w") as autogroup:
                autogroup.write(str(niceness))
        except OSError as error:  # a kernel or sandbox that refuses it: the process's nice stays
            logging.getLogger(__name__).warning("worker niceness %s: autogroup not set (%s)", niceness, error)


@signals.worker_init.connect
def tune_collector(**kwargs):
    """What the worker loaded is frozen out of the collector's sight, and its young objects are
    collected every NOTIFY_WORKER_GC_THRESHOLD allocations (Python's default is 700). Set before
    the pool starts, so prefork children inherit both. A batch of hundreds of deliveries allocates
    thousands of objects, and each full collection rescanned everything loaded: 8% of the dispatch
    worker's busy samples during a 10,000-recipient broadcast (py-spy --native), 4% of in-app's;
    with this, dispatch used 0.9x the CPU (bench.broadcast, README)."""
    from django.conf import settings

    from config.collector import freeze_startup

    if settings.NOTIFY_WORKER_GC_THRESHOLD:
        frozen = freeze_startup(settings.NOTIFY_WORKER_GC_THRESHOLD)
        logging.getLogger(__name__).info("collector: %d objects frozen, young ones collected every %d allocations",
                                         frozen, settings.NOTIFY_WORKER_GC_THRESHOLD)


@signals.worker_init.connect
@signals.beat_init.connect
def refuse_insecure_settings(**kwargs):
    """Workers and beat start only with settings fit for production (see config/checks.py).
    SystemExit, because Celery logs and ignores an ordinary exception raised by a signal handler."""
    from django.core.exceptions import ImproperlyConfigured

    from config.checks import refuse_insecure_settings

    try:
        refuse_insecure_settings()
    except ImproperlyConfigured as error:
        raise SystemExit(f"refusing to start: {error}") from error
