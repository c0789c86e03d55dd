"""The domain's tables: what was asked (Notification), what was planned and tried (Delivery,
DeliveryAttempt), and what decides it (templates, preferences, contact points)."""

import base64
import hashlib
import secrets
import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .secret_fields import SecretJSONField


class Channel(models.TextChoices):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    WEBHOOK = "webhook"
    SLACK = "slack"
    INAPP = "inapp"


class Priority(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class NotificationStatus(models.TextChoices):
    SCHEDULED = "scheduled"  # waits in Postgres for scheduled_at (or the end of quiet hours)
    PENDING = "pending"  # stored, dispatch enqueued
    DISPATCHED = "dispatched"  # deliveries planned
    DELIVERED = "delivered"  # at least one channel reached the user
    FAILED = "failed"  # every planned channel failed
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    BATCHED = "batched"  # held for its category's digest (see Digest)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # planned, waiting for an earlier channel of the chain to fail
    QUEUED = "queued"
    SENDING = "sending"
    RETRYING = "retrying"
    SENT = "sent"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


DELIVERY_FINAL_STATUSES = {
    DeliveryStatus.SENT,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.BOUNCED,
    DeliveryStatus.UNDELIVERED,
    DeliveryStatus.FAILED,
    DeliveryStatus.SKIPPED,
    DeliveryStatus.CANCELLED,
}


class AttemptOutcome(models.TextChoices):
    SENT = "sent"
    TRANSIENT_ERROR = "transient_error"
    PERMANENT_ERROR = "permanent_error"
    SKIPPED = "skipped"
    REQUEUED = "requeued"  # not a try: the reaper put a stuck delivery back on its queue


class Category(models.Model):
    key = models.SlugField(primary_key=True, max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    critical = models.BooleanField(default=False, help_text="Cannot be switched off; ignores quiet hours.")
    digest_window_minutes = models.PositiveIntegerField(null=True, blank=True)
    escalate_after_minutes = models.PositiveIntegerField(null=True, blank=True)
    escalate_to = models.CharField(max_length=16, choices=Channel.choices, blank=True)
    digest_daily_at = models.TimeField(
        null=True, blank=True, help_text="Send one digest a day at this time in the recipient's time zone."
    )

    class Meta:
        verbose_name_plural = "categories"

    def __str__(self):
        return self.key


class ApiClient(models.Model):
    """An application that sends notifications. Its key is shown once and stored hashed."""

    SCOPES = ["send", "read", "admin"]

    name = models.CharField(max_length=200)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_clients")
    key_prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = ArrayField(models.CharField(max_length=16), default=list)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name} ({self.key_prefix})"

    @staticmethod
    def hash_secret(secret):
        # Keys carry 256 random bits, so a plain digest resists guessing as well as a slow hash.
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def issue(cls, name, owner, scopes=("send", "read")):
        """Create a client and return it with its full key, which is never stored."""
        prefix = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        client = cls.objects.create(
            name=name, owner=owner, key_prefix=prefix, key_hash=cls.hash_secret(secret), scopes=list(scopes)
        )
        return client, f"nk_{prefix}.{secret}"

    def has_scope(self, scope):
        return scope in self.scopes or "admin" in self.scopes


class RecipientProfile(models.Model):
    """Per-user contact details beyond user.email, and the user's locale and time zone."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    phone = models.CharField(max_length=20, blank=True, help_text="E.164")
    locale = models.CharField(max_length=16, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")

    def __str__(self):
        return f"profile of {self.user}"


class PushSubscription(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_subscriptions")
    endpoint = models.URLField(max_length=1000)
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=100)
    user_agent = models.CharField(max_length=300, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deactivated_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "endpoint"], name="push_subscription_unique")]


class SlackWebhook(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="slack_webhooks")
    url = models.URLField(max_length=500)
    channel_name = models.CharField(max_length=100, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deactivated_reason = models.CharField(max_length=200, blank=True)


class MobileDevice(models.Model):
    """A phone app's token for native push (FCM HTTP v1, or APNs)."""

    class Platform(models.TextChoices):
        ANDROID = "android"
        IOS = "ios"

    class Provider(models.TextChoices):
        FCM = "fcm"  # a Firebase registration token (Android, or iOS through Firebase)
        APNS = "apns"  # an APNs device token (iOS, straight through Apple)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mobile_devices")
    provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.FCM)
    token = models.CharField(max_length=1024)
    platform = models.CharField(max_length=16, choices=Platform.choices, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deactivated_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        # A token names one app install; when another user signs in on it, the row moves to them.
        constraints = [models.UniqueConstraint(fields=["provider", "token"], name="mobile_device_unique")]


class SlackWorkspace(models.Model):
    """A Slack workspace our Slack app is installed in, with its bot token (xoxb-...)."""

    team_id = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200, blank=True)
    # A credential. Stored as is until notifications.encryption (branch `encrypt`) lands on main;
    # then an EncryptedTextField like the webhook secrets.
    bot_token = models.TextField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name or self.team_id


