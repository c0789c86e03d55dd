"""Slack through the Web API with a bot token per workspace (`slack_sdk` WebClient): a direct
message to a user (conversations.open, then chat.postMessage) or a post to a channel.

Like incoming webhooks, the message names SlackBotTarget ids only: a bot token is a credential,
read from its workspace row at send time. Slack rate-limits per workspace and method; a 429's
Retry-After pauses that method for that workspace in Redis, so no worker calls it before then.
"""

import socket
import urllib.error

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from channels_delivery.channels.slack.models import SlackBotTarget
from channels_delivery.engine.base import Provider, SendResult
from channels_delivery.engine.errors import (
    PermanentDeliveryError,
    TransientDeliveryError,
    error_for_status,
    retry_after_seconds,
)
from channels_delivery.engine.fanout import settle
from notifications.shared_state import client as shared_redis

# Slack's errors that say the target itself is gone: it is switched off.
TARGET_GONE = {"user_not_found", "user_disabled", "channel_not_found", "is_archived"}
# Errors no retry fixes (the rest of the 4xx-like answers are permanent too, see error_for).
PERMANENT = TARGET_GONE | {"not_in_channel", "account_inactive", "invalid_auth", "token_revoked", "cannot_dm_bot",
                           "msg_too_long", "no_text", "invalid_blocks", "missing_scope", "restricted_action"}
TRANSIENT = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}


def paused_for(team_id, method):
    """Seconds this workspace's `method` stays paused by a rate-limit answer (0: not paused)."""
    return max(shared_redis().pttl(f"notify:slack:{team_id}:{method}:paused"), 0) / 1000


def pause(team_id, method, seconds):
    shared_redis().set(f"notify:slack:{team_id}:{method}:paused", "1", px=max(int(seconds * 1000), 1))


class SlackBot(Provider):
    name = "slack_bot"
    channel = "slack"

    def has_targets(self, message):
        return bool(message.slack_bot_target_ids)

    def send(self, delivery_id, message):
        targets = SlackBotTarget.objects.filter(
            id__in=message.slack_bot_target_ids, active=True, workspace__active=True
        ).select_related("workspace")
        outcomes = [(target.id, *self.send_one(target, message)) for target in targets]
        payload = settle(self.name, outcomes)
        return SendResult(provider_message_id=str(delivery_id), status_code="ok", payload=payload)

    def send_one(self, target, message):
        workspace = target.workspace
        # Adapters never retry: the Celery task does, with the retry policy.
        web = WebClient(token=workspace.bot_token, base_url=settings.SLACK_API_BASE,
                        timeout=int(max(1, settings.PROVIDER_TIMEOUT_SECONDS)), retry_handlers=[])
        try:
            channel = target.target_id
            if target.kind == SlackBotTarget.Kind.DIRECT:
                channel = self.call(target, "conversations.open", web.conversations_open,
                                    users=target.target_id)["channel"]["id"]
            answer = self.call(target, "chat.postMessage", web.chat_postMessage, channel=channel,
                               text=message.text, blocks=message.blocks or None)
        except (PermanentDeliveryError, TransientDeliveryError) as error:
            return error, {}
        return None, {"channel": answer["channel"], "ts": answer["ts"]}

    def call(self, target, method, sdk_method, **arguments):
        team = target.workspace.team_id
        wait = paused_for(team, method)
        if wait:
            raise TransientDeliveryError(f"slack {method} rate limited for {wait:.1f}s more, not called",
                                         status_code=429, retry_after=wait)
        try:
            return sdk_method(**arguments)
        except SlackApiError as error:
            raise self.error_for(target, method, error.response) from error
        except (socket.timeout, TimeoutError) as error:
            raise TransientDeliveryError(f"slack {method} timed out") from error
        except (urllib.error.URLError, ConnectionError, OSError) as error:
            raise TransientDeliveryError(f"slack {method} unreachable ({type(error).__name__})") from error

    @staticmethod
    def error_for(target, method, response):
        """The one place Slack Web API answers are sorted; a gone user or channel is switched off."""
        data = response.data if isinstance(response.data, dict) else {}
        code = data.get("error", "") or f"http {response.status_code}"
        detail = f"slack {method} for target {target.id}: {code}"
        if response.status_code == 429 or code == "ratelimited":
            wait = retry_after_seconds(response.headers) or 1.0
            pause(target.workspace.team_id, method, wait)
            return TransientDeliveryError(detail, status_code=429, retry_after=wait)
        if code in TARGET_GONE:
            SlackBotTarget.objects.filter(id=target.id).deactivate(f"slack answered {code}")
            return PermanentDeliveryError(detail, status_code=response.status_code)
        if code in PERMANENT:
            return PermanentDeliveryError(detail, status_code=response.status_code)
        if code in TRANSIENT or response.status_code >= 500:
            return TransientDeliveryError(detail, status_code=response.status_code,
                                          retry_after=retry_after_seconds(response.headers))
        return error_for_status(f"slack {method}", response.status_code if response.status_code >= 400 else 400,
                                code, response.headers)
