"""The only place channels and their providers are listed, in failover order."""

from .email import DjangoEmail, SendGridEmail
from .inapp import InApp

PROVIDERS = {
    "email": [SendGridEmail(), DjangoEmail()],
    "inapp": [InApp()],
}


def providers_for(channel):
    return [provider for provider in PROVIDERS.get(channel, []) if provider.is_configured()]