class SlackBotTarget(models.Model):
    """Where the Slack bot reaches a user: a direct message to their Slack user id, or a post in
    a channel the bot was invited to."""

    class Kind(models.TextChoices):
        DIRECT = "direct"
        CHANNEL = "channel"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="slack_bot_targets")
    workspace = models.ForeignKey(SlackWorkspace, on_delete=models.CASCADE, related_name="targets")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.DIRECT)
    target_id = models.CharField(max_length=32, help_text="A Slack user id (U..., W...) or channel id (C..., G...).")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deactivated_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "workspace", "kind", "target_id"],
                                               name="slack_bot_target_unique")]


def new_webhook_secret():
    # Standard Webhooks secrets are standard base64 (not base64url) after the prefix.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookEndpoint(models.Model):
    class Method(models.TextChoices):
        POST = "POST"
        PUT = "PUT"

    class ContentType(models.TextChoices):
        JSON = "json", "application/json"
        FORM = "form", "application/x-www-form-urlencoded"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=100, default=new_webhook_secret)
    description = models.CharField(max_length=200, blank=True)
    method = models.CharField(max_length=4, choices=Method.choices, default=Method.POST)
    content_type = models.CharField(max_length=4, choices=ContentType.choices, default=ContentType.JSON)
    # Credentials such as `Authorization: Bearer ...`: written, never shown again (see secret_fields).
    extra_headers = SecretJSONField(blank=True, default=dict)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deactivated_reason = models.CharField(max_length=200, blank=True)


class Topic(models.Model):
    key = models.SlugField(primary_key=True, max_length=100)
    name = models.CharField(max_length=200, blank=True)
    subscribers = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="topics", blank=True)

    def __str__(self):
        return self.key


class ChannelPreference(models.Model):
    """A user's switch for a channel, for one category or (category empty) for all."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="channel_preferences")
    category = models.ForeignKey(Category, on_delete=models.CASCADE, null=True, blank=True)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    enabled = models.BooleanField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "category", "channel"], name="user_pref_unique", nulls_distinct=False
            )
        ]


class GroupPreference(models.Model):
    """The default switch for members of a group (role), below the user's own choice."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="channel_preferences")
    category = models.ForeignKey(Category, on_delete=models.CASCADE, null=True, blank=True)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    enabled = models.BooleanField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["group", "category", "channel"], name="group_pref_unique", nulls_distinct=False
            )
        ]


