"""A broadcast to every user (`"to": {"all": true}`): how fast the API answers, how fast it is planned.

    python -m bench.broadcast [--recipients 100000] [--channels inapp,email] [--deliver]

Users are created first by COPY (not timed into the figures). The Procfile's web process and
dispatch worker run (no channel workers: the planned deliveries' messages wait in their queues,
which are emptied at the end, so delivering does not compete with planning for the CPU). The
broadcast is POSTed with an API key issued here, after a few single sends warm the web process.

Figures: the API's answer time (client side, ms); the time until every Notification row of the
broadcast exists (Broadcast.finished_at, set by the last chunk); and the time until every one of
them is planned (no Notification of the broadcast left `pending`: dispatch creates the Delivery
rows in the transaction that marks it dispatched), observed by polling Postgres every 0.25 s; and
the time until every queued delivery's task message is in Redis (dispatch enqueues on commit).
With --deliver the channels' workers run from the start (email to the fake SendGrid in this
process), and it prints, per channel, when the first and the last delivery were sent: a first
one long before planning ends shows fan-out, planning and delivery overlapping.
"""

import argparse
import json
import sys
import time
import urllib.request

from bench import harness as h
from django.db import connection  # noqa: E402
from tests.support.fakes.sendgrid import FakeSendGrid  # noqa: E402


def post(url, key, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json",
    })
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
        status = response.status
    return status, answer, (time.perf_counter() - started) * 1000


def start_web(extra_processes=()):
    port = h.free_port()
    web = h.web(port)
    web.env["DATABASE_CONN_MAX_AGE"] = "0"  # see bench/api_latency.py: persistent connections leak under ASGI
    web.start(ready=h.WEB_READY["web"])
    for process in extra_processes:
        process.start()
    return f"http://127.0.0.1:{port}/api/notifications/", web


def warm_up(url, key, username, count=5):
    for i in range(count):
        status, _answer, _ms = post(url, key, {"recipients": [username], "category": "general",
                                               "title": f"warm-up {i}", "channels": ["inapp"]})
        assert status == 202, status


def broadcast_and_wait(url, key, recipients, channels, timeout, category="general"):
    """POST the broadcast; returns (answer ms, seconds to all rows, seconds to all planned, broadcast id)."""
    body = {"to": {"all": True}, "category": category, "title": "Maintenance tonight",
            "message": "The service is down from 22:00 to 23:00 UTC."}
    if channels:
        body["channels"] = channels
    posted = time.time()
    status, answer, answer_ms = post(url, key, body)
    if status != 202:
        raise RuntimeError(f"broadcast answered {status}: {answer}")
    broadcast_id = answer["broadcast_id"]

    def rows_done():
        return h.count("SELECT extract(epoch FROM finished_at) FROM notifications_broadcast WHERE id = %s",
                       broadcast_id)

    def planned():
        return h.count(
            "SELECT count(*) FROM notifications_notification WHERE broadcast_id = %s AND status <> 'pending'",
            broadcast_id,
        ) >= recipients

    finished_at = h.wait_until(rows_done, timeout, interval=0.25, what="every notification row")
    h.wait_until(planned, timeout, interval=0.25, what="every notification planned")
    planned_s = time.time() - posted
    return answer_ms, float(finished_at) - posted, planned_s, broadcast_id, posted


