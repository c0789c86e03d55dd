"""SMS through Twilio, then Vonage, to the number in the user's profile."""

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist

from channels_delivery.channels.sms.providers import TwilioSMS
from channels_delivery.channels.sms.vonage import VonageSMS
from channels_delivery.engine.base import ChannelKit, Message
from notifications.phone import InvalidPhoneNumber, normalise_e164
from notifications.planning.text import clip

SMS_MAX_CHARS = 1600  # Twilio refuses longer bodies


@dataclass(frozen=True, kw_only=True)
class SmsMessage(Message):
    to: str
    text: str


def address(user):
    try:
        phone = user.profile.phone
    except ObjectDoesNotExist:
        return None
    if not phone:
        return None
    try:
        return {"to": normalise_e164(phone, settings.SMS_DEFAULT_REGION or None)}
    except InvalidPhoneNumber:
        return None


def layout(notification):
    text = f"{notification.title}: {notification.body}" if notification.body else notification.title
    return {"text": clip(text, SMS_MAX_CHARS)}


def template_layout(rendered):
    """An SMS template is the whole text."""
    return {"text": clip(rendered.body.strip(), SMS_MAX_CHARS)}


CHANNEL = ChannelKit(
    name="sms", providers=[TwilioSMS(), VonageSMS()], message=SmsMessage, address=address, layout=layout,
    template_layout=template_layout,
)
