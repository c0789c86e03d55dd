"""Slack incoming webhooks through `slack_sdk`, formatted with Block Kit.

Like webhooks, the message names SlackWebhook ids: a webhook URL is a credential, so it is read
from its row at send time and never copied into Delivery rows or error texts.
"""

import socket
import urllib.error
from urllib.parse import urlsplit

from django.conf import settings
from slack_sdk.errors import SlackRequestError
from slack_sdk.webhook import WebhookClient

from channels_delivery.engine.base import Provider, SendResult
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError, error_for_status
from channels_delivery.engine.fanout import settle
from notifications.models import SlackWebhook

# Slack's answers that mean this webhook will never work again.
GONE_ERRORS = {"no_service", "no_active_hooks", "invalid_token", "channel_is_archived", "channel_not_found"}


def slack_host(url):
    """The URL's host when it is one of SLACK_WEBHOOK_HOSTS (the one place that is checked), else None."""
    host = (urlsplit(url).hostname or "").lower()
    return host if host in settings.SLACK_WEBHOOK_HOSTS else None


def url_problem(url):
    """Why a URL is not a Slack incoming webhook we will call, or None: HTTPS only (the URL is
    the credential, and plain HTTP shows it to the network), on SLACK_WEBHOOK_HOSTS."""
    if urlsplit(url).scheme not in settings.SLACK_WEBHOOK_SCHEMES:
        return "Slack webhook URLs must use https."
    if slack_host(url) is None:
        return f"Not a Slack webhook host (allowed: {', '.join(settings.SLACK_WEBHOOK_HOSTS)})."
    return None


class SlackIncomingWebhook(Provider):
    name = "slack"
    channel = "slack"

    def has_targets(self, message):
        return bool(message.slack_webhook_ids)

    def send(self, delivery_id, message):
        webhooks = SlackWebhook.objects.filter(id__in=message.slack_webhook_ids, active=True)
        outcomes = [(webhook.id, self.send_one(webhook, message), {}) for webhook in webhooks]
        payload = settle(self.name, outcomes)
        return SendResult(provider_message_id=str(delivery_id), status_code="200", payload=payload)

    def send_one(self, webhook, message):
        if problem := url_problem(webhook.url):
            return PermanentDeliveryError(f"slack webhook {webhook.id}: {problem}")
        # Adapters never retry: the Celery task does, with backoff.
        client = WebhookClient(webhook.url, timeout=settings.PROVIDER_TIMEOUT_SECONDS, retry_handlers=[])
        try:
            response = client.send(text=message.text, blocks=message.blocks or None)
        except (socket.timeout, TimeoutError):
            return TransientDeliveryError(f"slack webhook {webhook.id} timed out")
        except (urllib.error.URLError, ConnectionError, OSError) as error:
            return TransientDeliveryError(f"slack webhook {webhook.id} unreachable: {type(error).__name__}")
        except SlackRequestError:
            # Its text holds the URL, which is a credential.
            return PermanentDeliveryError(f"slack webhook {webhook.id}: not a usable webhook URL")
        if response.status_code == 200 and response.body == "ok":
            return None
        return self.error_for(webhook, response)

    @staticmethod
    def error_for(webhook, response):
        """The one place Slack's answers are sorted; a removed webhook is reported gone."""
        body = (response.body or "").strip()[:200]
        if response.status_code in (404, 410) or body in GONE_ERRORS:
            SlackWebhook.objects.filter(id=webhook.id).deactivate(f"slack answered {response.status_code} {body}")
            return PermanentDeliveryError(f"slack {response.status_code}: {body}", status_code=response.status_code)
        return error_for_status("slack", response.status_code, body, response.headers)
