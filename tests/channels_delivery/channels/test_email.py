"""Email: SMTP against a real aiosmtpd server, SendGrid against its fake, and failover between them."""

import uuid

import pytest

from channels_delivery.channels.email.channel import EmailMessage
from channels_delivery.channels.email.providers import DjangoEmail, SendGridEmail
from channels_delivery.engine import delivery as delivery_module
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.models import Delivery, DeliveryStatus, Notification
from tests.support import free_port

pytestmark = pytest.mark.django_db

MESSAGE = {"to": "ada@example.com", "subject": "Order 123 shipped", "text": "It is on its way.",
           "html": "<p>It is on its way.</p>"}


@pytest.fixture
def smtp(fakes, channel_settings):
    return fakes["smtp"]


@pytest.fixture
def sendgrid_on(sendgrid, channel_settings):
    channel_settings.SENDGRID_API_KEY = sendgrid.api_key
    channel_settings.SENDGRID_HOST = sendgrid.url
    return sendgrid


def test_smtp_sends_text_and_html_with_our_delivery_id(smtp):
    delivery_id = uuid.uuid4()

    result = DjangoEmail().send(delivery_id, EmailMessage.from_dict(MESSAGE))

    [mail] = smtp.messages
    assert mail["To"] == "ada@example.com" and mail["Subject"] == "Order 123 shipped"
    assert mail["X-Notify-Delivery-Id"] == str(delivery_id)
    assert str(delivery_id) in mail["Message-ID"] and result.provider_message_id == mail["Message-ID"].strip()
    assert mail.get_content_type() == "multipart/alternative"
    assert mail.get_body(("plain",)).get_content().strip() == "It is on its way."
    assert mail.get_body(("html",)).get_content().strip() == "<p>It is on its way.</p>"


def test_smtp_4xx_is_transient(smtp):
    smtp.fail_next("451 4.3.0 Mailbox temporarily unavailable")
    with pytest.raises(TransientDeliveryError, match="451") as caught:
        DjangoEmail().send(uuid.uuid4(), EmailMessage.from_dict(MESSAGE))
    assert caught.value.status_code == 451
    assert smtp.messages == []


def test_smtp_5xx_is_permanent(smtp):
    smtp.fail_next("550 5.1.1 No such user here")
    with pytest.raises(PermanentDeliveryError, match="550: .*No such user") as caught:
        DjangoEmail().send(uuid.uuid4(), EmailMessage.from_dict(MESSAGE))
    assert caught.value.status_code == 550


@pytest.mark.parametrize("fault", [{"delay": 3.0}, {"drop": True}])
def test_smtp_timeout_or_hang_up_is_transient(smtp, fault):
    smtp.fail_next(**fault)
    with pytest.raises(TransientDeliveryError, match="SMTP unreachable"):
        DjangoEmail().send(uuid.uuid4(), EmailMessage.from_dict(MESSAGE))
    assert smtp.messages == []


def test_smtp_server_down_is_transient(smtp, channel_settings):
    channel_settings.EMAIL_PORT = free_port()  # nothing listens there
    with pytest.raises(TransientDeliveryError, match="unreachable"):
        DjangoEmail().send(uuid.uuid4(), EmailMessage.from_dict(MESSAGE))


def test_sendgrid_gets_text_html_and_our_delivery_id(sendgrid_on):
    delivery_id = uuid.uuid4()
    SendGridEmail().send(delivery_id, EmailMessage.from_dict(MESSAGE))
    [mail] = sendgrid_on.mails()
    assert mail["content"] == [{"type": "text/plain", "value": "It is on its way."},
                               {"type": "text/html", "value": "<p>It is on its way.</p>"}]
    assert mail["personalizations"][0]["custom_args"] == {"delivery_id": str(delivery_id)}


def test_sendgrid_429_carries_the_rate_limit_reset(sendgrid_on):
    import time

    reset = int(time.time()) + 40
    sendgrid_on.fail_next(status=429, headers={"X-RateLimit-Reset": str(reset)}, body=b'{"errors":[]}')
    with pytest.raises(TransientDeliveryError) as caught:
        SendGridEmail().send(uuid.uuid4(), EmailMessage.from_dict(MESSAGE))
    assert 35 <= caught.value.retry_after <= 40


def queued_email_delivery(make_user):
    user = make_user("ada", email="ada@example.com")
    notification = Notification.objects.create(recipient=user, category_id="orders", title="Order 123 shipped")
    return Delivery.objects.create(notification=notification, channel="email", status=DeliveryStatus.QUEUED,
                                   message=MESSAGE)


def test_sendgrid_down_fails_over_to_smtp(sendgrid_on, smtp, make_user):
    delivery = queued_email_delivery(make_user)
    sendgrid_on.fail_next(status=503, body=b'{"errors":[{"message":"unavailable"}]}')

    delivery_module.attempt(delivery.id)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT and delivery.provider == "smtp"
    assert [(a.provider, a.outcome) for a in delivery.attempts.all()] == [
        ("sendgrid", "transient_error"), ("smtp", "sent")]
    [mail] = smtp.messages
    assert mail["X-Notify-Delivery-Id"] == str(delivery.id)
    assert sendgrid_on.requests == []


def test_sendgrid_rejection_does_not_fail_over(sendgrid_on, smtp, make_user):
    delivery = queued_email_delivery(make_user)
    sendgrid_on.fail_next(status=400, body=b'{"errors":[{"message":"Invalid to email"}]}')

    with pytest.raises(PermanentDeliveryError):
        delivery_module.attempt(delivery.id)

    assert smtp.messages == []
    # attempt() leaves failing the row to the delivery task, which also starts the fallback.
    assert [(a.provider, a.outcome) for a in delivery.attempts.all()] == [("sendgrid", "permanent_error")]


def test_both_providers_deferring_leaves_the_delivery_retrying(sendgrid_on, smtp, make_user):
    delivery = queued_email_delivery(make_user)
    sendgrid_on.fail_next(timeout=True)
    smtp.fail_next("421 4.7.0 Try again later")

    with pytest.raises(TransientDeliveryError, match="421"):
        delivery_module.attempt(delivery.id)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.RETRYING
    assert [a.outcome for a in delivery.attempts.all()] == ["transient_error", "transient_error"]


def test_the_console_backend_is_recorded_as_what_it_is(settings, make_user, capsys):
    """A first run without credentials prints mail; its rows say `console`, not an SMTP 250."""
    settings.SENDGRID_API_KEY, settings.EMAIL_HOST = "", ""
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    delivery = queued_email_delivery(make_user)

    delivery_module.attempt(delivery.id)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT and delivery.provider == "console"
    assert [(a.provider, a.outcome, a.provider_status_code) for a in delivery.attempts.all()] == [
        ("console", "sent", "")]
    printed = capsys.readouterr().out
    assert "Subject: Order 123 shipped" in printed and f"X-Notify-Delivery-Id: {delivery.id}" in printed


def test_smtp_keeps_its_connection_and_reopens_it_when_the_server_hangs_up(smtp):
    provider = DjangoEmail()
    provider.forget_connection()
    message = EmailMessage.from_dict(MESSAGE)

    for _ in range(3):
        provider.send(uuid.uuid4(), message)
    assert len(smtp.messages) == 3 and len(smtp.sessions) == 1  # one connection for three mails

    smtp.drop_connections()  # the server hangs up between two mails
    provider.send(uuid.uuid4(), message)
    provider.send(uuid.uuid4(), message)

    assert len(smtp.messages) == 5 and len(smtp.sessions) == 2  # reopened once, the mail not lost
    assert provider.send(uuid.uuid4(), message).status_code == "250"
