"""The only place channels and their providers are listed, in failover order."""

from .apns import ApplePush
from .email import DjangoEmail, SendGridEmail
from .fcm import FirebaseMessaging
from .inapp import InApp
from .push import WebPush
from .slack import SlackIncomingWebhook
from .slack_bot import SlackBot
from .sms import TwilioSMS
from .vonage import VonageSMS
from .webhook import SignedWebhook

PROVIDERS = {
    "email": [SendGridEmail(), DjangoEmail()],
    "sms": [TwilioSMS(), VonageSMS()],
    "push": [WebPush(), FirebaseMessaging(), ApplePush()],
    "webhook": [SignedWebhook()],
    "slack": [SlackIncomingWebhook(), SlackBot()],
    "inapp": [InApp()],
}

# Channels whose providers reach different contact points of a user (Web Push: browsers, FCM and
# APNs: phones; Slack incoming webhooks and the bot's targets): every provider with targets in the
# message is called, not the next one on failure.
SIDE_BY_SIDE = {"push", "slack"}


def providers_for(channel):
    return [provider for provider in PROVIDERS.get(channel, []) if provider.is_configured()]

