from django.conf import settings
from django.db import models

from notifications.models import ContactPoint


class TelegramChat(ContactPoint):
    """A chat with our bot that a user opened (they pressed Start): the bot may write to it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="telegram_chats")
    chat_id = models.BigIntegerField(help_text="Telegram's chat id (the user's id for a private chat).")
    label = models.CharField(max_length=100, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "chat_id"], name="telegram_chat_unique")]

    def __str__(self):
        return f"telegram chat {self.chat_id} of {self.user}"
