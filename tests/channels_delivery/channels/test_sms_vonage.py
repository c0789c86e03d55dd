"""Vonage, the second SMS provider: the real `vonage-sms` SDK over https against the fake Vonage,
its status codes sorted, its signed delivery receipts, and Twilio -> Vonage failover in a worker."""

import json
import time
import uuid

import pytest
from django.test import Client

from channels_delivery.engine.circuit import breaker
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError
from channels_delivery.channels.sms.channel import SmsMessage
from channels_delivery.channels.sms.vonage import VonageSMS
from notifications.models import Delivery, DeliveryStatus, ProviderEvent, RecipientProfile
from tests.support import chain, reset_engine_state, send, wait_until



@pytest.fixture
def vonage(fakes, channel_settings):
    return fakes["vonage"]


def send_direct(text="Order 123 shipped", to="+4915112345678"):
    delivery_id = uuid.uuid4()
    return delivery_id, VonageSMS().send(delivery_id, SmsMessage(to=to, text=text))


def test_sms_reaches_vonage_signed_with_client_ref_and_receipt_callback(vonage):
    delivery_id, result = send_direct(to="+49 151 1234 5678")

    [form] = vonage.messages()
    assert form["to"] == "4915112345678" and form["from"] == vonage.from_number
    assert form["text"] == "Order 123 shipped" and form["type"] == "text"
    assert form["client-ref"] == str(delivery_id)
    assert form["callback"] == "https://notify.example.com/callbacks/vonage/status/"
    assert form["status-report-req"] == "True"
    # HTTP Basic with key and secret (checked by the fake); no credential in the form
    assert "api_key" not in form and "sig" not in form
    assert vonage.api_secret not in json.dumps(form) and vonage.signature_secret not in json.dumps(form)
    assert result.provider_message_id == vonage.accepted[0][1]
    assert result.payload["segments"] == 1 and result.payload["encoding"] == "GSM-7"


def test_text_outside_gsm7_goes_as_unicode(vonage):
    send_direct(text="Заказ отправлен")
    assert vonage.messages()[0]["type"] == "unicode"


@pytest.mark.parametrize("status, error_class, text", [
    ("1", TransientDeliveryError, "Throttled"),
    ("5", TransientDeliveryError, "Internal Error"),
    ("7", PermanentDeliveryError, "Number Barred"),
    ("29", PermanentDeliveryError, "Non-Whitelisted Destination"),
])
def test_status_codes_are_sorted(vonage, status, error_class, text):
    vonage.answer_next(status)
    with pytest.raises(error_class, match=text) as caught:
        send_direct()
    assert caught.value.status_code == status


def test_invalid_number_is_permanent(vonage):
    vonage.invalid_numbers.add("4915112345678")
    with pytest.raises(PermanentDeliveryError, match="status 3: Invalid Parameters"):
        send_direct()


def test_wrong_api_secret_is_permanent(vonage, channel_settings):
    channel_settings.VONAGE_API_SECRET = "not-the-secret"
    with pytest.raises(PermanentDeliveryError, match="status 4: Bad Credentials"):
        send_direct()
    assert vonage.messages() == []


@pytest.mark.parametrize("fault, error", [({"status": 503}, "503"), ({"timeout": True}, "timed out"),
                                          ({"drop": True}, "unreachable")])
def test_http_failures_are_transient_and_tried_once(vonage, channel_settings, fault, error):
    vonage.fail_next(**fault)
    with pytest.raises(TransientDeliveryError, match=error):
        send_direct()
    assert len(vonage.received) == 1  # the SDK's own re-sends are off: one SMS is never sent twice


def test_untrusted_certificate_is_refused(vonage, channel_settings):
    channel_settings.VONAGE_CA_BUNDLE = ""  # the system's CAs do not know the fake's certificate
    with pytest.raises(TransientDeliveryError, match="unreachable"):
        send_direct()
    assert vonage.messages() == []


# --- delivery receipts -------------------------------------------------------------------

def post_receipt(params, as_json=False):
    if as_json:
        return Client().post("/callbacks/vonage/status/", json.dumps(params), content_type="application/json")
    return Client().post("/callbacks/vonage/status/", params)


