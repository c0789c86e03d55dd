"""An urgent notification's API-to-sent latency while a large delivery backlog drains.

    python -m bench.urgent_latency [--backlog 100000] [--channels inapp,email] [--urgent 20] [--gap 0.5]

1. A broadcast to every user (backlog / number of channels users, channels named) is planned
   with only the web process and the dispatch worker running, until every backlog delivery's
   task waits in its queue: the backlog.
2. The Procfile's channel workers start (inapp, and email against the in-process fake SendGrid)
   and the backlog drains.
3. Once draining, --urgent notifications, one after the other (`priority: urgent`, category `system`, no channels
   named, so the configured urgent route applies: inapp, then push -> sms -> email; the recipient
   has only an email address, so push and SMS are skipped) is POSTed to the API, and the clock
   runs until each of its queued deliveries is `sent` (sent_at in Postgres); then the next one.

It prints each one's POST-to-sent time per channel, then p50, p95 and max per channel, and the
backlog's drain rate meanwhile.
"""

import argparse
import sys
import time

from bench import harness as h
from django.db import connection  # noqa: E402
from bench.broadcast import broadcast_and_wait, post, start_web, wait_enqueued
from tests.support.fakes.sendgrid import FakeSendGrid  # noqa: E402


def deliveries_of(notification_id):
    from notifications.models import Delivery

    return list(Delivery.objects.filter(notification_id=notification_id).values(
        "channel", "status", "reason", "created_at", "sent_at"
    ))


def sent_count(channel=None):
    if channel:
        return h.count("SELECT count(*) FROM notifications_delivery WHERE status IN ('sent', 'delivered') AND channel = %s", channel)
    return h.count("SELECT count(*) FROM notifications_delivery WHERE status IN ('sent', 'delivered')")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backlog", type=int, default=100_000, help="backlog deliveries")
    parser.add_argument("--channels", default="inapp,email", help="channels of the backlog broadcast")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for each urgent notification")
    parser.add_argument("--urgent", type=int, default=20, help="urgent notifications, one after the other")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between two urgent notifications")
    args = parser.parse_args()
    channels = args.channels.split(",")
    recipients = args.backlog // len(channels)
    h.header("urgent_latency: an urgent notification while a backlog drains", backlog=args.backlog,
             backlog_channels=args.channels, broadcast_recipients=recipients, timeout=args.timeout)

    h.ensure_database()
    h.reset_database()
    h.reset_redis()
    names = h.create_users(recipients - 1)
    key = h.issue_api_key()  # the API client's owner (no email) is the last of the audience
    urgent_user = names[-1]
    sendgrid = FakeSendGrid().start()
    channel_workers = [h.worker(channel, include_noop=False) for channel in channels]
    for process in [*channel_workers]:
        process.env.update({"SENDGRID_API_KEY": sendgrid.api_key, "SENDGRID_HOST": sendgrid.url})
    dispatch = h.worker("dispatch", include_noop=False)
    url, web = start_web([dispatch])
    print(f"processes: {h.describe([web, dispatch, *channel_workers])} (web with DATABASE_CONN_MAX_AGE=0)")
    sys.stdout.flush()

    started = time.time()
    _ms, _rows_s, planned_s, broadcast_id, _posted = broadcast_and_wait(url, key, recipients, channels, 3600)
    with connection.cursor() as cursor:  # fresh statistics: the tables grew from nothing (bench/broadcast.py)
        cursor.execute("ANALYZE notifications_notification, notifications_delivery")
    queued = h.count(
        "SELECT count(*) FROM notifications_delivery d JOIN notifications_notification n ON n.id = d.notification_id "
        "WHERE n.broadcast_id = %s AND d.status = 'queued'", broadcast_id,
    )
    wait_enqueued(queued, channels, 3600)
    print(f"backlog: {queued} deliveries queued in {', '.join(channels)} after {time.time() - started:.0f}s")

    for process in channel_workers:
        process.start()
    h.wait_until(lambda: sent_count() >= 200, 600, what="backlog draining")
    drain_start = time.time()
    drained_start = {channel: sent_count(channel) for channel in channels}
    time.sleep(5)
    ahead = {channel: h.queue_depth(channel) for channel in channels}
    print(f"draining; messages waiting per queue when the urgent one is sent: {ahead}; load {h.loadavg()}")
    sys.stdout.flush()

    latencies = {}  # channel -> [seconds from the POST to sent]
    lost = 0
    for number in range(args.urgent):
        posted = time.time()
        status, answer, answer_ms = post(url, key, {
            "recipients": [urgent_user], "category": "system", "priority": "urgent",
            "title": f"Database primary down ({number + 1})", "message": "Failover in progress.",
        })
        assert status == 202, (status, answer)
        notification_id = answer["ids"][0]

        def settled():
            rows = deliveries_of(notification_id)
            live = [r for r in rows if r["status"] not in ("sent", "delivered", "skipped", "failed", "pending")]
            return rows if rows and not live else None

        try:
            rows = h.wait_until(settled, args.timeout, interval=0.02, what="urgent deliveries sent")
        except TimeoutError:
            rows, lost = deliveries_of(notification_id), lost + 1
        for row in rows:
            if row["sent_at"]:
                latencies.setdefault(row["channel"], []).append(row["sent_at"].timestamp() - posted)
        print(f"urgent {number + 1}: answered {status} in {answer_ms:.1f} ms; " + ", ".join(
            f"{r['channel']} {r['sent_at'].timestamp() - posted:.2f}s" if r["sent_at"] else f"{r['channel']} {r['status']}"
            for r in rows))
        sys.stdout.flush()
        time.sleep(args.gap)
    now = time.time()
    rates = {channel: (sent_count(channel) - drained_start[channel]) / (now - drain_start) for channel in channels}
    backlog_left = {channel: h.queue_depth(channel) for channel in channels}
    for channel, values in sorted(latencies.items()):
        print(f"urgent {channel}: {len(values)} sent; POST -> sent p50 {h.percentile(values, 50):.2f}s, "
              f"p95 {h.percentile(values, 95):.2f}s, max {max(values):.2f}s")
    print(f"urgent sends not settled within {args.timeout:.0f}s: {lost}; backlog messages still waiting: {backlog_left}")
    drain = ", ".join(f"{channel} {rate:.0f}/s" for channel, rate in rates.items())
    print(f"backlog drain rate meanwhile: {drain}; load {h.loadavg()}")
    h.stop_all()
    h.reset_redis()
    sendgrid.stop()


if __name__ == "__main__":
    main()
