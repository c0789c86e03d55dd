"""The domain's tables: what was asked (Notification), what was planned and tried (Delivery,
DeliveryAttempt), and what decides it (templates, preferences, contact points)."""

import base64
import functools
import hashlib
import hmac
import secrets
import time
import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ImproperlyConfigured
from django.core.validators import URLValidator
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, connections, models, transaction
from django.db.models import Q
from django.db.models.query import get_related_populators
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from channels_delivery import registry
from notifications.encryption import (
    EncryptedJSONField, EncryptedTextField, SealableCharField, SealableJSONField, SealableTextField, SealingQuerySet,
)



# The channels come from the one registry (channels_delivery/registry.py); Channel.EMAIL etc.
Channel = models.TextChoices("Channel", [(name.upper(), name) for name in registry.NAMES])


class AnyOf(models.Lookup):
    """`field__any=[...]`: `field = ANY(%s)` with the list as one array parameter. What `__in` does,
    for the batches (hundreds of ids): `__in` prepares and binds every id as its own parameter
    (8% of dispatch's CPU in Django's lookup code, py-spy; a 500-id query took 2.6 ms here against
    3.5 ms)."""

    lookup_name = "any"
    prepare_rhs = False

    def get_db_prep_lookup(self, value, connection):
        field = self.lhs.output_field
        return "%s", [[field.get_db_prep_value(item, connection, prepared=False) for item in value]]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} = ANY({rhs})", [*lhs_params, *rhs_params]


models.Field.register_lookup(AnyOf)
models.ForeignObject.register_lookup(AnyOf)  # related fields look their lookups up on their own class


class CompiledQuery:
    """A query the ORM builds and compiles to SQL once per process, then runs as raw SQL with new
    values in place of its placeholders: for the hot paths that run one query shape many times a
    second. Built and compiled per call, the in-app push's query (a subquery, an annotation) cost
    3.8x what it costs compiled once (2.51 against 0.63 ms of CPU for one notification,
    `python -m bench.compiled_queries`).

    `build(**placeholders)` returns the QuerySet. It is called once, with `placeholders` (name -> a
    value no caller sends, of the type the real ones have: `[PLACEHOLDER_UUID]` for an `__any` list
    of UUIDs), each of which must come out as whole parameters of the SQL (an `__any` list or a
    compared value does; the first call raises ImproperlyConfigured naming one that does not).
    `instances(**values)` runs it for model instances (Model.objects.raw: the ORM's converters,
    annotations as attributes); `rows(**values)` for tuples, as values_list() queries give. Values
    go in as the database driver takes them (UUIDs for a UUID column, as the ORM would send).
    `objects(**values)` gives what iterating the QuerySet gives, `select_related()` relations and
    `select_for_update()` included, which raw() cannot: the rows go through the compiler kept from
    the first call, as Django's ModelIterable takes them (prefetches are the caller's).
    With `updates` (field -> placeholder name) it is the UPDATE of the QuerySet's rows that sets
    those fields, and `update(**values)` runs it, returning the count of rows changed."""

    def __init__(self, build, updates=None, **placeholders):
        self.build, self.updates, self.placeholders, self.compiled = build, updates, placeholders, None

    def compile(self):
        queryset = self.build(**self.placeholders)
        query = queryset.query
        if self.updates:
            query = query.chain(UpdateQuery)
            query.add_update_values({field: self.placeholders[name] for field, name in self.updates.items()})
        compiler = query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        positions = {}
        for name, placeholder in self.placeholders.items():
            positions[name] = [i for i, param in enumerate(params) if param == placeholder]
            if not positions[name]:
                raise ImproperlyConfigured(f"the placeholder {name!r} is not a parameter of the compiled query: {sql}")
        return queryset.model, sql, list(params), positions, compiler

    def sql_and_params(self, values):
        if self.compiled is None:
            self.compiled = self.compile()
        model, sql, params, positions, _compiler = self.compiled
        params = list(params)
        for name, value in values.items():
            for i in positions[name]:
                params[i] = value
        return model, sql, params

    def instances(self, **values):
        model, sql, params = self.sql_and_params(values)
        return model.objects.raw(sql, params)

    def rows(self, **values):
        _model, sql, params = self.sql_and_params(values)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def update(self, **values):
        _model, sql, params = self.sql_and_params(values)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount

    def objects(self, **values):
        _model, sql, params = self.sql_and_params(values)
        model, init_list, (start, end), converters, populators, annotations = self.layout
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        found = []
        for row in rows:
            if converters:  # the ORM's, with this thread's connection (a sealed field opened...)
                row = list(row)
                for position, (convert_all, expression) in converters:
                    value = row[position]
                    for convert in convert_all:
                        value = convert(value, expression, connection)
                    row[position] = value
            obj = model.from_db(connection.alias, init_list, row[start:end])
            for populator in populators:
                populator.populate(row, obj)
            for name, position in annotations:
                setattr(obj, name, row[position])
            found.append(obj)
        return found

    @functools.cached_property
    def layout(self):
        """ModelIterable's set-up, once per process: which columns make the model's fields, the
        converters of the columns that have one, and the populators of the select_related()
        relations (they read a row by position)."""
        compiler = self.compiled[-1]
        if compiler.has_extra_select:
            raise ImproperlyConfigured("objects() takes no query that selects columns to order by only")
        select, klass_info = compiler.select, compiler.klass_info
        fields = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        init_list = [column[0].target.attname for column in select[fields[0]:fields[1]]]
        converters = list(compiler.get_converters([column[0] for column in select[:compiler.col_count]]).items())
        populators = get_related_populators(klass_info, select, compiler.using)
        return (klass_info["model"], init_list, fields, converters, populators,
                list((compiler.annotation_col_map or {}).items()))