def wait_enqueued(expected, queues, timeout):
    """With no channel worker consuming: until `expected` deliveries wait in `queues` (one per
    message, or a chunk's per chunk message)."""
    h.wait_until(lambda: sum(h.deliveries_waiting(q) for q in queues) >= expected, timeout, interval=1,
                 what=f"{expected} deliveries enqueued")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--channels", default="", help="comma-separated; default: the configured default routes")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--deliver", action="store_true",
                        help="run the channels' workers too and time until every delivery is sent")
    args = parser.parse_args()
    channels = [c for c in args.channels.split(",") if c]
    h.header("broadcast: a broadcast to every user", recipients=args.recipients,
             channels=args.channels or "default routes (NOTIFY_DEFAULT_CHANNELS: inapp, email)")

    h.ensure_database()
    h.reset_database()
    h.reset_redis()
    started = time.time()
    names = h.create_users(args.recipients - 1)  # the API client's owner is the last active user
    print(f"created {args.recipients} users by COPY in {time.time() - started:.1f}s")
    key = h.issue_api_key()
    dispatch = h.worker("dispatch", include_noop=False)
    sendgrid = FakeSendGrid().start()
    channel_workers = [process for channel in (channels or ["inapp", "email"])
                       for process in h.workers(channel, include_noop=False)] if args.deliver else []
    for process in channel_workers:
        process.env.update({"SENDGRID_API_KEY": sendgrid.api_key, "SENDGRID_HOST": sendgrid.url})
    url, web = start_web([dispatch, *channel_workers])
    print(f"processes: {h.describe([web, dispatch, *channel_workers])} (web with DATABASE_CONN_MAX_AGE=0"
          f"{'' if args.deliver else '; no channel workers'})")
    warm_up(url, key, names[0])
    h.wait_until(lambda: h.count("SELECT count(*) FROM notifications_notification WHERE status = 'pending'") == 0,
                 60, what="warm-up planned")
    print(f"load before the broadcast: {h.loadavg()}")
    sys.stdout.flush()
    meter = h.CpuMeter({p.name: lambda p=p: p.pids for p in [web, dispatch, *channel_workers]} | {"postgres": h.postgres_pids})

    answer_ms, rows_s, planned_s, broadcast_id, posted = broadcast_and_wait(
        url, key, args.recipients, channels, args.timeout
    )
    print(f"answered in {answer_ms:.1f} ms")
    print(f"every notification row existed after {rows_s:.1f}s ({args.recipients / rows_s:.0f} rows/s)")
    sys.stdout.flush()
    # The tables grew from nothing during the run: without fresh statistics Postgres plans the
    # counts below as nested loops over "empty" tables (minutes instead of milliseconds).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE notifications_notification, notifications_delivery")
    deliveries = h.count(
        "SELECT count(*) FROM notifications_delivery d JOIN notifications_notification n ON n.id = d.notification_id "
        "WHERE n.broadcast_id = %s", broadcast_id,
    )
    queued = h.count(
        "SELECT count(*) FROM notifications_delivery d JOIN notifications_notification n ON n.id = d.notification_id "
        "WHERE n.broadcast_id = %s AND d.status = 'queued'", broadcast_id,
    )
    print(f"every notification planned after {planned_s:.1f}s: {deliveries} deliveries ({queued} queued, "
          f"{deliveries / planned_s:.0f} deliveries/s planned)")
    if args.deliver:
        def settled():
            return h.count(
                "SELECT count(*) FROM notifications_delivery d JOIN notifications_notification n "
                "ON n.id = d.notification_id WHERE n.broadcast_id = %s AND d.status NOT IN ('queued', 'sending', "
                "'retrying', 'pending')", broadcast_id) >= deliveries

        h.wait_until(lambda: meter.sample() or settled(), args.timeout, interval=0.5, what="every delivery settled")
        for channel, first, last, sent in h.rows(
            "SELECT d.channel, extract(epoch FROM min(d.sent_at)), extract(epoch FROM max(d.sent_at)), count(d.sent_at) "
            "FROM notifications_delivery d JOIN notifications_notification n ON n.id = d.notification_id "
            "WHERE n.broadcast_id = %s GROUP BY d.channel ORDER BY d.channel", broadcast_id,
        ):
            print(f"{channel}: {sent} sent; the first {float(first) - posted:.1f}s after the POST, every one after "
                  f"{float(last) - posted:.1f}s; load {h.loadavg()}")
        print(f"CPU from the POST to every delivery settled: {meter.line()}")
    else:
        wait_enqueued(queued, ("inapp", "email"), args.timeout)
        print(f"every queued delivery's task in its queue after {time.time() - posted:.1f}s; load {h.loadavg()}")
        print(f"CPU from the POST to every delivery enqueued: {meter.line()}")
    sendgrid.stop()
    h.stop_all()
    h.reset_redis()


if __name__ == "__main__":
    main()
