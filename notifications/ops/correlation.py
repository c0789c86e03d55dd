"""One correlation id per API request, carried through dispatch and every delivery task and retry.

The web process takes the caller's `X-Request-ID` (when it looks like an id) or makes one, keeps
it in a context variable for the request's log lines, and answers it in `X-Request-ID`. Every
Celery message published while an id is current carries it as the `notify_request_id` header,
and a worker restores it before the task runs: so the messages a task sends in turn (its
retries, the next channel of its fallback chain) carry it too.
"""

import re
import uuid
from contextvars import ContextVar

from celery import signals

HEADER = "X-Request-ID"
MESSAGE_HEADER = "notify_request_id"
# Accept a caller's id only if it is short and plain, so it cannot forge log lines or carry a secret.
VALID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_id = ContextVar("request_id", default=None)


def current():
    return request_id.get()


def new_id():
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(HEADER, "")
        value = incoming if VALID.match(incoming) else new_id()
        request.request_id = value
        token = request_id.set(value)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response[HEADER] = value
        return response


def stamp_message(headers=None, **_kwargs):
    value = request_id.get()
    if value and headers is not None and MESSAGE_HEADER not in headers:
        headers[MESSAGE_HEADER] = value


def restore_for_task(task=None, **_kwargs):
    value = getattr(task.request, MESSAGE_HEADER, None) if task is not None else None
    request_id.set(value if value and VALID.match(str(value)) else None)


def clear_after_task(**_kwargs):
    request_id.set(None)


def connect():
    signals.before_task_publish.connect(stamp_message, weak=False, dispatch_uid="notify-correlation-publish")
    signals.task_prerun.connect(restore_for_task, weak=False, dispatch_uid="notify-correlation-prerun")
    signals.task_postrun.connect(clear_after_task, weak=False, dispatch_uid="notify-correlation-postrun")