PLACEHOLDER_UUID = uuid.UUID("00000000-0000-4000-8000-00000000c0de")
PLACEHOLDER_ID = -7_310_211  # no row's integer primary key


def uuid_values(ids):
    """Ids (strings or UUIDs) as a compiled query's UUID parameters, as the ORM would send them."""
    return [uuid.UUID(str(i)) for i in ids]


class Priority(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class NotificationStatus(models.TextChoices):
    """Before dispatch, where the notification waits; after it, what its deliveries add up to
    (derived in one place, settle_notifications(), whenever a delivery's status changes)."""

    SCHEDULED = "scheduled"  # waits in Postgres for scheduled_at (or the end of quiet hours)
    PENDING = "pending"  # stored, dispatch enqueued
    BATCHED = "batched"  # held for its category's digest (see Digest)
    DISPATCHED = "dispatched"  # deliveries planned, none has reached the user yet
    SENT = "sent"  # a provider accepted it on at least one channel; none confirmed yet
    DELIVERED = "delivered"  # confirmed on a channel: a provider's callback, or the in-app inbox
    PARTIALLY_FAILED = "partially_failed"  # reached the user on a route, another route failed for good
    FAILED = "failed"  # no route reached the user (every planned channel failed or was skipped)
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# Notifications whose status their deliveries decide; the others are settled by their own paths.
SETTLED_BY_DELIVERIES = [
    NotificationStatus.PENDING,
    NotificationStatus.DISPATCHED,
    NotificationStatus.SENT,
    NotificationStatus.DELIVERED,
    NotificationStatus.PARTIALLY_FAILED,
    NotificationStatus.FAILED,
]


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


class DeliveryGroups:
    """The named groups of delivery states; code asks these, never lists states itself."""

    # Taken by a worker, or about to be: a chain that is alive.
    LIVE = frozenset({DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.RETRYING})
    # Not gone out yet, so a cancel or an expiry may still stop it.
    OPEN = frozenset({DeliveryStatus.PENDING, DeliveryStatus.QUEUED, DeliveryStatus.RETRYING})
    # Reached the user as far as we can tell.
    REACHED = frozenset({DeliveryStatus.SENT, DeliveryStatus.DELIVERED})
    # Ended without reaching the user: the next channel of the chain takes over.
    FALLBACK_TRIGGERS = frozenset({DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED, DeliveryStatus.BOUNCED})
    # Left the building (or is leaving): no cancel any more.
    GONE_OUT = frozenset({
        DeliveryStatus.SENDING, DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.BOUNCED,
        DeliveryStatus.UNDELIVERED,
    })
    # An operator may plan these again.
    RESENDABLE = frozenset({DeliveryStatus.FAILED, DeliveryStatus.SKIPPED})


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
    sensitive = models.BooleanField(
        default=False,
        help_text="Title, body and data of its notifications (and their rendered messages) are encrypted at "
        "rest. Rows stored before the switch are sealed by `manage.py rotate_encryption_keys`.",
    )

    class Meta:
        verbose_name_plural = "categories"

    def __str__(self):
        return self.key


class ProcessCache:
    """Rows that every request reads and that rarely change (API clients, categories, templates),
    kept per process for NOTIFY_REFERENCE_TTL seconds so that the send path does not query them
    each time. A change saved in this process clears the cache at once (signals below, and
    forget() after a queryset update()); other processes see it within the TTL."""

    MAX_ENTRIES = 10_000  # keys come from requests: an unbounded dict would be a memory leak

    def __init__(self):
        self._entries = {}

    def get(self, key, load):
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (now + settings.NOTIFY_REFERENCE_TTL, value)
        return value

    def forget(self, **_):
        self._entries.clear()
        # Read again before the change commits, the old rows would be cached anew: clear after it too.
        if transaction.get_connection().in_atomic_block:
            transaction.on_commit(self._entries.clear)


categories_cache = ProcessCache()


def categories():
    """Every category by key (a small table), from the process cache."""
    return categories_cache.get("all", lambda: {category.key: category for category in Category.objects.all()})


def sensitive_categories():
    return categories_cache.get(
        "sensitive", lambda: frozenset(key for key, category in categories().items() if category.sensitive))


models.signals.post_save.connect(categories_cache.forget, sender=Category)
models.signals.post_delete.connect(categories_cache.forget, sender=Category)


class ApiClient(models.Model):
    """An application that sends notifications. Its key is shown once and stored hashed.

    `send` and `read` reach only the client's own recipients (RecipientGrant); `broadcast` sends
    to everyone (`all`) or to groups, `critical` sends categories that ignore opt-outs and quiet
    hours; `admin` holds every scope and reaches every recipient.
    """

    SCOPES = ["send", "read", "broadcast", "critical", "admin"]
    KEY_PREFIX = "nk_"

    name = models.CharField(max_length=200)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_clients")
    key_prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = ArrayField(models.CharField(max_length=16), default=list)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # End-user tokens the app signs (notifications/api/end_user_tokens.py): HS256 with this
    # secret (a credential, so encrypted at rest; NULL until the first one is made), or
    # RS256/ES256 with the private half of this PEM public key. Tokens name the client by
    # key_prefix in their `kid` header.
    token_secret = EncryptedTextField(null=True, blank=True)
    token_public_key = models.TextField(blank=True)

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
        return client, f"{cls.KEY_PREFIX}{prefix}.{secret}"

    @classmethod
    def active_by_prefix(cls, prefix, cached=True):
        """The active client of this key prefix, or None; from the process cache unless not
        `cached`. A key stops working with its owner: a deactivated account's apps are shut out too."""
        def load():
            return cls.objects.select_related("owner").filter(
                key_prefix=prefix, active=True, owner__is_active=True).first()

        return api_clients_cache.get(prefix, load) if cached else load()

    @classmethod
    def for_key(cls, key, cached=True):
        """The active client whose key this is, or None (compared in constant time)."""
        if not key.startswith(cls.KEY_PREFIX):
            return None
        prefix, _, secret = key[len(cls.KEY_PREFIX):].partition(".")
        client = cls.active_by_prefix(prefix, cached)
        if client is None or not hmac.compare_digest(client.key_hash, cls.hash_secret(secret)):
            return None
        return client

    def revoke(self):
        """The one way a key is revoked (admin and API): its row, and this process's cache, at once."""
        ApiClient.objects.filter(pk=self.pk).update(active=False)
        self.active = False
        api_clients_cache.forget()

    def has_scope(self, scope):
        return scope in self.scopes or "admin" in self.scopes


api_clients_cache = ProcessCache()
models.signals.post_save.connect(api_clients_cache.forget, sender=ApiClient)
models.signals.post_delete.connect(api_clients_cache.forget, sender=ApiClient)


def forget_clients_of_changed_account(update_fields=None, **_):
    """A key stops with its owner's account: a user saved with is_active possibly changed clears
    the clients too (not a login's last_login update, which would empty the cache each time)."""
    if update_fields is None or "is_active" in update_fields:
        api_clients_cache.forget()


models.signals.post_save.connect(forget_clients_of_changed_account, sender=settings.AUTH_USER_MODEL)


class RecipientGrant(models.Model):
    """A recipient an API client created or was granted. The tenant is the client's owner: every
    key of one owner (a key rotated, a second service of the same app) shares its recipients."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="recipient_grants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recipient_grants")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "user"], name="recipient_grant_unique")]


class RecipientProfile(models.Model):
    """Per-user contact details beyond user.email, and the user's locale and time zone."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    phone = models.CharField(max_length=20, blank=True, help_text="E.164")
    locale = models.CharField(max_length=16, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    # Contact points the user set themselves (email, phone): apps may not overwrite them.
    user_set = ArrayField(models.CharField(max_length=16), default=list, blank=True)

    def __str__(self):
        return f"profile of {self.user}"


# The user relations that hold contact points; a large fan-out prefetches them.
def active_contact_points(related_manager):
    """A user's active contact points of one kind, oldest first. Filtering in Python lets a
    caller's prefetch_related() answer without another query."""
    return sorted((row for row in related_manager.all() if row.active), key=lambda row: row.id)


class ContactPointQuerySet(models.QuerySet):
    def deactivate(self, reason):
        """The provider said these are gone for good: stop planning deliveries to them."""
        return self.filter(active=True).update(active=False, **clip_fields(self.model, {"deactivated_reason": reason}))


class ContactPoint(models.Model):
    """What every kind of contact point has: an owner, an on/off switch and why it went off."""

    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deactivated_reason = models.CharField(max_length=200, blank=True)

    objects = ContactPointQuerySet.as_manager()

    class Meta:
        abstract = True


class PushSubscription(ContactPoint):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_subscriptions")
    endpoint = models.URLField(max_length=1000)
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=100)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "endpoint"], name="push_subscription_unique")]


