"""Poison messages: a message whose worker dies while running it (SIGKILL, the kernel's OOM
killer, a segfault) is handed back by the broker (acks_late + reject_on_worker_lost) and would
kill every worker that takes it, forever, stopping its queue for everyone.

A message is handed back only when its run never acknowledged it, and the broker flags it
`redelivered` (Redis restores it so, RabbitMQ too). Only such runs touch Redis: each counts one
death against its task id, and the count is cleared when a run returns (success, failure or
retry alike). Once NOTIFY_POISON_MAX_DEATHS deaths are counted, the message is parked (the task's
park(), e.g. the delivery failed as a dead letter with its reason) instead of run again. A first
delivery, the common case, costs nothing here.
"""

import logging

from celery import Task
from django.conf import settings

from notifications.shared_state import client

logger = logging.getLogger(__name__)

MARK_TTL_SECONDS = 24 * 3600


def key(task_id):
    return f"notify:poison:{task_id}"


def record_death(task_id):
    """One more run of this message ended without returning; how many so far."""
    pipe = client().pipeline()
    pipe.incr(key(task_id))
    pipe.expire(key(task_id), MARK_TTL_SECONDS)
    starts, _ = pipe.execute()
    return int(starts)


def forget(task_id):
    client().delete(key(task_id))


class PoisonGuardedTask(Task):
    """Base for acks_late tasks: runs park(*args, deaths=n) instead of the task once its message
    has killed NOTIFY_POISON_MAX_DEATHS workers."""

    abstract = True

    def redelivered(self):
        return bool(self.request.id and not self.request.is_eager
                    and (self.request.delivery_info or {}).get("redelivered"))

    def __call__(self, *args, **kwargs):
        if self.redelivered():
            deaths = record_death(self.request.id)
            if deaths >= settings.NOTIFY_POISON_MAX_DEATHS:
                forget(self.request.id)
                logger.error("%s[%s]: its worker died %d times running it; parked", self.name, self.request.id, deaths)
                return self.park(*args, deaths=deaths, **kwargs)
        return super().__call__(*args, **kwargs)

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        if self.redelivered():
            forget(task_id)
        super().after_return(status, retval, task_id, args, kwargs, einfo)

    def park(self, *args, deaths, **kwargs):
        raise NotImplementedError