class QuietHours(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quiet_hours")
    enabled = models.BooleanField(default=True)
    timezone = models.CharField(max_length=64, default="UTC")
    start = models.TimeField()
    end = models.TimeField()
    # ISO weekdays (1 = Monday) on which the window starts; empty means every day.
    days = ArrayField(models.PositiveSmallIntegerField(), default=list, blank=True)

    class Meta:
        verbose_name_plural = "quiet hours"


class Template(models.Model):
    """One version of the text for a category (key), channel and locale. Edits add versions."""

    key = models.SlugField(max_length=100)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    locale = models.CharField(max_length=16, default="en")
    version = models.PositiveIntegerField(default=1)
    active = models.BooleanField(default=True)
    subject = models.CharField(max_length=500, blank=True)
    body = models.TextField()
    html_body = models.TextField(blank=True)
    blocks = models.JSONField(default=list, blank=True)
    variables = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "channel", "locale", "version"], name="template_version_unique"),
            models.UniqueConstraint(
                fields=["key", "channel", "locale"], condition=Q(active=True), name="template_one_active"
            ),
        ]

    def __str__(self):
        return f"{self.key}/{self.channel}/{self.locale} v{self.version}"

    def clean(self):
        from django.core.exceptions import ValidationError

        from .templating import template_errors

        errors = template_errors(self.subject, self.body, self.html_body, self.blocks, self.variables)
        if errors:
            raise ValidationError(errors)


class Broadcast(models.Model):
    """One send request to an audience; fan-out progress is followed here."""

    class Status(models.TextChoices):
        PENDING = "pending"
        FANNING_OUT = "fanning_out"
        DONE = "done"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sender = models.ForeignKey(ApiClient, on_delete=models.SET_NULL, null=True, blank=True)
    audience = models.JSONField(default=dict)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    total_recipients = models.PositiveIntegerField(default=0)
    notifications_created = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)


class BroadcastChunk(models.Model):
    """A fixed range of recipient user ids of a broadcast, fanned out by one task."""

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    first_user_id = models.BigIntegerField()
    last_user_id = models.BigIntegerField()
    created = models.PositiveIntegerField(default=0)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["broadcast", "number"]
        constraints = [models.UniqueConstraint(fields=["broadcast", "number"], name="broadcast_chunk_unique")]


class NotificationQuerySet(models.QuerySet):
    def for_recipient(self, user):
        return self.filter(recipient=user)

    def unread(self):
        return self.filter(read_at__isnull=True)

    def due(self, now=None):
        return self.filter(status=NotificationStatus.SCHEDULED, scheduled_at__lte=now or timezone.now())

    def mark_all_read(self, now=None):
        return self.unread().update(read_at=now or timezone.now())


