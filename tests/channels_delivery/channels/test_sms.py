"""SMS through the real twilio SDK against the fake Twilio: numbers, segments, error sorting."""

import uuid

import pytest

from channels_delivery.channels.sms.channel import SmsMessage
from channels_delivery.channels.sms.providers import TwilioSMS
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.phone import InvalidPhoneNumber, normalise_e164, segments


@pytest.fixture
def twilio(fakes, channel_settings):
    return fakes["twilio"]


def send(text="Order 123 shipped", to="+4915112345678"):
    delivery_id = uuid.uuid4()
    return delivery_id, TwilioSMS().send(delivery_id, SmsMessage.from_dict({"to": to, "text": text}))


def test_sms_reaches_twilio_with_status_callback_and_segments(twilio):
    delivery_id, result = send(to="+49 151 1234 5678")

    [form] = twilio.messages()
    assert form["To"] == "+4915112345678"
    assert form["From"] == twilio.from_number
    assert form["Body"] == "Order 123 shipped"
    assert form["StatusCallback"] == f"https://notify.example.com/callbacks/twilio/status/{delivery_id}/"
    assert result.provider_message_id.startswith("SM") and result.status_code == "queued"
    assert result.payload == {"to": "+4915112345678", "encoding": "GSM-7", "segments": 1,
                              "twilio_status": "queued", "twilio_segments": "1"}


def test_messaging_service_replaces_the_from_number(twilio, channel_settings):
    channel_settings.TWILIO_MESSAGING_SERVICE_SID = "MG" + "ab" * 16
    send()
    [form] = twilio.messages()
    assert form["MessagingServiceSid"] == "MG" + "ab" * 16 and "From" not in form


@pytest.mark.parametrize(
    "raw, region, expected",
    [("+1 (415) 555-2671", None, "+14155552671"), ("030 901820", "DE", "+4930901820"),
     ("0044 20 7946 0958", "DE", "+442079460958"), ("(415) 555-2671", "US", "+14155552671")],
)
def test_numbers_are_normalised_to_e164(raw, region, expected):
    assert normalise_e164(raw, region) == expected


@pytest.mark.parametrize("raw, region", [("12345", None), ("not a number", "US"), ("+1 555 0100", None), ("0151", None)])
def test_invalid_numbers_are_refused(raw, region):
    with pytest.raises(InvalidPhoneNumber):
        normalise_e164(raw, region)


def test_invalid_number_is_permanent_without_calling_twilio(twilio):
    with pytest.raises(PermanentDeliveryError, match="invalid number"):
        send(to="+1 555 0100")
    assert twilio.received == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", ("GSM-7", 0)),
        ("a" * 160, ("GSM-7", 1)),
        ("a" * 161, ("GSM-7", 2)),
        ("a" * 306, ("GSM-7", 2)),
        ("a" * 307, ("GSM-7", 3)),
        ("€" * 80, ("GSM-7", 1)),  # extension characters cost two septets each
        ("€" * 81, ("GSM-7", 2)),
        ("a" * 152 + "€", ("GSM-7", 1)),
        ("a" * 152 + "€" + "a" * 8, ("GSM-7", 2)),  # the escape pair moves whole to part two
        ("Grüße aus Köln", ("GSM-7", 1)),
        ("Ça coûte 5 €", ("UCS-2", 1)),  # û is not in GSM-7
        ("привет" * 11 + "abcd", ("UCS-2", 1)),
        ("привет" * 12, ("UCS-2", 2)),
        ("x" * 66 + "😀" + "y" * 10, ("UCS-2", 2)),  # a surrogate pair is two UCS-2 units
        ("😀" * 35, ("UCS-2", 1)),
        ("😀" * 36, ("UCS-2", 2)),
    ],
)
def test_segment_count(text, expected):
    assert segments(text) == expected


def test_unicode_body_records_ucs2_segments(twilio):
    _, result = send(text="Ваш заказ отправлен и будет доставлен завтра между 10:00 и 14:00. Спасибо!")
    assert result.payload["encoding"] == "UCS-2" and result.payload["segments"] == 2
    assert result.payload["twilio_segments"] == "2"


def test_21211_invalid_number_is_permanent(twilio):
    twilio.invalid_numbers.add("+4915112345678")
    with pytest.raises(PermanentDeliveryError, match="21211") as caught:
        send()
    assert caught.value.status_code == 21211
    assert len(twilio.received) == 1 and twilio.requests == []


def test_21610_unsubscribed_is_permanent(twilio):
    twilio.unsubscribed.add("+4915112345678")
    with pytest.raises(PermanentDeliveryError, match="unsubscribed") as caught:
        send()
    assert caught.value.status_code == 21610


def test_429_is_transient_and_carries_retry_after(twilio):
    twilio.fail_next(status=429, headers={"Retry-After": "17", "Content-Type": "application/json"},
                     body=b'{"code": 20429, "message": "Too Many Requests", "status": 429}')
    with pytest.raises(TransientDeliveryError) as caught:
        send()
    assert caught.value.status_code == 429 and caught.value.retry_after == 17.0


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_transient(twilio, status):
    twilio.fail_next(status=status, body=b'{"code": 20500, "message": "Internal Server Error"}')
    with pytest.raises(TransientDeliveryError):
        send()
    send()
    assert len(twilio.requests) == 1


def test_timeout_is_transient(twilio):
    twilio.fail_next(timeout=True)
    with pytest.raises(TransientDeliveryError, match="timed out"):
        send()


def test_dropped_connection_is_transient(twilio):
    twilio.fail_next(drop=True)
    with pytest.raises(TransientDeliveryError, match="unreachable"):
        send()


def test_wrong_credentials_are_permanent(twilio, channel_settings):
    channel_settings.TWILIO_AUTH_TOKEN = "wrong"
    with pytest.raises(PermanentDeliveryError, match="20003"):
        send()