@pytest.mark.django_db
@pytest.mark.parametrize("as_json", [False, True])
def test_signed_receipt_moves_the_delivery_to_delivered_once(vonage, make_user, as_json):
    _notification, [row] = chain(make_user("dlr"), ("sms", DeliveryStatus.SENT, {"provider": "vonage"}))
    result = VonageSMS().send(row.id, SmsMessage(to="+4915112345678", text="Hi"))
    Delivery.objects.filter(id=row.id).update(provider_message_id=result.provider_message_id)
    url, params = vonage.delivery_receipt(0, "delivered")
    assert url.endswith("/callbacks/vonage/status/")

    assert post_receipt(params, as_json).status_code == 200
    assert post_receipt(params, as_json).status_code == 200  # Vonage retries: recorded once
    assert Delivery.objects.get(id=row.id).status == DeliveryStatus.DELIVERED
    assert ProviderEvent.objects.filter(provider="vonage").count() == 1


@pytest.mark.django_db
def test_failed_receipt_marks_undelivered(vonage, make_user):
    _notification, [row] = chain(make_user("dlr2"), ("sms", DeliveryStatus.SENT, {"provider": "vonage"}))
    VonageSMS().send(row.id, SmsMessage(to="+4915112345678", text="Hi"))
    _url, params = vonage.delivery_receipt(0, "failed", err_code="6")
    assert post_receipt(params).status_code == 200
    row.refresh_from_db()
    assert row.status == DeliveryStatus.UNDELIVERED and "error 6" in row.reason


@pytest.mark.django_db
@pytest.mark.parametrize("tamper", ["status", "sig", "old", "no sig", "other account"])
def test_forged_or_stale_receipts_are_refused(vonage, make_user, tamper):
    _notification, [row] = chain(make_user("dlr3"), ("sms", DeliveryStatus.SENT, {"provider": "vonage"}))
    VonageSMS().send(row.id, SmsMessage(to="+4915112345678", text="Hi"))
    _url, params = vonage.delivery_receipt(0, "failed")
    if tamper == "status":
        params["status"] = "delivered"
    elif tamper == "sig":
        params["sig"] = "0" * 64
    elif tamper == "old":
        params["timestamp"] = str(int(time.time()) - 3600)
        params["sig"] = vonage.signer().sign_params({k: v for k, v in params.items() if k != "sig"})
    elif tamper == "no sig":
        del params["sig"]
    else:
        params["api-key"] = "someoneelse"
    assert post_receipt(params).status_code == 403
    assert Delivery.objects.get(id=row.id).status == DeliveryStatus.SENT


# --- failover in a real worker -------------------------------------------------------------

@pytest.fixture
def sms_fakes(fake_providers):
    reset_engine_state()
    for name in ("twilio", "vonage"):
        fake_providers[name].reset()
    yield fake_providers["twilio"], fake_providers["vonage"]
    reset_engine_state()


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_twilio_down_vonage_sends_then_twilio_circuit_skips_it(celery_worker, sms_fakes, app_api, make_user):
    twilio, vonage = sms_fakes
    twilio.fail_next(20, status=503, body=b'{"code": 20503, "message": "Service Unavailable"}')  # Twilio is down
    for n in range(6):
        RecipientProfile.objects.create(user=make_user(f"fo{n}"), phone=f"+1415555010{n}")

    ids = send(app_api, recipients=[f"fo{n}" for n in range(5)], channels=["sms"])

    wait_until(lambda: Delivery.objects.filter(notification_id__in=ids, status=DeliveryStatus.SENT).count() == 5,
               timeout=30, message="5 SMS sent")
    rows = Delivery.objects.filter(notification_id__in=ids)
    assert {row.provider for row in rows} == {"vonage"}
    assert all(row.attempt_count == 1 for row in rows)  # failover inside one attempt, no retry spent
    assert len(vonage.messages()) == 5 and twilio.messages() == []
    assert {m["client-ref"] for m in vonage.messages()} == {str(row.id) for row in rows}
    # 4 failures open Twilio's circuit (NOTIFY_CIRCUIT_FAILURES=4; a 5th call may have been under
    # way on the other worker process meanwhile); from then on Twilio is not called at all.
    assert breaker("twilio").state() == "open" and breaker("vonage").state() == "closed"
    calls = len(twilio.received)
    assert calls in (4, 5)
    [late] = send(app_api, recipients=["fo5"], channels=["sms"])
    sent = wait_until(lambda: Delivery.objects.filter(notification_id=late, status=DeliveryStatus.SENT).first(),
                      timeout=30, message="the 6th SMS")
    assert sent.provider == "vonage" and len(twilio.received) == calls
    assert [(a.provider, a.outcome, a.error) for a in sent.attempts.all()][0] == (
        "twilio", "transient_error", "twilio: circuit open, not called")
