"""Round trips per notification: SQL queries and Redis commands of the API send, planning and one delivery.

    python -m bench.roundtrips [--channel inapp]

On a machine where every process waits for a CPU, each round trip to Postgres or Redis costs
milliseconds, so their number per delivery bounds throughput more than Python time does. This
runs each stage once in this process, against the bench database and Redis db 9 (no worker
consumes the messages; Redis db 9 is emptied at the end): the API view through Django's test
client, dispatch_notifications, and one delivery attempt (email against the fake SendGrid).
"""

import argparse
import json
import uuid
from collections import Counter
from contextlib import contextmanager

import redis
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings

from bench import harness as h
from tests.support.fakes.sendgrid import FakeSendGrid


@contextmanager
def count_redis():
    counter = Counter()
    original_execute = redis.Redis.execute_command
    original_pipeline = redis.client.Pipeline.execute

    def execute(self, *args, **kwargs):
        counter[str(args[0]).upper()] += 1
        return original_execute(self, *args, **kwargs)

    def pipeline(self, *args, **kwargs):
        counter["PIPELINE(" + "+".join(str(c[0][0]) for c in self.command_stack) + ")"] += 1
        return original_pipeline(self, *args, **kwargs)

    redis.Redis.execute_command = execute
    redis.client.Pipeline.execute = pipeline
    try:
        yield counter
    finally:
        redis.Redis.execute_command = original_execute
        redis.client.Pipeline.execute = original_pipeline


def show(stage, queries, commands):
    kinds = Counter(q["sql"].split()[0].upper() for q in queries.captured_queries)
    print(f"{stage}: {len(queries.captured_queries)} SQL ({dict(kinds)}), {sum(commands.values())} Redis "
          f"round trips ({dict(commands)})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channel", default="inapp")
    args = parser.parse_args()
    h.header("roundtrips: SQL queries and Redis commands per notification and delivery", channel=args.channel)
    h.ensure_database()
    h.reset_database()
    h.reset_redis()
    users = h.create_users(10)
    key = h.issue_api_key()
    sendgrid = FakeSendGrid().start()

    from channels_delivery.engine import chunks, delivery
    from notifications.models import Delivery, Notification
    from notifications.tasks import dispatch_notifications

    client = Client()
    body = {"recipients": [users[0]], "category": "orders", "title": "Order 123 shipped", "message": "Hello",
            "channels": [args.channel]}
    post = lambda: client.post("/api/notifications/", json.dumps(body), content_type="application/json",  # noqa: E731
                               HTTP_AUTHORIZATION=f"Bearer {key}")
    post()  # warm caches (categories, content types)
    with CaptureQueriesContext(connection) as queries, count_redis() as commands:
        response = post()
    assert response.status_code == 202, response.content
    show("POST /api/notifications/ (1 recipient)", queries, commands)

    pending = [str(n) for n in Notification.objects.filter(status="pending").values_list("id", flat=True)]
    with CaptureQueriesContext(connection) as queries, count_redis() as commands:
        dispatch_notifications.run(pending[:1])
    show("dispatch_notifications (1 notification)", queries, commands)

    row = Delivery.objects.filter(status="queued", channel=args.channel).first()
    with override_settings(SENDGRID_API_KEY=sendgrid.api_key, SENDGRID_HOST=sendgrid.url):
        with CaptureQueriesContext(connection) as queries, count_redis() as commands:
            delivery.attempt(row.id)
    assert Delivery.objects.get(id=row.id).status in ("sent", "delivered")
    show(f"one {args.channel} delivery attempt (delivery.attempt)", queries, commands)
    for query in queries.captured_queries:
        print(f"    {query['sql'][:150]}")
    # A chunk: what a delivery message of several first tries costs, in statements per chunk.
    client.post("/api/notifications/", json.dumps({**body, "recipients": users[1:6]}), content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {key}")
    dispatch_notifications.run([str(n) for n in Notification.objects.filter(status="pending").values_list("id", flat=True)])
    ids = [str(i) for i in Delivery.objects.filter(status="queued", channel=args.channel).values_list("id", flat=True)]
    with override_settings(SENDGRID_API_KEY=sendgrid.api_key, SENDGRID_HOST=sendgrid.url):
        with CaptureQueriesContext(connection) as chunk_queries, count_redis() as chunk_commands:
            counts = chunks.run(args.channel, ids, str(uuid.uuid4()))
    assert counts["sent"] == len(ids), counts
    show(f"one {args.channel} chunk of {len(ids)} deliveries (chunks.run)", chunk_queries, chunk_commands)
    print("    (and one COPY of the attempts in the recording transaction, which Django's query capture does not see)")
    for query in chunk_queries.captured_queries:
        print(f"    {query['sql'][:150]}")
    print(f"  + per task, Celery's Django fixup keeps the Postgres connection for "
          f"{settings.CELERY_DB_REUSE_MAX or 1} task(s) (CELERY_DB_REUSE_MAX), and the worker publishes "
          f"task events: {'yes' if settings.CELERY_WORKER_SEND_TASK_EVENTS else 'no'} (CELERY_WORKER_SEND_TASK_EVENTS)")
    sendgrid.stop()
    h.reset_redis()


if __name__ == "__main__":
    main()
