"""Send a test notification to one user on one channel, and optionally wait for its outcome."""

import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from notifications.models import Category, Channel, Delivery, Priority
from notifications.ops import correlation
from notifications.planning import sending


class Command(BaseCommand):
    help = "Send a test notification to USERNAME on --channel; --wait polls until it is sent or fails."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--channel", required=True, choices=Channel.values)
        parser.add_argument("--category", default="general")
        parser.add_argument("--title", default="Test notification")
        parser.add_argument("--message", default="Sent by manage.py send_test_notification.")
        parser.add_argument("--priority", default=Priority.MEDIUM, choices=Priority.values)
        parser.add_argument("--wait", type=float, default=0, help="Seconds to wait for the outcome (0: do not wait).")

    def handle(self, *args, username, channel, category, title, message, priority, wait, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}.")
        try:
            category = Category.objects.get(key=category)
        except Category.DoesNotExist:
            raise CommandError(f"No category {category!r}; known: {', '.join(Category.objects.values_list('key', flat=True))}.")
        request_id = correlation.new_id()
        token = correlation.request_id.set(request_id)
        try:
            [notification] = sending.store_and_dispatch(
                recipients=[user], category=category, title=title, message=message, channels=[channel],
                priority=priority, data={"test": True},
            )
        finally:
            correlation.request_id.reset(token)
        self.stdout.write(f"notification {notification.id} (request id {request_id}) to {username} on {channel}")
        if wait <= 0:
            return
        deadline = time.monotonic() + wait
        final = {"sent", "delivered", "failed", "skipped", "cancelled", "bounced", "undelivered"}
        while time.monotonic() < deadline:
            delivery = Delivery.objects.filter(notification=notification, channel=channel).first()
            if delivery is not None and delivery.status in final:
                detail = delivery.reason or delivery.last_error or delivery.provider_message_id
                self.stdout.write(f"delivery {delivery.id}: {delivery.status} via {delivery.provider or '-'} {detail}")
                if delivery.status in {"failed", "skipped", "cancelled", "bounced", "undelivered"}:
                    raise CommandError(f"the test notification was not sent: {delivery.status}")
                return
            time.sleep(0.2)
        raise CommandError(f"no outcome within {wait:g}s (are the dispatch and {channel} workers running?)")
