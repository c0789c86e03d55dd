"""End-to-end deliveries per second, and the same workers' rate on empty Celery tasks.

    python -m bench.throughput [--notifications 5000] [--runs 3] [--channels inapp,email]

Per run and channel: N notifications (one per user, the channel named explicitly) are stored
and handed to dispatch exactly as the API's view does (existing_users, then store_and_dispatch,
1,000 recipients per call, without HTTP),
and the clock runs from the first store until the last Delivery is `sent` (max(sent_at) in
Postgres). In-app needs no network; email goes through the SendGrid SDK to the fake SendGrid
server (tests/support/fakes/sendgrid.py) and webhooks to a local receiver that verifies each
signature (tests/support/fakes/webhook_receiver.py), both running in this process. The workers are the Procfile's:
dispatch, inapp and email, each its own `celery worker -Q <queue>` process group.

In the same run, N no-op tasks (bench/noop.py) are published to that channel's queue while its
worker's consumer is paused, the consumer is resumed, and the clock runs until the queue and the
unacknowledged set are empty: the same worker process, broker, concurrency and settings run
empty tasks. The ratio deliveries/s / empty tasks/s says how close a delivery is to the cost of
the bare Celery message (the design asks for more than 1 where batching is safe).
"""

import argparse
import sys
import time

from django.db import connection  # noqa: E402

from bench import harness as h
from bench.noop import noop  # noqa: E402
from config.celery import app  # noqa: E402
from notifications.api.serializers import existing_users  # noqa: E402
from notifications.models import Category  # noqa: E402
from notifications.planning.sending import store_and_dispatch  # noqa: E402
from tests.support.fakes.sendgrid import FakeSendGrid  # noqa: E402
from tests.support.fakes.webhook_receiver import FakeWebhookReceiver  # noqa: E402

CHUNK = 1000  # recipients per store_and_dispatch call: the API's MAX_RECIPIENTS_PER_REQUEST


def empty_sent_tables():
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE notifications_notification, notifications_delivery, "
                       "notifications_deliveryattempt, notifications_escalation CASCADE")


def give_webhook_endpoints(users, receiver):
    """Every user one endpoint at the local receiver (one URL and secret, which it verifies)."""
    from django.contrib.auth import get_user_model

    from notifications.models import WebhookEndpoint, new_webhook_secret

    secret = new_webhook_secret()
    url = receiver.endpoint(secret)
    ids = get_user_model().objects.filter(username__in=users).values_list("id", flat=True)
    WebhookEndpoint.objects.bulk_create([WebhookEndpoint(user_id=i, url=url, secret=secret) for i in ids],
                                        batch_size=5000)


def delivery_run(channel, users, timeout, worker=None):
    empty_sent_tables()
    category = Category.objects.get(key="general")
    started = time.time()
    for i in range(0, len(users), CHUNK):
        store_and_dispatch(
            recipients=existing_users(users[i:i + CHUNK], None), category=category, title="Order shipped",
            message="Your order 123 is on its way.", channels=[channel], priority="medium", data={"order": 123},
        )
    stored = time.time()
    total = len(users)

    memory = []  # (deliveries done, the channel worker's RSS in MiB), every 2 s

    def settled():
        done = h.count("SELECT count(*) FROM notifications_delivery WHERE status IN ('sent', 'delivered', 'failed', 'skipped')")
        if worker is not None and (not memory or time.time() - memory[-1][2] >= 2):
            memory.append((done, h.rss_mib(worker.pids), time.time()))
        return done >= total

    h.wait_until(settled, timeout, interval=0.2, what=f"{total} {channel} deliveries settled")
    sent = h.count("SELECT count(*) FROM notifications_delivery WHERE status IN ('sent', 'delivered')")
    last = h.count("SELECT extract(epoch FROM max(sent_at)) FROM notifications_delivery")
    planned = h.count("SELECT extract(epoch FROM max(created_at)) FROM notifications_delivery")
    elapsed = float(last) - started
    return {"sent": sent, "failed": total - sent, "elapsed": elapsed, "rate": sent / elapsed,
            "store_s": stored - started, "planned_s": float(planned) - started,
            "rss": [(done, rss) for done, rss, _at in memory] + ([(total, h.rss_mib(worker.pids))] if worker else [])}


