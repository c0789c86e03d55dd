"""What our code sends to SendGrid and Twilio, captured at the fakes, validated against the
providers' own OpenAPI specs; and the fake Twilio's answers against Twilio's response schema."""

import uuid

import pytest

from channels_delivery.channels.email.channel import EmailMessage
from channels_delivery.channels.email.providers import SendGridEmail
from channels_delivery.channels.sms.channel import SmsMessage
from channels_delivery.channels.sms.providers import TwilioSMS
from tests.support.contracts import errors, request_body_validator, response_validator

MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"


@pytest.fixture
def sendgrid_contract():
    return request_body_validator("sendgrid_mail_v3.json", "/v3/mail/send", "post", "application/json")


@pytest.fixture
def twilio_contract():
    return request_body_validator("twilio_api_v2010.json", MESSAGES, "post", "application/x-www-form-urlencoded")


@pytest.mark.parametrize("message", [
    {"to": "ada@example.com", "subject": "Order 123 shipped", "text": "On its way.", "html": "<p>On its way.</p>"},
    {"to": "ada@example.com", "subject": "Only text", "text": "Hello"},
    {"to": "ada@example.com", "subject": "Only html", "html": "<b>Hello</b>"},
])
def test_sendgrid_mail_send_matches_the_spec(sendgrid, channel_settings, sendgrid_contract, message):
    channel_settings.SENDGRID_API_KEY, channel_settings.SENDGRID_HOST = sendgrid.api_key, sendgrid.url

    SendGridEmail().send(uuid.uuid4(), EmailMessage.from_dict(message))

    [request] = sendgrid.requests
    assert request.path == "/v3/mail/send" and request.headers["content-type"] == "application/json"
    assert errors(sendgrid_contract, request.json()) == []


def test_sendgrid_contract_catches_a_broken_request(sendgrid_contract):
    broken = {"from": {"email": "shop@example.com"}, "subject": "", "content": [{"type": "text/plain"}]}
    assert errors(sendgrid_contract, broken) == [
        ": 'personalizations' is a required property",
        "content/0: 'value' is a required property",
        "subject: '' should be non-empty",
    ]


@pytest.mark.parametrize("text", ["Order 123 shipped", "Ваш заказ отправлен 📦", "x" * 1600])
def test_twilio_create_message_matches_the_spec(fakes, channel_settings, twilio_contract, text):
    twilio = fakes["twilio"]

    TwilioSMS().send(uuid.uuid4(), SmsMessage.from_dict({"to": "+1 415 555 2671", "text": text}))

    [request] = twilio.requests
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert errors(twilio_contract, request.form()) == []


def test_twilio_create_with_messaging_service_matches_the_spec(fakes, channel_settings, twilio_contract):
    channel_settings.TWILIO_MESSAGING_SERVICE_SID = "MG" + "0f" * 16
    TwilioSMS().send(uuid.uuid4(), SmsMessage.from_dict({"to": "+14155552671", "text": "Hi"}))
    assert errors(twilio_contract, fakes["twilio"].requests[0].form()) == []


def test_twilio_contract_catches_a_broken_request(twilio_contract):
    broken = {"Body": "Hi", "To": "0151 1234", "StatusCallback": "not a url", "MessagingServiceSid": "MG1"}
    assert errors(twilio_contract, broken) == [
        "MessagingServiceSid: 'MG1' does not match '^MG[0-9a-fA-F]{32}$'",
        "MessagingServiceSid: 'MG1' is too short",
        "StatusCallback: 'not a url' is not a 'uri'",
        "To: '0151 1234' is not a 'phone-number'",
    ]


def test_fake_twilio_answers_like_twilio(fakes, channel_settings):
    import requests

    twilio = fakes["twilio"]
    answer = requests.post(
        f"{twilio.url}/2010-04-01/Accounts/{twilio.account_sid}/Messages.json",
        data={"To": "+14155552671", "From": twilio.from_number, "Body": "Hi"},
        auth=(twilio.account_sid, twilio.auth_token), timeout=5,
    )
    assert answer.status_code == 201
    assert errors(response_validator("twilio_api_v2010.json", MESSAGES, "post", 201), answer.json()) == []
