"""Re-drive dead letters in bulk: failed deliveries with nothing left in their chain, filtered."""

import getpass

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils.dateparse import parse_datetime

from channels_delivery.engine.fallback import NotRedrivable, redrive
from notifications.models import Channel, Delivery
from notifications.ops import audit


class Command(BaseCommand):
    help = "Queue dead letters again (filter by --channel, --provider, --category, --since, --error); --dry-run lists them."

    def add_arguments(self, parser):
        parser.add_argument("--reason", required=True, help="Recorded in the audit trail.")
        parser.add_argument("--channel", choices=Channel.values)
        parser.add_argument("--provider")
        parser.add_argument("--category")
        parser.add_argument("--since", help="Failed at or after (ISO 8601).")
        parser.add_argument("--error", help="Part of the last error or reason.")
        parser.add_argument("--limit", type=int, default=1000)
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, reason, channel, provider, category, since, error, limit, dry_run, **options):
        if not reason.strip():
            raise CommandError("--reason may not be blank.")
        if limit < 1:
            raise CommandError("--limit must be at least 1.")
        queryset = Delivery.objects.dead_letters().order_by("updated_at", "id")
        if channel:
            queryset = queryset.filter(channel=channel)
        if provider:
            queryset = queryset.filter(provider=provider)
        if category:
            queryset = queryset.filter(notification__category_id=category)
        if since:
            moment = parse_datetime(since)
            if moment is None:
                raise CommandError(f"--since {since!r} is not an ISO 8601 date-time (e.g. 2026-01-31T12:00:00Z).")
            queryset = queryset.filter(updated_at__gte=moment)
        if error:
            queryset = queryset.filter(Q(last_error__icontains=error) | Q(reason__icontains=error))
        rows = list(queryset.only("id", "channel", "status", "notification_id")[:limit])
        if dry_run:
            for row in rows:
                self.stdout.write(f"would re-drive {row.id} ({row.channel})")
            self.stdout.write(f"{len(rows)} dead letters match")
            return
        actor = f"cli {getpass.getuser()}"
        done = skipped = 0
        for row in rows:
            try:
                redrive(row.id, by=f"{actor}: {reason}")
            except NotRedrivable:
                skipped += 1
                continue
            audit.record(audit.Action.DELIVERY_REDRIVE, row, via="cli", actor=actor, reason=reason,
                         before={"status": row.status}, after={"status": "queued"})
            done += 1
        self.stdout.write(f"re-driven {done}, skipped {skipped} (no longer failed)")
