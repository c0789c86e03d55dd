"""Provider status callbacks: signed requests move deliveries, forged ones are refused."""

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client
from twilio.request_validator import RequestValidator

from notifications.models import Delivery, DeliveryStatus, Notification, NotificationStatus, ProviderEvent
from tests.support import chain, wait_until

TWILIO_TOKEN = "twilio-test-auth-token"
PUBLIC = "https://notify.example.com"


@pytest.fixture
def twilio_settings(settings):
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.PUBLIC_BASE_URL = PUBLIC


@pytest.fixture
def sendgrid_key(settings):
    """A key pair like the one SendGrid shows under Mail Settings; we sign the way SendGrid does."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = base64.b64encode(public_der).decode()
    return private_key


def post_twilio(delivery_id, params, token=TWILIO_TOKEN):
    path = f"/callbacks/twilio/status/{delivery_id}/"
    signature = RequestValidator(token).compute_signature(PUBLIC + path, params)
    return Client().post(path, params, HTTP_X_TWILIO_SIGNATURE=signature)


def post_sendgrid(private_key, events, timestamp=None):
    body = json.dumps(events)
    timestamp = timestamp or str(int(time.time()))
    signature = base64.b64encode(private_key.sign((timestamp + body).encode(), ec.ECDSA(hashes.SHA256()))).decode()
    return Client().post(
        "/callbacks/sendgrid/events/", body, content_type="application/json",
        HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE=signature, HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP=timestamp,
    )


def sent(channel="sms", message_id="SM0123456789abcdef0123456789abcdef"):
    return (channel, DeliveryStatus.SENT, {"provider": "twilio" if channel == "sms" else "sendgrid",
                                           "provider_message_id": message_id})


@pytest.mark.django_db
def test_signed_twilio_callback_marks_the_sms_delivered(twilio_settings, make_user):
    _notification, [sms] = chain(make_user("60"), sent())

    response = post_twilio(sms.id, {"MessageSid": sms.provider_message_id, "MessageStatus": "delivered"})

    assert response.status_code == 200
    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.DELIVERED and sms.delivered_at is not None
    event = ProviderEvent.objects.get()
    assert event.delivery == sms and event.event_type == "delivered" and event.payload["MessageStatus"] == "delivered"


@pytest.mark.django_db
def test_forged_twilio_callback_is_refused(twilio_settings, make_user):
    _notification, [sms] = chain(make_user("61"), sent())

    response = post_twilio(sms.id, {"MessageSid": sms.provider_message_id, "MessageStatus": "delivered"},
                           token="not-the-token")
    unsigned = Client().post(f"/callbacks/twilio/status/{sms.id}/", {"MessageSid": "SM1", "MessageStatus": "delivered"})

    assert response.status_code == 403 and unsigned.status_code == 403
    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.SENT and not ProviderEvent.objects.exists()


@pytest.mark.django_db
def test_twilio_callback_for_an_unknown_delivery_is_answered_200(twilio_settings):
    response = post_twilio("9a4e2a7c-0000-4000-8000-000000000000", {"MessageSid": "SMx", "MessageStatus": "delivered"})

    assert response.status_code == 200
    assert ProviderEvent.objects.get().delivery is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_undelivered_sms_starts_the_next_channel_once(celery_worker, sendgrid, twilio_settings, make_user):
    user = make_user("62", email="ada@example.com")
    notification, [sms, email] = chain(user, sent(), ("email", DeliveryStatus.PENDING))
    params = {"MessageSid": sms.provider_message_id, "MessageStatus": "undelivered", "ErrorCode": "30003"}

    assert post_twilio(sms.id, params).status_code == 200
    assert post_twilio(sms.id, params).status_code == 200  # Twilio retried: a no-op

    [request] = sendgrid.wait_for(1)
    email = wait_until(lambda: Delivery.objects.filter(id=email.id, status=DeliveryStatus.SENT).first(),
                       message="email sent")
    sms.refresh_from_db()
    assert sms.status == DeliveryStatus.UNDELIVERED and "30003" in sms.reason
    assert email.reason.startswith("fallback from sms: undelivered (twilio): Twilio status undelivered, error 30003")
    assert request.json()["personalizations"][0]["custom_args"] == {"delivery_id": str(email.id)}
    assert ProviderEvent.objects.count() == 1
    time.sleep(0.5)
    assert len(sendgrid.requests) == 1
    assert Notification.objects.get(id=notification.id).status == NotificationStatus.SENT


@pytest.mark.django_db
def test_undelivered_sms_at_the_end_of_its_chain_fails_the_notification(twilio_settings, make_user):
    notification, [sms] = chain(make_user("63"), sent())

    post_twilio(sms.id, {"MessageSid": sms.provider_message_id, "MessageStatus": "failed", "ErrorCode": "30006"})

    assert Delivery.objects.get(id=sms.id).status == DeliveryStatus.UNDELIVERED
    assert Notification.objects.get(id=notification.id).status == NotificationStatus.FAILED


@pytest.mark.django_db
def test_signed_sendgrid_events_mark_delivered_and_bounced(sendgrid_key, make_user):
    user = make_user("64", email="ada@example.com")
    _n1, [good] = chain(user, sent("email", "msgid-good"))
    _n2, [bad] = chain(user, sent("email", "msgid-bad"))
    events = [
        {"email": "ada@example.com", "event": "processed", "sg_event_id": "ev-0", "delivery_id": str(good.id),
         "sg_message_id": "msgid-good.filter0001", "timestamp": 1},
        {"email": "ada@example.com", "event": "delivered", "sg_event_id": "ev-1", "delivery_id": str(good.id),
         "sg_message_id": "msgid-good.filter0001", "timestamp": 2, "response": "250 OK"},
        # No custom args on this one: found by its message id.
        {"email": "ada@example.com", "event": "bounce", "sg_event_id": "ev-2",
         "sg_message_id": "msgid-bad.filter0002", "timestamp": 2, "reason": "550 5.1.1 no such user"},
    ]

    response = post_sendgrid(sendgrid_key, events)

    assert response.status_code == 200
    good.refresh_from_db(), bad.refresh_from_db()
    assert good.status == DeliveryStatus.DELIVERED and good.delivered_at
    assert bad.status == DeliveryStatus.BOUNCED and "550 5.1.1 no such user" in bad.reason
    assert sorted(ProviderEvent.objects.values_list("event_id", flat=True)) == ["ev-0", "ev-1", "ev-2"]

    assert post_sendgrid(sendgrid_key, events).status_code == 200  # duplicates: no-ops
    assert ProviderEvent.objects.count() == 3


@pytest.mark.django_db
def test_forged_sendgrid_events_are_refused(sendgrid_key, make_user):
    _n, [email] = chain(make_user("65"), sent("email", "msgid-x"))
    impostor = ec.generate_private_key(ec.SECP256R1())

    forged = post_sendgrid(impostor, [{"event": "delivered", "sg_event_id": "f1", "delivery_id": str(email.id)}])
    unsigned = Client().post("/callbacks/sendgrid/events/", "[]", content_type="application/json")

    assert forged.status_code == 403 and unsigned.status_code == 403
    assert Delivery.objects.get(id=email.id).status == DeliveryStatus.SENT and not ProviderEvent.objects.exists()


@pytest.mark.django_db
def test_signed_but_malformed_sendgrid_body_is_a_400(sendgrid_key):
    assert post_sendgrid(sendgrid_key, {"event": "delivered"}).status_code == 400
