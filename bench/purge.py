"""Does the retention purge keep up with the delivery rate?

    python -m bench.purge [--notifications 100000] [--attempts 2]

Stores N read notifications past retention, each with one delivery and --attempts attempts
(copied in Postgres from one row made through the ORM, so the rows look like the real ones),
then runs the purge exactly as the hourly `maintenance.purge_past_retention` task does
(notifications/clock/cleanup.py) and prints rows removed per second. Compare the deliveries
removed per second with the delivery rate the service must sustain (1,000/s in issue 9): a purge
slower than that falls behind for good.
"""

import argparse
import time
from datetime import timedelta

from bench import harness as h
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from notifications.clock import cleanup  # noqa: E402
from notifications.models import (  # noqa: E402
    AttemptOutcome, Category, Delivery, DeliveryAttempt, DeliveryStatus, Notification, NotificationStatus,
)


def copies_sql(model, template_id, replace):
    """INSERT ... SELECT copying one row of `model` once per row of the temp table `ids`, with
    `replace`: {column: SQL expression over ids} for the columns that differ."""
    columns = [f.column for f in model._meta.concrete_fields if not (f.primary_key and f.column not in replace)]
    select = [replace.get(column, f"t.{column}") for column in columns]
    return (f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
            f"SELECT {', '.join(select)} FROM ids, {model._meta.db_table} t WHERE t.id = %s"), [template_id]


def store(count, attempts, user):
    old = timezone.now() - timedelta(days=settings.NOTIFY_RETENTION_READ_DAYS + 1)
    notification = Notification.objects.create(
        recipient=user, category=Category.objects.get(key="general"), title="Order shipped", body="On its way.",
        status=NotificationStatus.DELIVERED, read_at=old, routes=[["inapp"]],
    )
    delivery = Delivery.objects.create(notification=notification, channel="inapp", status=DeliveryStatus.DELIVERED,
                                       attempt_count=1, message={"user_id": user.pk, "title": "Order shipped"})
    attempt = DeliveryAttempt.objects.create(delivery=delivery, number=1, provider="inbox",
                                             outcome=AttemptOutcome.SENT, started_at=old)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE ids AS SELECT gen_random_uuid() AS n, gen_random_uuid() AS d "
                       "FROM generate_series(2, %s)", [count])
        cursor.execute(*copies_sql(Notification, notification.id, {"id": "ids.n"}))
        cursor.execute(*copies_sql(Delivery, delivery.id, {"id": "ids.d", "notification_id": "ids.n"}))
        for _ in range(attempts):
            cursor.execute(*copies_sql(DeliveryAttempt, attempt.id, {"delivery_id": "ids.d"}))
        cursor.execute("DROP TABLE ids")
    h.vacuum_analyze()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notifications", type=int, default=100000)
    parser.add_argument("--attempts", type=int, default=2)
    args = parser.parse_args()
    h.header("purge: rows removed per second by the retention purge", notifications=args.notifications,
             attempts_per_delivery=args.attempts, batch=settings.NOTIFY_CLEANUP_BATCH)
    h.ensure_database()
    h.reset_database()
    [username] = h.create_users(1)
    from django.contrib.auth import get_user_model

    started = time.time()
    store(args.notifications, args.attempts, get_user_model().objects.get(username=username))
    print(f"stored {args.notifications} notifications, as many deliveries and {args.notifications * args.attempts} "
          f"attempts in {time.time() - started:.1f}s; load {h.loadavg()}")

    started = time.time()
    report = cleanup.purge()
    elapsed = time.time() - started
    removed = {label: n for what in report.values() for label, n in what.items()}
    deliveries = removed.get("notifications.Delivery", 0)
    print(f"purge: {removed} in {elapsed:.2f}s")
    print(f"= {deliveries / elapsed:.0f} deliveries/s ({sum(removed.values()) / elapsed:.0f} rows/s, with their "
          f"notifications and attempts); against 1,000 deliveries/s sent: ratio {deliveries / elapsed / 1000:.2f}; "
          f"load {h.loadavg()}")
    left = Notification.objects.count(), Delivery.objects.count(), DeliveryAttempt.objects.count()
    print(f"left after the purge (notifications, deliveries, attempts): {left}")


if __name__ == "__main__":
    main()
