"""Broadcasts: an audience (users, groups, topic subscribers, or everyone) fanned out in chunks.

The request stores a Broadcast and returns. `plan` fixes the chunk boundaries once, as ranges of
user ids (so a re-run sees the same chunks), and `fan_out_chunk` inserts one chunk's
Notification rows in one INSERT ... SELECT ... ON CONFLICT DO NOTHING (unique per broadcast and
recipient) and hands them to the dispatch task. Either task can run twice and insert nothing twice.
"""

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from notifications.models import Broadcast, BroadcastChunk, Notification, NotificationStatus
from notifications.planning.dispatch import dispatch_on_commit, plan_broadcast_on_commit
from notifications.planning.sending import is_held
from notifications.tenancy import managed_users

User = get_user_model()
logger = logging.getLogger(__name__)

PAYLOAD_FIELDS = ["category", "title", "message", "channels", "priority", "data", "template_key", "context", "locale"]


def audience_users(audience, sender=None):
    """Active users in the audience that the sender may reach (its own recipients, unless it is an
    operator), without duplicates (a subquery, not a DISTINCT over joins)."""
    users = managed_users(sender, User.objects.filter(is_active=True))
    if audience.get("all"):
        return users
    members = (
        Q(pk__in=audience.get("user_ids") or [])
        | Q(groups__name__in=audience.get("groups") or [])
        | Q(topics__key__in=audience.get("topics") or [])
    )
    return users.filter(pk__in=User.objects.filter(members).values("pk"))


def audience_size(audience, sender):
    """How many recipients a broadcast would reach now (what the sender's quota is charged)."""
    return audience_users(audience, sender).count()


def start_broadcast(*, to, sender=None, scheduled_at=None, expires_at=None, **payload):
    """Store the broadcast and plan it after commit. The payload is what every recipient gets."""
    payload = {name: payload[name] for name in PAYLOAD_FIELDS if name in payload}
    payload["category"] = payload["category"].key
    payload["scheduled_at"] = scheduled_at.isoformat() if scheduled_at else None
    payload["expires_at"] = expires_at.isoformat() if expires_at else None
    broadcast = Broadcast.objects.create(sender=sender, audience=to, payload=payload)
    plan_broadcast_on_commit(
        broadcast.id,
        withdraw=lambda: Broadcast.objects.filter(id=broadcast.id, status=Broadcast.Status.PENDING).delete(),
    )
    audience = ", ".join(f"{key} {value if isinstance(value, bool) else len(value)}" for key, value in to.items())
    logger.info("accepted broadcast %s to %s: category %s, from %s", broadcast.id, audience,
                payload["category"], sender.name if sender else "staff or internal")
    return broadcast


def chunk_bounds(user_ids, size):
    """(first, last) user id of each run of `size` ids, in id order."""
    return [(user_ids[i], user_ids[min(i + size, len(user_ids)) - 1]) for i in range(0, len(user_ids), size)]


@transaction.atomic
def plan(broadcast_id):
    """Fix the chunks (once) and return the numbers of those still to fan out."""
    broadcast = Broadcast.objects.select_for_update(of=("self",)).select_related("sender").get(id=broadcast_id)
    if broadcast.status == Broadcast.Status.PENDING:
        user_ids = list(
            audience_users(broadcast.audience, broadcast.sender).order_by("pk").values_list("pk", flat=True)
        )
        bounds = chunk_bounds(user_ids, settings.NOTIFY_BROADCAST_CHUNK_SIZE)
        BroadcastChunk.objects.bulk_create(
            BroadcastChunk(broadcast=broadcast, number=number, first_user_id=first, last_user_id=last)
            for number, (first, last) in enumerate(bounds)
        )
        broadcast.total_recipients = len(user_ids)
        broadcast.status = Broadcast.Status.FANNING_OUT if bounds else Broadcast.Status.DONE
        broadcast.finished_at = None if bounds else timezone.now()
        broadcast.save(update_fields=["total_recipients", "status", "finished_at"])
    return list(broadcast.chunks.filter(done_at__isnull=True).values_list("number", flat=True))


