"""Structured logs: the correlation id on every line, secrets masked, JSON or text."""

import io
import json
import logging
import logging.config
import uuid

import pytest
from django.conf import settings

from notifications.ops import correlation, logs


def capture(format_name):
    config = {**settings.LOGGING}
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    # The formatter exactly as settings.LOGGING builds it.
    handler.setFormatter(logging.config.dictConfigClass(config).configure_formatter(
        dict(config["formatters"][format_name])))
    handler.addFilter(logs.ContextFilter())
    handler.addFilter(logs.RedactSecrets())
    logger = logging.getLogger(f"test.ops.{format_name}")
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    return logger, stream


@pytest.mark.parametrize("secret, shown", [
    ("Authorization: Bearer nk_0a1b2c3d.s3cr3tPart-xyz", "nk_"),
    ("token=abcdefgh12345678", "token"),
    ("whsec_QUJDREVGR0hJSktMTU5PUA==", "whsec_"),
    ("https://hooks.slack.com/services/T000/B000/XXXXSECRET", "hooks.slack.com/services/"),
    ("amqp://guest:hunter2@rabbit:5672/", "amqp://guest:"),
    ("api_key=SG.abcdefghijklmnop.qrstuvwxyz0123456789", "api_key"),
    ('{"password": "pa55word!"}', "password"),
])
def test_secrets_are_masked(secret, shown):
    logger, stream = capture("json")
    logger.info("calling with %s", secret)
    record = json.loads(stream.getvalue())
    assert "[redacted]" in record["message"] and shown in record["message"]
    for part in ("s3cr3tPart", "abcdefgh12345678", "QUJDREVG", "XXXXSECRET", "hunter2", "qrstuvwxyz", "pa55word"):
        assert part not in stream.getvalue()


@pytest.mark.parametrize("message, args, hidden", [
    ("calling with token=%s", ("abcdefgh12345678",), "abcdefgh12345678"),  # the key in the format string
    ("connecting to %s", ("amqp://guest:hunter2@rabbit:5672/",), "hunter2"),
    ("delivery %s via %s (%d)", (uuid.uuid4(), "Bearer abcdefgh12345678", 3), "abcdefgh12345678"),
    ("failed: %s", (ValueError("api_key=SG.abcdefghijklmnop.qrstuvwxyz0123456789"),), "qrstuvwxyz"),  # not plain
])
def test_secrets_in_arguments_are_masked(message, args, hidden):
    logger, stream = capture("json")
    logger.info(message, *args)
    assert hidden not in stream.getvalue() and "[redacted]" in json.loads(stream.getvalue())["message"]


def test_a_short_argument_is_masked_every_time_it_comes_back_and_the_memory_of_them_stays_bounded():
    redact = logs.RedactSecrets()
    for _ in range(2):  # the second time from what the filter remembers
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "calling with %s", ("Bearer abcdefgh1234",), None)
        redact.filter(record)
        assert record.getMessage() == "calling with Bearer [redacted]"
    for number in range(redact.REMEMBERED_COUNT + 10):
        redact.filter(logging.LogRecord("t", logging.INFO, __file__, 1, "status %s", (f"status-{number}",), None))
    assert 0 < len(redact.redacted) <= redact.REMEMBERED_COUNT
    long_secret = "Bearer " + "x" * 60  # longer than what it remembers: redacted, not kept
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "calling with %s", (long_secret,), None)
    redact.filter(record)
    assert record.getMessage() == "calling with Bearer [redacted]" and long_secret not in redact.redacted


def test_plain_arguments_print_as_they_are():
    logger, stream = capture("text")
    delivery = uuid.uuid4()
    logger.info("delivery %s %s: %s via %s, attempt %d", delivery, "sent", "inapp", "inapp", 2)
    assert f"delivery {delivery} sent: inapp via inapp, attempt 2" in stream.getvalue()


def test_an_exception_traceback_is_masked_too():
    logger, stream = capture("json")
    try:
        raise RuntimeError("failed for nk_0a1b2c3d.topsecretvalue")
    except RuntimeError:
        logger.exception("provider call failed")
    assert "topsecretvalue" not in stream.getvalue() and "nk_[redacted]" in stream.getvalue()


def test_json_lines_carry_the_request_id_and_text_lines_show_it():
    logger, stream = capture("json")
    token = correlation.request_id.set("req-123")
    try:
        logger.info("hello")
    finally:
        correlation.request_id.reset(token)
    logger.info("outside")
    first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first["request_id"] == "req-123" and first["level"] == "INFO" and first["message"] == "hello"
    assert second["request_id"] == "-"
    text_logger, text = capture("text")
    token = correlation.request_id.set("req-456")
    try:
        text_logger.info("hello")
    finally:
        correlation.request_id.reset(token)
    assert "[req-456] hello" in text.getvalue()


@pytest.mark.django_db
def test_the_answer_carries_the_request_id(client):
    assert client.get("/health/live", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    made = client.get("/health/live")["X-Request-ID"]
    assert len(made) == 32
    # An id that could forge log lines or smuggle a secret is replaced, not echoed.
    replaced = client.get("/health/live", HTTP_X_REQUEST_ID="bad id\nINFO forged")["X-Request-ID"]
    assert replaced != "bad id\nINFO forged" and len(replaced) == 32


def test_development_defaults_to_text_and_deployments_to_json(monkeypatch):
    import importlib

    import config.settings as config_settings

    monkeypatch.setenv("NOTIFY_ENVIRONMENT", "development")
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    assert importlib.reload(config_settings).LOG_FORMAT == "text"
    monkeypatch.setenv("NOTIFY_ENVIRONMENT", "production")
    assert importlib.reload(config_settings).LOG_FORMAT == "json"
    monkeypatch.undo()
    importlib.reload(config_settings)