class SlackWebhook(ContactPoint):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="slack_webhooks")
    # The URL is the credential (whoever knows it can post to the channel): encrypted at rest.
    url = EncryptedTextField(validators=[URLValidator()])
    channel_name = models.CharField(max_length=100, blank=True)


def new_webhook_secret():
    # Standard Webhooks secrets are standard base64 (not base64url) after the prefix.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookEndpoint(ContactPoint):
    class Method(models.TextChoices):
        POST = "POST"
        PUT = "PUT"

    class ContentType(models.TextChoices):
        JSON = "json", "application/json"
        FORM = "form", "application/x-www-form-urlencoded"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    secret = EncryptedTextField(default=new_webhook_secret)
    description = models.CharField(max_length=200, blank=True)
    method = models.CharField(max_length=4, choices=Method.choices, default=Method.POST)
    content_type = models.CharField(max_length=4, choices=ContentType.choices, default=ContentType.JSON)
    # Credentials such as `Authorization: Bearer ...`: encrypted at rest, written, never shown again.
    extra_headers = EncryptedJSONField(blank=True, default=dict)


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
    author = models.CharField(max_length=200, blank=True, help_text="Who published this version.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "channel", "locale", "version"], name="template_version_unique"),
            models.UniqueConstraint(
                fields=["key", "channel", "locale"], condition=Q(active=True), name="template_one_active"
            ),
        ]

    def __str__(self):
        return f"{self.key}/{self.channel}/{self.locale} v{self.version}"


