from django.conf import settings
from django.db import models

from notifications.encryption import EncryptedTextField
from notifications.models import ContactPoint


class SlackWorkspace(models.Model):
    """A Slack workspace our Slack app is installed in, with its bot token (xoxb-...)."""

    team_id = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200, blank=True)
    # A credential. Stored as is until notifications.encryption (branch `encrypt`) lands on main;
    # then an EncryptedTextField like the webhook secrets.
    bot_token = EncryptedTextField(help_text="xoxb-...; encrypted at rest.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name or self.team_id


class SlackBotTarget(ContactPoint):
    """Where the Slack bot reaches a user: a direct message to their Slack user id, or a post in
    a channel the bot was invited to."""

    class Kind(models.TextChoices):
        DIRECT = "direct"
        CHANNEL = "channel"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="slack_bot_targets")
    workspace = models.ForeignKey(SlackWorkspace, on_delete=models.CASCADE, related_name="targets")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.DIRECT)
    target_id = models.CharField(max_length=32, help_text="A Slack user id (U..., W...) or channel id (C..., G...).")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "workspace", "kind", "target_id"],
                                               name="slack_bot_target_unique")]