class Notification(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    sender = models.ForeignKey(ApiClient, on_delete=models.SET_NULL, null=True, blank=True)
    broadcast = models.ForeignKey(Broadcast, on_delete=models.SET_NULL, null=True, blank=True)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, db_column="category")
    title = models.CharField(max_length=500)
    body = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.MEDIUM)
    status = models.CharField(max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    channels = ArrayField(models.CharField(max_length=16, choices=Channel.choices), default=list, blank=True)
    # The sender's fallback chains, e.g. [["inapp"], ["push", "sms", "email"]]; empty: configured routes.
    routes = models.JSONField(default=list, blank=True)
    template_key = models.SlugField(max_length=100, blank=True)
    context = models.JSONField(default=dict, blank=True)
    locale = models.CharField(max_length=16, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    seen_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    # What planning decided and why (channels used or skipped, quiet-hours deferrals); see /explain/.
    trace = models.JSONField(default=list, blank=True)
    digest = models.ForeignKey(
        "Digest", on_delete=models.SET_NULL, null=True, blank=True, related_name="items",
        help_text="The digest this notification was batched into.",
    )

    objects = NotificationQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["sender", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="notification_idempotency_per_sender",
            ),
            # A broadcast chunk that runs twice inserts nobody twice (ON CONFLICT DO NOTHING).
            models.UniqueConstraint(
                fields=["broadcast", "recipient"],
                condition=Q(broadcast__isnull=False),
                name="notification_once_per_broadcast",
            ),
        ]
        indexes = [
            models.Index(fields=["recipient", "-created_at"], name="inbox_idx"),
            models.Index(fields=["recipient"], condition=Q(read_at__isnull=True), name="inbox_unread_idx"),
            models.Index(fields=["scheduled_at"], condition=Q(status="scheduled"), name="scheduled_due_idx"),
            models.Index(fields=["sender", "-created_at"], name="sender_sent_idx"),
        ]

    def __str__(self):
        return f"{self.category_id}: {self.title}"


class DeliveryQuerySet(models.QuerySet):
    def dead_letters(self):
        """Failed deliveries that ended their chain: nothing after them in their route is left to try."""
        later = Delivery.objects.filter(
            notification=models.OuterRef("notification"), route=models.OuterRef("route"),
            position__gt=models.OuterRef("position"),
        ).exclude(status=DeliveryStatus.SKIPPED)
        return self.filter(status=DeliveryStatus.FAILED).exclude(models.Exists(later))

    def stuck(self, older_than):
        return self.filter(
            status__in=[DeliveryStatus.QUEUED, DeliveryStatus.SENDING], updated_at__lt=older_than
        )


class Attachment(models.Model):
    """A file sent with a notification's email. Its content is stored once through Django's storage
    API under its SHA-256 (a send to many recipients shares one stored file); the email delivery's
    message names the attachment ids, never the content."""

    notification = models.ForeignKey("Notification", on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=127)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, blank=True)
    file = models.FileField(max_length=300, blank=True)
    # Given as a URL: fetched through the outbound guard when the notification is planned.
    source_url = models.URLField(max_length=1000, blank=True)
    fetch_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    @property
    def pending(self):
        return bool(self.source_url) and not self.file and not self.fetch_error

    class Meta:
        ordering = ["id"]


class Delivery(models.Model):
    """One planned channel of one notification; position is its place in the fallback order."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    provider = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    # Routes run side by side; within a route, position is the place in the fallback chain.
    route = models.PositiveSmallIntegerField(default=0)
    position = models.PositiveSmallIntegerField(default=0)
    attempt_count = models.PositiveIntegerField(default=0)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    provider_message_id = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=500, blank=True, help_text="Why it was skipped, failed or fell back.")
    last_error = models.TextField(blank=True)
    template_version = models.PositiveIntegerField(null=True, blank=True)
    # The rendered message and its address, fixed at planning: all a channel needs to send.
    message = models.JSONField(default=dict, blank=True)
    provider_payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["route", "position"]
        constraints = [
            models.UniqueConstraint(fields=["notification", "channel"], name="delivery_one_per_channel"),
        ]
        indexes = [
            models.Index(fields=["status", "updated_at"], name="delivery_status_idx"),
            models.Index(
                fields=["provider_message_id"], condition=~Q(provider_message_id=""), name="delivery_provider_msg_idx"
            ),
            models.Index(fields=["next_retry_at"], condition=Q(status="retrying"), name="delivery_retry_idx"),
        ]

    def __str__(self):
        return f"{self.channel} for {self.notification_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """Append-only: one row per try of a delivery."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    provider = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices)
    error = models.TextField(blank=True)
    provider_status_code = models.CharField(max_length=32, blank=True)
    note = models.CharField(max_length=300, blank=True)
    # Set on a try that failed transiently: the retry policy it fell under and the wait computed
    # before the next try (Retry-After included).
    retry_policy = models.CharField(max_length=200, blank=True)
    retry_wait_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [models.Index(fields=["delivery", "started_at"], name="attempt_delivery_idx")]


class ProviderEvent(models.Model):
    """A status callback from a provider, kept raw and de-duplicated on the provider's event id."""

    provider = models.CharField(max_length=32)
    event_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=32)
    delivery = models.ForeignKey(Delivery, on_delete=models.SET_NULL, null=True, blank=True, related_name="events")
    payload = models.JSONField(default=dict)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="provider_event_unique")]