templates_cache = ProcessCache()
models.signals.post_save.connect(templates_cache.forget, sender=Template)
models.signals.post_delete.connect(templates_cache.forget, sender=Template)


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
    payload = SealableJSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    total_recipients = models.PositiveIntegerField(default=0)
    notifications_created = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = SealingQuerySet.as_manager()

    def sealed_content(self):
        return (self.payload or {}).get("category") in sensitive_categories()


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


class NotificationQuerySet(SealingQuerySet):
    def settle(self):
        """Derive these notifications' status from their deliveries; see settle_notifications()."""
        return settle_notifications(self.values_list("id", flat=True))

    def for_recipient(self, user):
        return self.filter(recipient=user)

    def unread(self):
        return self.filter(read_at__isnull=True)

    def due(self, now=None):
        return self.filter(status=NotificationStatus.SCHEDULED, scheduled_at__lte=now or timezone.now())

    def mark_all_read(self, now=None):
        """Mark these read (a read one keeps its first read time) and cancel their pending
        escalations at once: a notification read in time never goes out again. Returns the count."""
        now = now or timezone.now()
        ids = list(self.unread().values_list("id", flat=True))
        with transaction.atomic():
            updated = Notification.objects.filter(id__in=ids).update(read_at=now)
            Escalation.objects.filter(notification_id__in=ids, status=Escalation.Status.PENDING).update(
                status=Escalation.Status.CANCELLED, reason="read in time", done_at=now
            )
        return updated