def noop_run(queue, count, timeout):
    """Publish `count` empty tasks with the queue's consumer paused, then time the drain."""
    replies = app.control.cancel_consumer(queue, reply=True, timeout=5)
    if not replies:
        raise RuntimeError(f"no worker answered cancel_consumer({queue})")
    with app.producer_or_acquire() as producer:
        for number in range(count):
            noop.apply_async((number,), queue=queue, producer=producer)
    h.wait_until(lambda: h.queue_depth(queue) >= count, 60, what="no-op tasks published")
    started = time.time()
    app.control.add_consumer(queue, reply=True, timeout=5)
    h.wait_until(lambda: h.queue_depth(queue) == 0 and h.unacked() == 0, timeout, interval=0.02,
                 what=f"{count} no-op tasks run")
    elapsed = time.time() - started
    return {"elapsed": elapsed, "rate": count / elapsed}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notifications", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--channels", default="inapp,email")
    parser.add_argument("--noop", type=int, default=None, help="empty tasks per run (default: --notifications)")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--worker-settings", default="", help="DJANGO_SETTINGS_MODULE of the workers (experiments)")
    args = parser.parse_args()
    channels = args.channels.split(",")
    noops = args.noop or args.notifications
    h.header("throughput: end-to-end deliveries/s vs empty Celery tasks/s",
             notifications=args.notifications, runs=args.runs, channels=args.channels, noop_tasks=noops,
             worker_settings=args.worker_settings or "config.settings")

    h.ensure_database()
    h.reset_database()
    h.reset_redis()
    users = h.create_users(args.notifications)
    sendgrid = FakeSendGrid().start()
    receiver = FakeWebhookReceiver().start()
    if "webhook" in channels:
        give_webhook_endpoints(users, receiver)
    worker_env = {"SENDGRID_API_KEY": sendgrid.api_key, "SENDGRID_HOST": sendgrid.url,
                  "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}
    if args.worker_settings:
        worker_env["DJANGO_SETTINGS_MODULE"] = args.worker_settings
    processes = [h.worker("dispatch")] + [h.worker(channel) for channel in channels]
    for process in processes:
        process.env.update(worker_env)
        process.start()
    print(f"workers: {h.describe(processes)}")
    print("(each also imports bench.noop; web not running; SendGrid is the in-process fake)")
    sys.stdout.flush()

    results = {channel: [] for channel in channels}
    total_notifications = args.notifications
    for run in range(1, args.runs + 1):
        for channel in channels:
            sendgrid.reset()
            receiver.requests.clear()
            receiver.events.clear()
            worker = next(p for p in processes if p.name == channel)
            deliveries = delivery_run(channel, users, args.timeout, worker)
            empty = noop_run(channel, noops, args.timeout)
            ratio = deliveries["rate"] / empty["rate"]
            results[channel].append((deliveries, empty, ratio))
            extra = {"email": f", fake SendGrid got {len(sendgrid.requests)} mails",
                     "webhook": f", the receiver verified {len(receiver.events)} events"}.get(channel, "")
            print(
                f"run {run} {channel:5}: {deliveries['sent']} sent ({deliveries['failed']} not) in "
                f"{deliveries['elapsed']:.2f}s = {deliveries['rate']:.0f} deliveries/s (storing took "
                f"{deliveries['store_s']:.2f}s, the last planned after {deliveries['planned_s']:.2f}s){extra}; {noops} empty tasks in {empty['elapsed']:.2f}s = "
                f"{empty['rate']:.0f}/s; ratio {ratio:.3f}; load {h.loadavg()}"
            )
            rss = deliveries["rss"]
            early = next(((done, mib) for done, mib in rss if done >= total_notifications // 10), rss[0])
            print(f"      {channel} worker RSS: {early[1]:.0f} MiB after {early[0]} deliveries, {rss[-1][1]:.0f} MiB "
                  f"after {rss[-1][0]} ({(rss[-1][1] / early[1] - 1) * 100:+.1f}%)")
            sys.stdout.flush()

    print("-- medians")
    for channel, rows in results.items():
        concurrency = next(p for p in processes if p.name == channel).shown
        print(
            f"{channel:5}: {h.median([r[0]['rate'] for r in rows]):.0f} deliveries/s, "
            f"{h.median([r[1]['rate'] for r in rows]):.0f} empty tasks/s, ratio "
            f"{h.median([r[2] for r in rows]):.3f}  [{concurrency}]"
        )
    h.stop_all()
    sendgrid.stop()
    receiver.stop()


if __name__ == "__main__":
    main()
