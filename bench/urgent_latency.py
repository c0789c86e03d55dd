"""An urgent notification's API-to-sent latency while a large delivery backlog drains.

    python -m bench.urgent_latency [--backlog 100000] [--channels inapp,email] [--timeout 300]

1. A broadcast to every user (backlog / number of channels users, channels named) is planned
   with only the web process and the dispatch worker running, until every backlog delivery's
   task waits in its queue: the backlog.
2. The Procfile's channel workers start (inapp, and email against the in-process fake SendGrid)
   and the backlog drains.
3. Once draining, an urgent notification (`priority: urgent`, category `system`, no channels
   named, so the configured urgent route applies: inapp, then push -> sms -> email; the recipient
   has only an email address, so push and SMS are skipped) is POSTed to the API, and the clock
   runs until each of its queued deliveries is `sent` (sent_at in Postgres).

If a delivery is not sent within --timeout, the report says how many backlog messages were
ahead of it in its queue when it was enqueued and the measured drain rate, i.e. the wait a FIFO
queue implies. The engine is measured as it is (no priority queues are added here).
"""

import argparse
import sys
import time

from bench import harness as h
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
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the urgent deliveries")
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

    posted = time.time()
    status, answer, answer_ms = post(url, key, {
        "recipients": [urgent_user], "category": "system", "priority": "urgent",
        "title": "Database primary down", "message": "Failover in progress.",
    })
    assert status == 202, (status, answer)
    notification_id = answer["ids"][0]
    print(f"urgent notification answered {status} in {answer_ms:.1f} ms")

    def settled():
        rows = deliveries_of(notification_id)
        live = [r for r in rows if r["status"] not in ("sent", "delivered", "skipped", "failed", "pending")]
        return rows if rows and not live else None

    try:
        rows = h.wait_until(settled, args.timeout, interval=0.1, what="urgent deliveries sent")
        timed_out = False
    except TimeoutError:
        rows, timed_out = deliveries_of(notification_id), True
    now = time.time()
    rates = {channel: (sent_count(channel) - drained_start[channel]) / (now - drain_start) for channel in channels}
    planned = [r for r in rows if r["created_at"]]
    if planned:
        print(f"  planned (Delivery rows exist) {min(r['created_at'] for r in planned).timestamp() - posted:.2f}s "
              "after the POST")
    for row in rows:
        if row["sent_at"]:
            print(f"  {row['channel']:5} sent {row['sent_at'].timestamp() - posted:.2f}s after the POST")
        elif row["status"] == "skipped":
            print(f"  {row['channel']:5} skipped ({row['reason']})")
        else:
            waiting, rate = ahead.get(row["channel"]), rates.get(row["channel"])
            estimate = f"; at {rate:.0f} {row['channel']} deliveries/s the {waiting} messages ahead of it take " \
                f"~{waiting / rate:.0f}s" if waiting and rate else ""
            print(f"  {row['channel']:5} still {row['status']} after {now - posted:.0f}s{estimate}")
    drain = ", ".join(f"{channel} {rate:.0f}/s" for channel, rate in rates.items())
    print(f"backlog drain rate meanwhile: {drain}; "
          f"{'timed out' if timed_out else 'all urgent deliveries settled'}; load {h.loadavg()}")
    h.stop_all()
    h.reset_redis()
    sendgrid.stop()


if __name__ == "__main__":
    main()