class Notification(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Every index here is written by every insert and by every status change (status sits in
    # scheduled_due_idx's condition, so no update is HOT): each foreign key below is served by an
    # index that leads with it (see Meta) instead of one of its own.
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications", db_index=False
    )
    sender = models.ForeignKey(ApiClient, on_delete=models.SET_NULL, null=True, blank=True, db_index=False)
    broadcast = models.ForeignKey(Broadcast, on_delete=models.SET_NULL, null=True, blank=True, db_index=False)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, db_column="category", db_index=False)
    # Title, body, data and context are encrypted at rest when the category is sensitive.
    title = SealableCharField(max_length=500)
    body = SealableTextField(blank=True)
    data = SealableJSONField(default=dict, blank=True)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.MEDIUM)
    status = models.CharField(max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    # The sender's fallback chains, e.g. [["inapp"], ["push", "sms", "email"]]; empty: configured routes.
    routes = models.JSONField(default=list, blank=True)
    template_key = models.SlugField(max_length=100, blank=True, db_index=False)
    context = SealableJSONField(default=dict, blank=True)
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
        "Digest", on_delete=models.SET_NULL, null=True, blank=True, related_name="items", db_index=False,
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
            # The admin lists newest first over the whole table.
            models.Index(fields=["-created_at"], name="notification_created_idx"),
            # A category is rarely deleted (PROTECT looks here) or filtered on: a plain index, without
            # the pattern-ops twin Django adds to a text foreign key.
            models.Index(fields=["category"], name="notification_category_idx"),
            # Few notifications are ever batched into a digest: the others are not in this index.
            models.Index(fields=["digest"], condition=Q(digest__isnull=False), name="notification_digest_idx"),
            # broadcast: notification_once_per_broadcast leads with it (a broadcast's rows are never null).
        ]

    def __str__(self):
        return f"{self.category_id}: {self.title}"

    # Where dispatch puts each notification's attachments, read for its whole batch at once
    # (tasks.read_attachments_and_broadcasts): a plain list per row, not the related manager's
    # queryset per row (a prefetch took 12% of dispatch's CPU that way, 5% this way).
    ATTACHMENTS = "attachment_list"

    def attachment_rows(self):
        """This notification's attachments: the batch's prefetched list if there is one, else a query."""
        if self.ATTACHMENTS in self.__dict__:
            return self.__dict__[self.ATTACHMENTS]
        return list(self.attachments.all())

    def sealed_content(self):
        return self.category_id in sensitive_categories()

    @property
    def channels(self):
        """Every channel the sender's routes name, in order."""
        return list(dict.fromkeys(channel for route in self.routes or [] for channel in route))

    # A broadcast's data and context are stored once, on the Broadcast, not copied into every
    # recipient's row: read them through these (select_related or prefetch "broadcast" in bulk).
    @property
    def payload_data(self):
        return (self.broadcast.payload.get("data") or {}) if self.broadcast_id else self.data

    @property
    def payload_context(self):
        return (self.broadcast.payload.get("context") or {}) if self.broadcast_id else self.context


