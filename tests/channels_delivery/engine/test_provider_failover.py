"""Provider failover inside a channel (SendGrid down or its circuit open: SMTP), run in-process
against the fake SendGrid and a real SMTP server (aiosmtpd) on 127.0.0.1."""

import pytest

from channels_delivery.engine import delivery
from channels_delivery.engine.circuit import breaker
from notifications.models import DeliveryStatus
from tests.support import chain, reset_engine_state


@pytest.fixture
def sendgrid_then_smtp(settings, sendgrid, fakes):
    inbox = fakes["smtp"]
    settings.SENDGRID_API_KEY, settings.SENDGRID_HOST = sendgrid.api_key, sendgrid.url
    settings.EMAIL_HOST, settings.EMAIL_PORT = inbox.host, inbox.port
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.NOTIFY_CIRCUIT_FAILURES = 2
    reset_engine_state()
    yield inbox
    reset_engine_state()


@pytest.mark.django_db
def test_open_circuit_fails_over_to_smtp_without_calling_sendgrid(sendgrid_then_smtp, sendgrid, make_user):
    inbox = sendgrid_then_smtp
    _n, [email] = chain(make_user("80", email="ada@example.com"), ("email", DeliveryStatus.QUEUED))
    breaker("sendgrid").record_failure()
    breaker("sendgrid").record_failure()

    delivery.attempt(email.id)

    email.refresh_from_db()
    assert email.status == DeliveryStatus.SENT and email.provider == "smtp"
    assert [(a.provider, a.outcome, a.error) for a in email.attempts.all()] == [
        ("sendgrid", "transient_error", "sendgrid: circuit open, not called"), ("smtp", "sent", "")]
    assert sendgrid.received == []
    [message] = inbox.messages
    assert message["To"] == "ada@example.com"
    assert message["X-Notify-Delivery-Id"] == str(email.id)


@pytest.mark.django_db
def test_sendgrid_outage_fails_over_to_smtp_in_the_same_attempt(sendgrid_then_smtp, sendgrid, make_user):
    inbox = sendgrid_then_smtp
    _n, [email] = chain(make_user("81", email="ada@example.com"), ("email", DeliveryStatus.QUEUED))
    sendgrid.fail_next(status=502)

    delivery.attempt(email.id)

    email.refresh_from_db()
    assert email.status == DeliveryStatus.SENT and email.provider == "smtp" and email.attempt_count == 1
    assert [(a.provider, a.outcome, a.provider_status_code) for a in email.attempts.all()] == [
        ("sendgrid", "transient_error", "502"), ("smtp", "sent", "250")]
    assert len(inbox.messages) == 1 and breaker("sendgrid").state() == "closed"
