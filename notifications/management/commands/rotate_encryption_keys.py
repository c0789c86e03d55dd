"""Re-encrypt everything encrypted at rest under the first key of NOTIFY_ENCRYPTION_KEYS.

Runs while the service runs: rows are rewritten in small locked batches, and every process
keeps reading old and new tokens as long as both keys are configured. Also seals content of
categories marked sensitive after it was stored.
"""

from django.core.management.base import BaseCommand

from notifications.encryption import reencrypt


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
