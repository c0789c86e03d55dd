"""Telegram through the Bot API's sendMessage, with plain `requests` on one keep-alive session
per process (the Bot API is one JSON POST; no client library adds anything we need)."""

import threading

import requests
from django.conf import settings

from channels_delivery.channels.telegram.models import TelegramChat
from channels_delivery.engine.base import Provider, SendResult
from channels_delivery.engine.errors import PermanentDeliveryError, TransientDeliveryError, error_for_status
from channels_delivery.engine.fanout import settle

# Telegram's answers that mean this chat will never take a message from the bot again.
GONE = ("bot was blocked by the user", "user is deactivated", "chat not found", "bot was kicked")

local = threading.local()


def session():
    if getattr(local, "session", None) is None:
        local.session = requests.Session()
    return local.session


class TelegramBot(Provider):
    name = "telegram"
    channel = "telegram"

    def is_configured(self):
        return bool(settings.TELEGRAM_BOT_TOKEN)

    def send(self, delivery_id, message):
        chats = TelegramChat.objects.filter(id__in=message.chat_ids, active=True)
        outcomes = [(chat.id, *self.send_one(chat, message)) for chat in chats]
        payload = settle(self.name, outcomes)
        return SendResult(provider_message_id=str(delivery_id), status_code="200", payload=payload)

    def send_one(self, chat, message):
        # The token is part of the URL: errors name the chat, never the URL.
        url = f"{settings.TELEGRAM_API_BASE.rstrip('/')}/bot{settings.TELEGRAM_BOT_TOKEN}/sendMessage"
        body = {"chat_id": chat.chat_id, "text": message.text, "disable_web_page_preview": True}
        try:
            response = session().post(url, json=body, timeout=settings.PROVIDER_TIMEOUT_SECONDS)
        except requests.Timeout as error:
            return TransientDeliveryError(f"telegram chat {chat.id} timed out ({type(error).__name__})"), {}
        except requests.ConnectionError as error:
            return TransientDeliveryError(f"telegram unreachable ({type(error).__name__})"), {}
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code == 200 and answer.get("ok"):
            return None, {"message_id": answer.get("result", {}).get("message_id")}
        return self.error_for(chat, response, answer), {"status": response.status_code}

    @staticmethod
    def error_for(chat, response, answer):
        """The one place Bot API answers are sorted. 429 carries parameters.retry_after; a chat
        that blocked the bot (403) or is gone (400 chat not found) is switched off."""
        code = answer.get("error_code") or response.status_code
        description = str(answer.get("description") or response.reason or "")[:200]
        if code == 429:
            retry_after = (answer.get("parameters") or {}).get("retry_after")
            return TransientDeliveryError(
                f"telegram 429: {description}", status_code=429,
                retry_after=float(retry_after) if retry_after is not None else None,
            )
        if code in (400, 403) and any(reason in description.lower() for reason in GONE):
            TelegramChat.objects.filter(id=chat.id).deactivate(f"telegram {code}: {description}")
            return PermanentDeliveryError(f"telegram {code}: {description}; chat switched off", status_code=code)
        return error_for_status("telegram", code, description, response.headers)
