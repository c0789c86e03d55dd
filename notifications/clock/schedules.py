"""The periodic tasks beat runs, declared here and written to django-celery-beat's tables.

Code owns an entry's task, arguments and message expiry; the operator owns its schedule and its
enabled switch (both editable in the admin). `sync_schedules` (run by bin/serve and by beat at
start) creates missing entries, moves an entry to a new code default only while its schedule is
still the previous code default (an operator's edit is kept), and disables entries whose name
carries the code prefix but which the code no longer declares.
"""

import json
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

logger = logging.getLogger(__name__)

PREFIX = "clock: "
DEFAULT_MARK = "code default: "


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    every: float | None = None  # seconds
    crontab: dict = field(default_factory=dict)  # minute, hour, day_of_week, ... (UTC)
    expires: int | None = None  # seconds a beat message may wait in the broker
    doc: str = ""

    @property
    def full_name(self):
        return PREFIX + self.name

    def fingerprint(self):
        if self.every is not None:
            return f"every {int(self.every)} seconds"
        return "crontab " + json.dumps(self.crontab, sort_keys=True)


def declared():
    expires = settings.NOTIFY_BEAT_TASK_EXPIRES
    return [
        Schedule("dispatch due notifications", "maintenance.dispatch_due_notifications", every=1, expires=expires,
                 doc="Scheduled sends and quiet-hours deferrals whose time has come go to dispatch."),
        Schedule("send due digests", "maintenance.send_due_digests", every=2, expires=expires,
                 doc="Digests whose window has ended go out as one message per channel."),
        Schedule("send status events", "maintenance.send_status_events", every=1, expires=expires,
                 doc="Status changes owed to API clients' status webhooks (new, lost or held by a dead worker) "
                     "go to the webhook queue."),
        Schedule("escalate unread", "maintenance.escalate_unread", every=2, expires=expires,
                 doc="In-app notifications still unread after their category's delay go out on another channel."),
        Schedule("reap stuck deliveries", "maintenance.reap_stuck", every=30, expires=60,
                 doc="Re-enqueue deliveries stuck in queued, sending or retrying; expire what is past expires_at."),
        Schedule("purge past retention", "maintenance.purge_past_retention", every=3600, expires=1800,
                 doc="Delete delivery attempts, read in-app notifications and expired notifications past retention."),
        Schedule("resume stalled broadcasts", "maintenance.resume_stalled_broadcasts", every=60, expires=60,
                 doc="Broadcasts still fanning out after NOTIFY_BROADCAST_RESUME_AFTER are planned again."),
        Schedule("dead-letter summary", "maintenance.send_dead_letter_summary",
                 crontab={"minute": "0", "hour": "7"}, expires=3600,
                 doc="Daily email to operators: failed deliveries of the last 24 hours per channel and reason."),
    ]


def current_fingerprint(task):
    if task.interval_id:
        return f"every {task.interval.every} {task.interval.period}"
    if task.crontab_id:
        c = task.crontab
        spec = {"minute": c.minute, "hour": c.hour, "day_of_week": c.day_of_week,
                "day_of_month": c.day_of_month, "month_of_year": c.month_of_year}
        return "crontab " + json.dumps({k: v for k, v in spec.items() if v != "*"}, sort_keys=True)
    return "other"


def stored_default(task):
    for line in (task.description or "").splitlines():
        if line.startswith(DEFAULT_MARK):
            return line[len(DEFAULT_MARK):]
    return None


def schedule_fields(spec):
    if spec.every is not None:
        interval, _ = IntervalSchedule.objects.get_or_create(every=int(spec.every), period=IntervalSchedule.SECONDS)
        return {"interval": interval, "crontab": None, "solar": None, "clocked": None}
    crontab, _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **spec.crontab)
    return {"crontab": crontab, "interval": None, "solar": None, "clocked": None}


@transaction.atomic
def sync_schedules(schedules=None):
    """Write the declared schedules to the database.

    Returns {"created", "updated", "unchanged", "kept", "disabled"}: names of entries made, moved
    to the code's values, already matching them, holding an operator's schedule, switched off.
    """
    schedules = declared() if schedules is None else schedules
    report = {"created": [], "updated": [], "unchanged": [], "kept": [], "disabled": []}
    for spec in schedules:
        description = f"{spec.doc}\n{DEFAULT_MARK}{spec.fingerprint()}"
        task = PeriodicTask.objects.select_for_update().filter(name=spec.full_name).first()
        if task is None:
            PeriodicTask.objects.create(
                name=spec.full_name, task=spec.task, expire_seconds=spec.expires, description=description,
                **schedule_fields(spec),
            )
            report["created"].append(spec.name)
            continue
        edited = current_fingerprint(task) != stored_default(task)
        wanted = {} if edited else schedule_fields(spec)
        wanted.update(task=spec.task, expire_seconds=spec.expires, description=description)
        changed = {name: value for name, value in wanted.items() if getattr(task, name) != value}
        if changed:
            for name, value in changed.items():
                setattr(task, name, value)
            task.save()  # a save, not update(): beat notices the change through PeriodicTasks
        report["kept" if edited else "updated" if changed else "unchanged"].append(spec.name)
    names = [spec.full_name for spec in schedules]
    gone = PeriodicTask.objects.filter(name__startswith=PREFIX, enabled=True).exclude(name__in=names)
    report["disabled"] = [name[len(PREFIX):] for name in gone.values_list("name", flat=True)]
    if report["disabled"]:
        gone.update(enabled=False)
        PeriodicTasks.update_changed()  # update() sends no signal; tell the running beat to reload
    summary = ", ".join(f"{key} {len(value)}" for key, value in report.items() if value)
    # Beat syncs at every start: a restart with nothing new says nothing at INFO.
    changed_anything = report["created"] or report["updated"] or report["disabled"]
    logger.log(logging.INFO if changed_anything else logging.DEBUG, "schedules synced: %s", summary)
    return report