def clip_fields(model, fields):
    """Every text value cut to its field's max_length (TextFields declare one too)."""
    clipped_fields = {}
    for name, value in fields.items():
        field = model._meta.get_field(name)
        if isinstance(value, str) and getattr(field, "max_length", None) and len(value) > field.max_length:
            value = value[: field.max_length]
        clipped_fields[name] = value
    return clipped_fields


class DeliveryQuerySet(SealingQuerySet):
    def move(self, to, *, source, **fields):
        """The one way a delivery changes state: rows of this queryset that are in one of the
        `source` states move to `to`, in one conditional UPDATE (so two workers never both move
        a row), with updated_at and the given fields, texts clipped to fit. Returns the count."""
        source = [source] if isinstance(source, str) else list(source)
        return self.filter(status__in=source).update(
            status=to, updated_at=timezone.now(), **clip_fields(Delivery, fields)
        )

    def note(self, **fields):
        """Change fields other than the status (texts clipped), e.g. provider details."""
        return self.update(updated_at=timezone.now(), **clip_fields(Delivery, fields))

    def dead_letters(self):
        """Failed deliveries that ended their chain: nothing after them in their route is left to try."""
        later = Delivery.objects.filter(
            notification=models.OuterRef("notification"), route=models.OuterRef("route"),
            position__gt=models.OuterRef("position"),
        ).exclude(status=DeliveryStatus.SKIPPED)
        return self.filter(status=DeliveryStatus.FAILED).exclude(models.Exists(later))



class AttachmentQuerySet(models.QuerySet):
    def contents(self):
        """[(filename, content_type, bytes)] of these attachments that hold a file, in id order."""
        found = []
        for row in self.exclude(file="").order_by("id"):
            with default_storage.open(row.file.name, "rb") as handle:
                found.append((row.filename, row.content_type, handle.read()))
        return found

    @staticmethod
    def store_content(content):
        """Store bytes once, under their SHA-256; (storage name, digest)."""
        digest = hashlib.sha256(content).hexdigest()
        name = f"attachments/{digest[:2]}/{digest}"
        if not default_storage.exists(name):
            name = default_storage.save(name, ContentFile(content))
        return name, digest


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

    objects = AttachmentQuerySet.as_manager()

    @property
    def pending(self):
        return bool(self.source_url) and not self.file and not self.fetch_error

    class Meta:
        ordering = ["id"]