def notification_for(broadcast, recipient_id, payload, held):
    routes = [[item] if isinstance(item, str) else list(item) for item in payload.get("channels") or []]
    return Notification(
        recipient_id=recipient_id,
        sender_id=broadcast.sender_id,
        broadcast=broadcast,
        category_id=payload["category"],
        title=payload["title"],
        body=payload.get("message", ""),
        routes=routes,
        priority=payload["priority"],
        data={},  # stored once on the broadcast (Notification.payload_data)
        template_key=payload.get("template_key", ""),
        context={},  # likewise (Notification.payload_context)
        locale=payload.get("locale", ""),
        scheduled_at=parse_datetime(payload["scheduled_at"]) if payload.get("scheduled_at") else None,
        expires_at=parse_datetime(payload["expires_at"]) if payload.get("expires_at") else None,
        status=NotificationStatus.SCHEDULED if held else NotificationStatus.PENDING,
    )


def insert_for_each(notification, recipients):
    """Insert a copy of `notification` for every user in `recipients`, skipping those who already
    have one for its broadcast: a single INSERT ... SELECT ... ON CONFLICT DO NOTHING, so no row
    passes through Python. Every column's value comes from the unsaved `notification` (its
    defaults included); only the id and the recipient vary."""
    columns, values, params = [], [], []
    for field in Notification._meta.concrete_fields:
        columns.append(connection.ops.quote_name(field.column))
        if field.primary_key:
            values.append("gen_random_uuid()")
        elif field.attname == "recipient_id":
            values.append("audience.user_id")
        else:
            values.append(f"%s::{field.db_type(connection)}")
            params.append(field.get_db_prep_save(field.pre_save(notification, add=True), connection))
    audience_sql, audience_params = recipients.values("pk").query.sql_with_params()
    sql = (
        f"INSERT INTO {connection.ops.quote_name(Notification._meta.db_table)} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM ({audience_sql}) AS audience(user_id) ON CONFLICT DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *audience_params])
        return cursor.rowcount


@transaction.atomic
def fan_out_chunk(broadcast_id, number):
    """Insert one chunk's notifications and dispatch them; returns how many exist for the chunk."""
    chunk = BroadcastChunk.objects.select_for_update(of=("self",)).select_related("broadcast__sender").filter(
        broadcast_id=broadcast_id, number=number
    ).first()
    if chunk is None or chunk.done_at is not None:
        return 0
    broadcast = chunk.broadcast
    payload = broadcast.payload
    scheduled_at = parse_datetime(payload["scheduled_at"]) if payload.get("scheduled_at") else None
    held = is_held(scheduled_at)
    in_chunk = {"recipient_id__gte": chunk.first_user_id, "recipient_id__lte": chunk.last_user_id}
    recipients = audience_users(broadcast.audience, broadcast.sender).filter(
        pk__gte=chunk.first_user_id, pk__lte=chunk.last_user_id
    )
    insert_for_each(notification_for(broadcast, None, payload, held), recipients)
    mine = Notification.objects.filter(broadcast=broadcast, **in_chunk)
    chunk.created = mine.count()
    chunk.done_at = timezone.now()
    chunk.save(update_fields=["created", "done_at"])
    if not held:
        ids = mine.filter(status=NotificationStatus.PENDING).values_list("id", flat=True)
        dispatch_on_commit(ids, payload.get("priority"))
    finish_chunk(broadcast_id)
    return chunk.created


def finish_chunk(broadcast_id):
    # The broadcast row lock orders concurrent last chunks, so exactly one of them sees none left.
    Broadcast.objects.select_for_update().filter(id=broadcast_id).values_list("id").get()
    chunks = BroadcastChunk.objects.filter(broadcast_id=broadcast_id)
    progress = {"notifications_created": chunks.aggregate(created=Sum("created"))["created"] or 0}
    if not chunks.filter(done_at__isnull=True).exists():
        progress.update(status=Broadcast.Status.DONE, finished_at=timezone.now())
    Broadcast.objects.filter(id=broadcast_id).update(**progress)