class StatusWebhook(models.Model):
    """An API client's endpoint for the status changes of the notifications it sent, signed per
    Standard Webhooks with its own secret (shown once)."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="status_webhooks")
    url = models.URLField(max_length=500)
    # A credential. Stored as is until notifications.encryption (branch `encrypt`) lands on main.
    secret = models.CharField(max_length=100, default=new_webhook_secret)
    event_types = ArrayField(models.CharField(max_length=32), default=list, blank=True,
                             help_text="Event types to send (e.g. delivery.delivered); empty: all.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deactivated_reason = models.CharField(max_length=200, blank=True)


class StatusEventStatus(models.TextChoices):
    PENDING = "pending"  # written by the database trigger with the status change itself
    QUEUED = "queued"
    SENDING = "sending"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"  # retries exhausted or refused: the status webhooks' dead-letter list


class StatusEventQuerySet(models.QuerySet):
    def dead_letters(self):
        return self.filter(status=StatusEventStatus.FAILED)


class StatusEvent(models.Model):
    """One status change of a notification or delivery, owed to one status webhook.

    Rows are inserted by Postgres triggers (migration 0009) in the transaction that changes the
    status, whichever code path or bulk UPDATE does it, so no change is missed and none is owed
    for a change that was rolled back.
    """

    webhook = models.ForeignKey(StatusWebhook, on_delete=models.CASCADE, related_name="events")
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, help_text="The webhook-id receivers de-duplicate on.")
    type = models.CharField(max_length=32)
    notification_id = models.UUIDField()
    delivery_id = models.UUIDField(null=True, blank=True)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=StatusEventStatus.choices, default=StatusEventStatus.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    retry_policy = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = StatusEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["status", "updated_at"], name="status_event_status_idx"),
            models.Index(fields=["notification_id"], name="status_event_notification_idx"),
        ]


class IdempotencyRecordQuerySet(models.QuerySet):
    def expired(self, now=None):
        return self.filter(created_at__lt=(now or timezone.now()) - IDEMPOTENCY_TTL)


IDEMPOTENCY_TTL = timezone.timedelta(hours=24)


class IdempotencyRecord(models.Model):
    """The first answer to a POST with an Idempotency-Key, replayed for 24 hours."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, null=True, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = IdempotencyRecordQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "user", "key"], name="idempotency_unique", nulls_distinct=False)
        ]


class Resend(models.Model):
    """An operator's request to try a notification's failed or skipped channels again."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="resends")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    client = models.ForeignKey(ApiClient, on_delete=models.SET_NULL, null=True, blank=True)
    reason = models.CharField(max_length=500)
    channels = ArrayField(models.CharField(max_length=16), default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]


# --- clock ---
class Digest(models.Model):
    """One batch of a user's notifications of one category in one window; sent once, as one
    message per channel. The unique constraint holds however many workers batch at once."""

    class Status(models.TextChoices):
        COLLECTING = "collecting"
        SENT = "sent"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="digests")
    category = models.ForeignKey(Category, on_delete=models.CASCADE)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COLLECTING)
    notification = models.OneToOneField(
        Notification, on_delete=models.SET_NULL, null=True, blank=True, related_name="digest_sent",
        help_text="The notification that carried the digest out.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "category", "window_start"], name="digest_one_per_window")
        ]
        indexes = [models.Index(fields=["window_end"], condition=Q(status="collecting"), name="digest_due_idx")]

    def __str__(self):
        return f"{self.category_id} digest for {self.user} from {self.window_start:%Y-%m-%d %H:%M}"


class Escalation(models.Model):
    """Send a notification again on another channel if it is still unread at due_at."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        CANCELLED = "cancelled"

    notification = models.OneToOneField(Notification, on_delete=models.CASCADE, related_name="escalation")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    due_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["due_at"], condition=Q(status="pending"), name="escalation_due_idx")]