class Delivery(models.Model):
    """One planned channel of one notification; position is its place in the fallback order."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Served by delivery_one_per_channel, which leads with it.
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    provider = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    # Routes run side by side; within a route, position is the place in the fallback chain.
    route = models.PositiveSmallIntegerField(default=0)
    position = models.PositiveSmallIntegerField(default=0)
    attempt_count = models.PositiveIntegerField(default=0)
    # Which run of a delivery task holds the `sending` claim: a message that task re-queues after
    # losing its database connection carries it, so it resumes its own claim at once.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    provider_message_id = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=500, blank=True, help_text="Why it was skipped, failed or fell back.")
    last_error = models.TextField(blank=True, max_length=2000)
    template_version = models.PositiveIntegerField(null=True, blank=True)
    # The rendered message and its address, fixed at planning: all a channel needs to send.
    message = SealableJSONField(default=dict, blank=True)
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
            models.Index(fields=["-created_at"], name="delivery_created_idx"),
        ]

    def __str__(self):
        return f"{self.channel} for {self.notification_id} ({self.status})"

    def sealed_content(self):
        # The rendered message carries the notification's content.
        return self.notification.sealed_content()


class DeliveryAttempt(models.Model):
    """Append-only: one row per try of a delivery."""

    # Served by attempt_delivery_idx, which leads with it.
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts", db_index=False)
    number = models.PositiveIntegerField()
    provider = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices)
    error = models.TextField(blank=True, max_length=2000)
    provider_status_code = models.CharField(max_length=32, blank=True)
    note = models.CharField(max_length=300, blank=True)
    # Set on a try that failed transiently: the retry policy it fell under and the wait computed
    # before the next try (Retry-After included).
    retry_policy = models.CharField(max_length=200, blank=True)
    retry_wait_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [
            models.Index(fields=["delivery", "started_at"], name="attempt_delivery_idx"),
            models.Index(fields=["-started_at"], name="attempt_started_idx"),
        ]


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
    secret = EncryptedTextField(default=new_webhook_secret)
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


# --- Digests and escalation (the clock) ---
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


def route_outcome(rows):
    """One route (a fallback chain) as `reached`, `live` or `failed`, from its rows' statuses in
    position order. A pending row whose predecessor failed is live: its errback is on its way."""
    statuses = [status for status in rows if status != DeliveryStatus.SKIPPED]
    if any(status in DeliveryGroups.REACHED for status in statuses):
        return "reached"
    for before, status in zip([None, *statuses], statuses):
        if status in DeliveryGroups.LIVE:
            return "live"
        if status == DeliveryStatus.PENDING and before in DeliveryGroups.FALLBACK_TRIGGERS:
            return "live"
    return "failed"


def notification_status(deliveries):
    """What a notification's deliveries add up to. deliveries: (route, position, status) rows."""
    routes = {}
    for route, position, status in sorted(deliveries):
        routes.setdefault(route, []).append(status)
    outcomes = {route_outcome(rows) for rows in routes.values()}
    statuses = {status for _route, _position, status in deliveries}
    if "reached" in outcomes:
        if "failed" in outcomes:
            return NotificationStatus.PARTIALLY_FAILED
        return NotificationStatus.DELIVERED if DeliveryStatus.DELIVERED in statuses else NotificationStatus.SENT
    if "live" in outcomes:
        return NotificationStatus.DISPATCHED
    return NotificationStatus.FAILED


