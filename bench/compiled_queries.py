"""CPU time of the hot queries compiled once per process (notifications.models.CompiledQuery)
against the ORM building and compiling them for every call, alternated in one run.

    python -m bench.compiled_queries [--rounds 6] [--queries 300]

Each call asks for one notification, as the workers do at 100 sends/s (a chunk or a batch of one):
the in-app push's query (its notification with its user's unread count), settle_notifications'
read of its deliveries, and dispatch's read of a batch (its notifications locked, with their
users, profiles and categories: `select_related()`, so CompiledQuery.objects()), and that batch
read again with its attachments and broadcasts (prefetch_related_objects, against
tasks.read_attachments_and_broadcasts), and settle_notifications' UPDATE (QuerySet.update()
against CompiledQuery.update()). Counts process CPU time (time.process_time), so Postgres'
own time is left out; the figure is what the worker pays per call.
"""

import argparse
import time

from bench import harness as h
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import transaction  # noqa: E402
from django.db.models import Prefetch, prefetch_related_objects  # noqa: E402

from notifications.models import (  # noqa: E402
    Category,
    Delivery,
    DeliveryStatus,
    Notification,
    NotificationStatus,
    SETTLED_BY_DELIVERIES,
    settle_update,
    settled_deliveries_query,
)
from notifications.tasks import pending_batch_query, read_attachments_and_broadcasts  # noqa: E402
from notifications.realtime import events  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    h.header("compiled_queries: CPU per call, compiled once and run raw or built by the ORM each time",
             rounds=args.rounds, queries=args.queries)
    h.ensure_database()
    h.reset_database()
    h.create_users(50)
    category, _ = Category.objects.get_or_create(key="orders", defaults={"name": "Orders"})
    notifications = [Notification.objects.create(recipient=user, category=category, title="Order 123 shipped",
                                                 body="On its way.", data={"order": 123},
                                                 status=NotificationStatus.PENDING)
                     for user in get_user_model().objects.all()]
    for notification in notifications:
        Delivery.objects.create(notification=notification, channel="inapp", status=DeliveryStatus.DELIVERED)
    ids = [n.id for n in notifications]

    def push(query):
        return [(events.notification_message(n), n.unread) for n in query]

    def deliveries(query):
        return [(d.notification_id, d.route, d.position, d.status) for d in query]

    def batch(query):
        with transaction.atomic():  # select_for_update(), as dispatch runs it
            return [(n.id, n.recipient.username, getattr(n.recipient, "profile", None), n.category.key, n.data)
                    for n in query()]

    def prefetched(i):
        batch = pending_batch_query.objects(ids=[i])
        prefetch_related_objects(batch, "broadcast", Prefetch("attachments", to_attr=Notification.ATTACHMENTS))
        return batch

    def read_together(i):
        batch = pending_batch_query.objects(ids=[i])
        read_attachments_and_broadcasts(batch)
        return batch

    def with_reads(query):
        with transaction.atomic():
            return [(n.id, n.attachment_rows(), n.broadcast) for n in query()]

    def settle(update):  # there and back: every call changes one row
        return [update(status) for status in (NotificationStatus.DISPATCHED, NotificationStatus.PENDING)]

    def orm_settle(i):
        return settle(lambda status: Notification.objects.filter(id__any=[i], status__in=SETTLED_BY_DELIVERIES)
                      .exclude(status=status).update(status=status))

    cases = {
        "in-app push": (lambda i: push(events.pushed_notifications([i])),
                        lambda i: push(events.pushed_notifications_query.instances(ids=[i]))),
        "settled deliveries": (lambda i: deliveries(settled_deliveries_query.build([i])),
                               lambda i: deliveries(settled_deliveries_query.instances(ids=[i]))),
        "dispatch's batch": (lambda i: batch(lambda: pending_batch_query.build([i])),
                             lambda i: batch(lambda: pending_batch_query.objects(ids=[i]))),
        "dispatch's batch with its attachments and broadcasts": (lambda i: with_reads(lambda: prefetched(i)),
                                                                 lambda i: with_reads(lambda: read_together(i))),
        "settle's UPDATE (two per call)": (orm_settle,
                                           lambda i: settle(lambda status: settle_update.update(ids=[i], status=status))),
    }
    for name, (orm, compiled) in cases.items():
        assert orm(ids[0]) == compiled(ids[0]), name  # the same answer, converters and annotations included
        results = {"ORM each time": [], "compiled once": []}
        for round_ in range(args.rounds):
            for kind in (list(results) if round_ % 2 == 0 else list(reversed(results))):
                run = orm if kind == "ORM each time" else compiled
                started = time.process_time()
                for i in range(args.queries):
                    run(ids[i % len(ids)])
                results[kind].append(1000 * (time.process_time() - started) / args.queries)
        print(f"{name}: " + "; ".join(f"{kind} median {h.median(values):.3f} ms ({' '.join(f'{v:.3f}' for v in values)})"
                                      for kind, values in results.items()))
        ratios = [c / o for c, o in zip(results["compiled once"], results["ORM each time"])]
        print(f"  compiled / ORM: median {h.median(ratios):.2f}; load {h.loadavg()}")


if __name__ == "__main__":
    main()
