"""Telegram: a message from our bot to each chat the user opened with it."""

from dataclasses import dataclass

from channels_delivery.channels.telegram.providers import TelegramBot
from channels_delivery.engine.base import ChannelKit, Message
from notifications.planning.text import clip

TELEGRAM_MAX_CHARS = 4096  # sendMessage refuses longer texts


@dataclass(frozen=True, kw_only=True)
class TelegramMessage(Message):
    chat_ids: list
    text: str


def address(user):
    ids = sorted(chat.id for chat in user.telegram_chats.all() if chat.active)
    return {"chat_ids": ids} if ids else None


def layout(notification):
    # Plain text (no parse_mode): data cannot inject Markdown or HTML links.
    text = f"{notification.title}\n\n{notification.body}" if notification.body else notification.title
    return {"text": clip(text, TELEGRAM_MAX_CHARS)}


CHANNEL = ChannelKit(
    name="telegram", providers=[TelegramBot()], message=TelegramMessage, address=address, layout=layout,
    contact_points=("telegram_chats",),
)
