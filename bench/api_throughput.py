"""Deliveries per second through the public API with the whole service running, against a bare
Celery worker draining empty tasks on the same Redis in the same run.

    python -m bench.api_throughput [--notifications 10000] [--channels inapp,email]

Per channel: `honcho start` runs the Procfile as `bin/serve` does (web, every worker, beat,
Flower) against the bench database and Redis db; N users exist; the clock starts, N
notifications are POSTed to /api/notifications/ 1,000 recipients per request (the API's
maximum), and it stops when Postgres has every delivery `sent`/`delivered` (max(sent_at)). Email
goes through the SendGrid SDK to the fake SendGrid running in this process.

Then the service stops and a bare `celery worker` (prefork, 2 processes, the service's own
Celery app and settings but Celery's default prefetch of 4) drains N empty tasks (bench/noop.py) published to a queue of its own on
the same Redis: the ratio deliveries/s / empty tasks/s says whether the service keeps up with
the broker's own pace.
"""

import argparse
import os
import subprocess
import sys
import time

from bench import harness as h
from bench.broadcast import post
from bench.noop import noop  # noqa: E402
from config.celery import app  # noqa: E402
from tests.support.fakes.sendgrid import FakeSendGrid  # noqa: E402

PER_POST = 1000


def start_service(env_extra):
    """honcho with the whole Procfile; returns (process, the API's URL) once every process is up."""
    honcho = h.start_procfile(env=env_extra)
    return honcho, f"http://127.0.0.1:{honcho.env['WEB_PORT']}/api/notifications/"


def api_run(channel, users, key, sendgrid, timeout):
    from bench.throughput import empty_sent_tables

    empty_sent_tables()
    honcho, url = start_service({"SENDGRID_API_KEY": sendgrid.api_key, "SENDGRID_HOST": sendgrid.url})
    try:
        started = time.time()
        for start in range(0, len(users), PER_POST):
            status, answer, _ms = post(url, key, {"recipients": users[start:start + PER_POST], "category": "general",
                                                  "title": "Order shipped", "message": "On its way.",
                                                  "channels": [channel]})
            assert status == 202, (status, answer)
        posted = time.time() - started
        total = len(users)
        h.wait_until(lambda: h.count("SELECT count(*) FROM notifications_delivery WHERE status IN "
                                     "('sent', 'delivered', 'failed', 'skipped')") >= total,
                     timeout, interval=0.2, what=f"{total} {channel} deliveries settled")
        sent = h.count("SELECT count(*) FROM notifications_delivery WHERE status IN ('sent', 'delivered')")
        last = float(h.count("SELECT extract(epoch FROM max(sent_at)) FROM notifications_delivery"))
        return {"sent": sent, "elapsed": last - started, "rate": sent / (last - started), "posted_s": posted}
    finally:
        h.stop_procfile(honcho)


def bare_worker_run(count, timeout):
    """A bare prefork worker (2 processes) on a queue of its own drains `count` empty tasks."""
    queue = "bench-empty"
    with app.producer_or_acquire() as producer:
        for number in range(count):
            noop.apply_async((number,), queue=queue, producer=producer)
    h.wait_until(lambda: h.queue_depth(queue) >= count, 60, what="empty tasks published")
    # Celery's own default prefetch (4), not the service's 1 (which favours urgent messages).
    env = {**os.environ, **h.BENCH_ENV, "CELERY_WORKER_PREFETCH_MULTIPLIER": "4"}
    log = open(h.LOG_DIR / "bare-worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-P", "prefork", "-c", "2",
         "-n", "bare@%h", "-I", "bench.noop", "-l", "warning", "--without-gossip", "--without-mingle"],
        cwd=h.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        h.wait_until(lambda: h.queue_depth(queue) < count, 120, interval=0.01, what="the bare worker started")
        started = time.time()
        h.wait_until(lambda: h.queue_depth(queue) == 0 and h.unacked() == 0, timeout, interval=0.02,
                     what=f"{count} empty tasks run")
        elapsed = time.time() - started
    finally:
        h.stop_procfile(worker)  # its own process group, like honcho's
    return {"elapsed": elapsed, "rate": count / elapsed}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notifications", type=int, default=10000)
    parser.add_argument("--channels", default="inapp,email")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    h.header("api_throughput: deliveries/s through the API with the whole Procfile, vs a bare worker",
             notifications=args.notifications, channels=args.channels, per_post=PER_POST)
    h.ensure_database()
    h.reset_database()
    h.reset_redis()
    users = h.create_users(args.notifications)
    key = h.issue_api_key()
    sendgrid = FakeSendGrid().start()
    for channel in args.channels.split(","):
        sendgrid.reset()
        run = api_run(channel, users, key, sendgrid, args.timeout)
        h.reset_redis()
        empty = bare_worker_run(args.notifications, args.timeout)
        print(f"{channel:5}: {run['sent']} sent in {run['elapsed']:.2f}s = {run['rate']:.0f} deliveries/s (the "
              f"{len(users) // PER_POST} POSTs took {run['posted_s']:.2f}s); bare prefork worker: "
              f"{args.notifications} empty tasks in {empty['elapsed']:.2f}s = {empty['rate']:.0f}/s; "
              f"ratio {run['rate'] / empty['rate']:.3f}; load {h.loadavg()}")
        sys.stdout.flush()
    sendgrid.stop()
    h.stop_all()


if __name__ == "__main__":
    main()
