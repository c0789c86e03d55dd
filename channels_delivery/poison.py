"""Poison messages: a message whose worker dies while running it (SIGKILL, the kernel's OOM
killer, a segfault) is handed back by the broker (acks_late + reject_on_worker_lost) and would
kill every worker that takes it, forever, stopping its queue for everyone.

Each run of a guarded task marks its task id in Redis as it starts and clears the mark when it
returns (success, failure or retry alike). A start that finds marks left by runs that never
returned counts the deaths; past NOTIFY_POISON_MAX_DEATHS the message is parked (the task's
park(), e.g. the delivery failed as a dead letter with its reason) instead of run again.
"""

import logging

from celery import Task
from django.conf import settings

from .shared_state import client

logger = logging.getLogger(__name__)

MARK_TTL_SECONDS = 24 * 3600


def key(task_id):
    return f"notify:poison:{task_id}"


def record_start(task_id):
    """How many times this message has started (this start included) without returning."""
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

    def __call__(self, *args, **kwargs):
        task_id = self.request.id
        if task_id and not self.request.is_eager:
            deaths = record_start(task_id) - 1
            if deaths >= settings.NOTIFY_POISON_MAX_DEATHS:
                forget(task_id)
                logger.error("%s[%s]: its worker died %d times running it; parked", self.name, task_id, deaths)
                return self.park(*args, deaths=deaths, **kwargs)
        return super().__call__(*args, **kwargs)

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        if task_id and not self.request.is_eager:
            forget(task_id)
        super().after_return(status, retval, task_id, args, kwargs, einfo)

    def park(self, *args, deaths, **kwargs):
        raise NotImplementedError
