"""The only place channels and their providers are listed, in failover order."""

from .email import DjangoEmail, SendGridEmail
from .inapp import InApp
from .push import WebPush
from .slack import SlackIncomingWebhook
from .sms import TwilioSMS
from .vonage import VonageSMS
from .webhook import SignedWebhook

PROVIDERS = {
    "email": [SendGridEmail(), DjangoEmail()],
    "sms": [TwilioSMS(), VonageSMS()],
    "push": [WebPush()],
    "webhook": [SignedWebhook()],
    "slack": [SlackIncomingWebhook()],
    "inapp": [InApp()],
}


def providers_for(channel):
    return [provider for provider in PROVIDERS.get(channel, []) if provider.is_configured()]

