"""Re-encrypt everything encrypted at rest under the first key of NOTIFY_ENCRYPTION_KEYS.

Runs while the service runs: rows are rewritten in small locked batches, and every process
keeps reading old and new tokens as long as both keys are configured. Also seals content of
categories marked sensitive after it was stored.
"""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import models, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL

from notifications.encryption import TOKEN_PREFIX, encrypted_fields, sealable_fields
from notifications.models import Category


class Command(BaseCommand):
    help = "Re-encrypt credentials and sensitive content under the first NOTIFY_ENCRYPTION_KEYS key."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, help="rows per transaction (default 500)")

    def handle(self, *args, batch_size, **options):
        if batch_size < 1:
            self.stderr.write("--batch-size must be at least 1")
            raise SystemExit(2)
        written = reencrypt(batch_size=batch_size)
        for label, count in sorted(written.items()):
            self.stdout.write(f"{label}: {count} rows re-encrypted")
        if not written:
            self.stdout.write("nothing encrypted at rest yet")


def batches(queryset, size):
    """Rows of `queryset` in primary-key order, `size` at a time, each batch locked in its own
    short transaction (readers are never blocked; a writer waits for one batch at most)."""
    last = None
    while True:
        with transaction.atomic():
            page = queryset.order_by("pk")
            if last is not None:
                page = page.filter(pk__gt=last)
            rows = list(page.select_for_update(of=("self",))[:size])
            if not rows:
                return
            yield rows
        last = rows[-1].pk


def reencrypt(batch_size=500, on_batch=None):
    """Write every encrypted value again under the first key, and seal the content of sensitive
    categories stored plain (before the category was marked). Returns {model label: rows written}."""
    written = {}
    for model in apps.get_models():
        encrypted = [field.name for field in encrypted_fields(model)]
        sealable = [field for field in sealable_fields(model)]
        if not encrypted and not sealable:
            continue
        queryset = model._base_manager.all()
        if sealable:
            queryset = queryset.filter(sealable_rows(model, sealable))
            if any(field.name == "notification" for field in model._meta.concrete_fields):
                queryset = queryset.select_related("notification")
        names = encrypted + [field.name for field in sealable]
        for rows in batches(queryset, batch_size):
            model.objects.bulk_update(rows, names) if sealable else model._base_manager.bulk_update(rows, names)
            written[model._meta.label] = written.get(model._meta.label, 0) + len(rows)
            if on_batch:
                on_batch(model, rows)
    return written


def sealable_rows(model, fields):
    """Rows that hold a token already, or whose content is sensitive now."""
    sealed = Q()
    for field in fields:
        column = model._meta.db_table + "." + field.column
        if isinstance(field, models.JSONField):
            sealed |= Q(pk__in=RawSQL(f"SELECT {model._meta.pk.column} FROM {model._meta.db_table} "
                                      f"WHERE jsonb_typeof({column}) = 'string'", []))
        else:
            sealed |= Q(**{f"{field.name}__startswith": TOKEN_PREFIX})
    sensitive = list(Category.objects.filter(sensitive=True).values_list("key", flat=True))
    if model._meta.label == "notifications.Notification":
        return sealed | Q(category__in=sensitive)
    if model._meta.label == "notifications.Delivery":
        return sealed | Q(notification__category__in=sensitive)
    if model._meta.label == "notifications.Broadcast":
        return sealed | Q(payload__category__in=sensitive)
    return sealed
