from django.core.management.base import BaseCommand

from notifications.clock.schedules import sync_schedules


class Command(BaseCommand):
    help = "Write the periodic tasks declared in notifications/schedules.py to celery-beat's tables."

    def handle(self, *args, **options):
        report = sync_schedules()
        for key, names in report.items():
            if names:
                self.stdout.write(f"{key}: {', '.join(names)}")
