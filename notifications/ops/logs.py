"""Log records carry the correlation id and the running task; secrets never reach the output.

Formatting is python-json-logger's JsonFormatter (LOG_FORMAT=json) or plain text for people
(the default in development); see config/settings.py LOGGING.
"""

import datetime
import logging
import re
import uuid

from notifications.ops import correlation

# What a credential looks like in this service: API keys, bearer/token headers, webhook
# signing secrets, Slack webhook paths, URL passwords and key=value pairs naming a secret.
SECRET_PATTERNS = [
    (re.compile(r"\bnk_[0-9a-f]{8}\.[A-Za-z0-9_\-]+"), "nk_[redacted]"),
    (re.compile(r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 [redacted]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"), "whsec_[redacted]"),
    (re.compile(r"(hooks\.slack\.com/services/)[A-Za-z0-9/_\-]+"), r"\1[redacted]"),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1[redacted]@"),
    (re.compile(r"(?i)\b(password|passwd|secret|token|access_token|auth_token|api_key|apikey|authorization|signature)(\"?\s*[:=]\s*\"?)[^\s\",&]+"),
     r"\1\2[redacted]"),
    (re.compile(r"\bSG\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"), "SG.[redacted]"),
]


# No pattern above matches fewer characters ("://a:b@").
SHORTEST_SECRET = 7
# What a format string may hold of a credential whose rest an argument brings ("token=%s").
SECRET_CONTEXT = re.compile(
    r"(?i)bearer|token|basic|passw|secret|api_?key|authorization|signature|://|hooks\.slack|nk_|whsec_|SG\."
)
# Arguments that cannot hold a credential as they print: an id, a number, a time.
PLAIN_TYPES = (int, float, uuid.UUID, datetime.date, datetime.timedelta, type(None))


def redact(text):
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites the formatted message (and exception text) with credentials masked.

    A message is the code's own format string filled with arguments, so when the format string
    names nothing secret and every argument is a plain value or a string, only the strings can
    carry a credential: those long enough to hold one are redacted, and the whole message is not
    scanned (the per-delivery lines of a chunk spent 40% of their logging time here). Otherwise
    the whole message is redacted.
    """

    # Short string arguments repeat (statuses, channels, providers: "delivered" in every line of
    # a chunk); their redaction is remembered instead of running the patterns again.
    REMEMBERED_LENGTH, REMEMBERED_COUNT = 40, 2048

    def __init__(self, name=""):
        super().__init__(name)
        self.plain_formats = {}  # format string -> whether it names nothing secret
        self.redacted = {}  # short argument -> it redacted

    def redact_argument(self, text):
        if len(text) > self.REMEMBERED_LENGTH:
            return redact(text)
        cleaned = self.redacted.get(text)
        if cleaned is None:
            cleaned = redact(text)
            if len(self.redacted) >= self.REMEMBERED_COUNT:
                self.redacted.clear()
            self.redacted[text] = cleaned
        return cleaned

    def names_no_secret(self, msg):
        if not isinstance(msg, str):
            return False
        plain = self.plain_formats.get(msg)
        if plain is None:
            plain = not SECRET_CONTEXT.search(msg)
            if len(self.plain_formats) < 1000:  # format strings are the code's: few
                self.plain_formats[msg] = plain
        return plain

    def filter(self, record):
        args = record.args
        if (isinstance(args, tuple) and args and self.names_no_secret(record.msg)
                and all(isinstance(arg, (str, *PLAIN_TYPES)) for arg in args)):
            record.args = tuple(
                self.redact_argument(arg) if isinstance(arg, str) and len(arg) >= SHORTEST_SECRET else arg
                for arg in args
            )
        else:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message or record.args:
                record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            # Formatters print exc_text when exc_info is gone; otherwise they would format the
            # traceback again, secrets and all.
            record.exc_text, record.exc_info = redact(record.exc_text), None
        return True


class ContextFilter(logging.Filter):
    """Adds request_id (the correlation id, "-" outside a request or task) and the Celery task."""

    def filter(self, record):
        record.request_id = correlation.current() or "-"
        try:
            from celery import current_task

            task = current_task._get_current_object()  # once: the proxy looks it up at every use
        except Exception:  # outside Celery
            task = None
        if task is not None and getattr(task, "request", None) is not None and task.request.id:
            record.task_id, record.task_name = task.request.id, task.name
        return True


def configure_from_settings(**_kwargs):
    """Celery's setup_logging: workers and beat log like the web process (settings.LOGGING)."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


# What uvicorn and websockets log at INFO for every WebSocket that opens ("... [accepted]",
# "connection open"), and websockets when it reads one's end ("connection closed"): 20,000 lines
# or more for a 10,000-client reconnect.
ROUTINE_CONNECTION_LINES = frozenset({'%s - "WebSocket %s" [accepted]', "connection open", "connection closed"})


class WithoutRoutineConnectionLines(logging.LoggerAdapter):
    """A WebSocket connection's logger (`uvicorn.error`) that drops ROUTINE_CONNECTION_LINES where
    they are logged, before a record is made. A filter drops them only after that (the caller's
    frame found, the time, thread and process read): 6% of the realtime process's busy CPU while
    10,000 clients reconnected (py-spy --native). notify_ws_handshakes_total counts the
    connections; refusals and errors still log. notifications/realtime/protocol.py hands it to
    each connection unless NOTIFY_WS_LOG_CONNECTIONS=true."""

    def info(self, msg, *args, **kwargs):
        if msg not in ROUTINE_CONNECTION_LINES:
            self.logger.info(msg, *args, stacklevel=2, **kwargs)

    @property
    def level(self):  # uvicorn reads it before its TRACE lines
        return self.logger.level
