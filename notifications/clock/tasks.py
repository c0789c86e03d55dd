"""The tasks beat runs (declared in schedules.py); each routes to the `maintenance` queue and only
calls into the module that does the work."""

from celery import shared_task

from channels_delivery.engine import status_events
from notifications.clock import broadcasts, cleanup, digests, escalation, reaper, scheduled


@shared_task(name="maintenance.dispatch_due_notifications")
def dispatch_due_notifications():
    return scheduled.dispatch_due()


@shared_task(name="maintenance.send_status_events")
def send_status_events():
    return status_events.enqueue_due()


@shared_task(name="maintenance.send_due_digests")
def send_due_digests():
    return digests.send_due()


@shared_task(name="maintenance.escalate_unread")
def escalate_unread():
    return escalation.escalate_due()


@shared_task(name="maintenance.reap_stuck")
def reap_stuck():
    return reaper.reap()


@shared_task(name="maintenance.purge_past_retention")
def purge_past_retention():
    return cleanup.purge()


@shared_task(name="maintenance.send_dead_letter_summary")
def send_dead_letter_summary():
    return cleanup.send_dead_letter_summary()


@shared_task(name="maintenance.resume_stalled_broadcasts")
def resume_stalled_broadcasts():
    return broadcasts.resume_stalled()
