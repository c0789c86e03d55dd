"""Provider failover inside a channel (SendGrid down or its circuit open: SMTP), run in-process
against the fake SendGrid and a real SMTP server (aiosmtpd) on 127.0.0.1."""

import socket

import pytest
from aiosmtpd.controller import Controller

from channels_delivery import delivery
from channels_delivery.circuit import breaker
from notifications.models import DeliveryStatus

from .engine_helpers import chain, reset_engine_state


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def sendgrid_then_smtp(settings, sendgrid, smtp_server):
    controller, inbox = smtp_server
    settings.SENDGRID_API_KEY, settings.SENDGRID_HOST = sendgrid.api_key, sendgrid.url
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
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
    assert message.rcpt_tos == ["ada@example.com"]
    assert f"X-Notify-Delivery-Id: {email.id}" in message.content.decode()


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