def copy_create(objs):
    """Insert new instances of one model with one COPY; returns them.

    What bulk_create does, cheaper: each field prepared the same way (pre_save for auto_now and
    sealing, get_db_prep_save), but the values travel as COPY rows formatted by psycopg's C code,
    where bulk_create's INSERT quotes every value client-side in Python (10-20% less CPU from 2 to
    500 deliveries, measured; the insert was a fifth of dispatch's CPU). Like bulk_create: no signals.
    Primary keys must be set, unless the database numbers the rows (an AutoField left empty in
    all of them): then they stay empty on the instances, which are only to be written, not read.
    """
    if not objs:
        return objs
    meta = type(objs[0])._meta
    fields = meta.concrete_fields
    if all(obj.pk is None for obj in objs) and isinstance(meta.pk, models.AutoField):
        fields = [field for field in fields if field is not meta.pk]
    elif any(obj.pk is None for obj in objs):
        raise ValueError(f"copy_create: every {meta.label} needs its primary key set")
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    # Prepared before the COPY starts: preparing may query (sealing looks up categories), which the
    # connection cannot do while it copies. With this thread's connection itself, not the
    # `connection` proxy, which looks it up again (asgiref's Local) at each of the fields'
    # several attribute reads: a third of the preparing's CPU.
    current = connections[connection.alias]
    rows = [[field.get_db_prep_save(field.pre_save(obj, True), current) for field in fields] for obj in objs]
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    for obj in objs:
        obj._state.adding, obj._state.db = False, connection.alias
    return objs


def derived_statuses(notification_ids, deliveries):
    """{id: the status its deliveries (Delivery objects, all of them) add up to}."""
    rows = {}
    for delivery in deliveries:
        rows.setdefault(delivery.notification_id, []).append((delivery.route, delivery.position, delivery.status))
    return {notification_id: notification_status(rows.get(notification_id, [])) for notification_id in notification_ids}


# What settle_notifications reads, run at the end of every chunk: compiled once per process
# (0.42 against 0.94 ms of CPU for one notification's deliveries, bench.compiled_queries).
settled_deliveries_query = CompiledQuery(
    lambda ids: Delivery.objects.filter(notification_id__any=ids).only("notification_id", "route", "position", "status"),
    ids=[PLACEHOLDER_UUID])


def settle_notifications(notification_ids, deliveries=None):
    """The one place a dispatched notification's status is set: derived from its deliveries, one
    query to read them (none when the caller holds them all: `deliveries`, Delivery objects) and
    one UPDATE per resulting status. Notifications that are scheduled, batched, cancelled or
    expired keep their status. Returns {id: status}."""
    ids = list(notification_ids)
    if not ids:
        return {}
    if deliveries is None:
        deliveries = settled_deliveries_query.instances(ids=uuid_values(ids))
    derived = derived_statuses(ids, deliveries)
    by_status = {}
    for notification_id, status in derived.items():
        by_status.setdefault(status, []).append(notification_id)
    for status, members in by_status.items():
        settle_update.update(ids=uuid_values(members), status=status)
    return derived


# settle_notifications' UPDATE, run at the end of every chunk: compiled once per process too.
settle_update = CompiledQuery(
    lambda ids, status: Notification.objects.filter(id__any=ids, status__in=SETTLED_BY_DELIVERIES).exclude(
        status=status),
    updates={"status": "status"}, ids=[PLACEHOLDER_UUID], status="placeholder status")


# --- ops ---
class AuditEvent(models.Model):
    """Who did what, when, and to what: operators' actions and preference changes (append-only).
    Written through notifications.ops.audit.record(); purged after NOTIFY_RETENTION_AUDIT_DAYS."""

    class Action(models.TextChoices):
        NOTIFICATION_CANCEL = "notification.cancel"
        NOTIFICATION_RESEND = "notification.resend"
        DELIVERY_REDRIVE = "delivery.redrive"
        TEMPLATE_CREATE = "template.create"
        TEMPLATE_UPDATE = "template.update"
        TEMPLATE_DELETE = "template.delete"
        API_CLIENT_CREATE = "api_client.create"
        API_CLIENT_REVOKE = "api_client.revoke"
        PREFERENCES_CHANGE = "preferences.change"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_client = models.ForeignKey(ApiClient, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Kept as text so the record still says who it was after the user or client is deleted.
    actor = models.CharField(max_length=200)
    via = models.CharField(max_length=16, help_text="admin, api or cli")
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target_type} {self.target_id}"
