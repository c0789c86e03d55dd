"""`POST /api/notifications/` latency at a fixed offered load (open loop).

    python -m bench.api_latency [--rate 100] [--seconds 30] [--warmup 3] [--no-workers] [--worker-niceness N]
                                [--server web|gunicorn|realtime]

Starts the Procfile's web process (granian serving config.wsgi: WEB_CONCURRENCY x WEB_THREADS,
a psycopg pool per process; --server gunicorn: gunicorn's gthread workers of the same shape, to
compare; --server realtime: the Procfile's uvicorn instead) on a free port and, unless
--no-workers, the dispatch, inapp and email workers (so every accepted send is also planned and
delivered on the same machine while the API is measured; email goes to the console backend as
on a developer machine, no SendGrid key). An API key is issued here.

Open loop: request i is scheduled at start + i/rate on the clock and sent then whether or not
earlier ones have answered, so a slow server cannot slow the offered load down (no coordinated
omission). Latency counts from the scheduled time to the full answer; the time from the actual
send is printed too. At most MAX_IN_FLIGHT (32) requests are open at once (see below). Each request sends one notification to one of 1,000 users with the default
channels (inapp, email). Errors are non-202 answers and failed connections.

With the workers, each run then waits for them to finish what it accepted and prints how long
after the last answer that was and the lag from acceptance to each delivery's send. They run at
the Procfile's --niceness (10: they give the CPU to the web process); --worker-niceness 0 runs
them at the web's priority, to compare.

--sweep R1,R2,... runs each rate in turn (one run each) and prints the highest whose p99 stayed
under 250 ms. The API key's request throttle is lifted in the web process (one key sends
everything here).
"""

import argparse
import asyncio
import importlib.util
import json
import os
import random
import sys
import time

import aiohttp

from bench import harness as h

# Requests in flight at once. Each in-flight request holds a Postgres connection in the web
# process (a thread per request under ASGI); unbounded, an overloaded server exhausts the shared
# server's max_connections. A request waiting for a free slot still counts from its scheduled
# time, so the cap hides no latency.
MAX_IN_FLIGHT = 32


async def fire(session, url, key, body, scheduled, results):
    sent = time.perf_counter()
    try:
        async with session.post(url, data=body, headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"
        }) as response:
            await response.read()
            status = response.status
    except Exception as error:  # noqa: BLE001 - every failure is counted as an error
        status = type(error).__name__
    done = time.perf_counter()
    results.append((scheduled, done - scheduled, done - sent, status))


async def offered_load(url, key, users, rate, seconds):
    results, tasks = [], []
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            body = json.dumps({
                "recipients": [random.choice(users)], "category": "orders", "title": "Order 123 shipped",
                "message": "Your order is on its way.", "data": {"order": i},
            })
            tasks.append(asyncio.create_task(fire(session, url, key, body, scheduled, results)))
        await asyncio.gather(*tasks)
        lag = max((r[0] for r in results), default=start) - start
    return results, lag


def summarize(label, results, seconds):
    total = [r[1] * 1000 for r in results]
    service = [r[2] * 1000 for r in results]
    errors = [r[3] for r in results if r[3] != 202]
    achieved = len(results) / seconds
    print(
        f"{label}: {len(results)} requests ({achieved:.0f}/s offered), errors {len(errors)}"
        + (f" {sorted(set(map(str, errors)))}" if errors else "")
    )
    for name, values in (("from schedule", total), ("from send", service)):
        print(
            f"  latency {name:13} ms: p50 {h.percentile(values, 50):.1f}  p95 {h.percentile(values, 95):.1f}  "
            f"p99 {h.percentile(values, 99):.1f}  max {max(values):.1f}"
        )
    return h.percentile(total, 95), h.percentile(total, 99)


OPEN_DELIVERIES = ("pending", "queued", "sending", "retrying")
OPEN_NOTIFICATIONS = ("pending", "dispatched")


def report_delivery_lag(since, timeout=300.0):
    """How far the workers trail the API for the notifications accepted since `since` (Postgres'
    clock): waits until none of them is still being planned or delivered, then prints when that
    was and the lag from acceptance to each delivery's send."""
    def caught_up():
        return not h.count(
            "SELECT count(*) FROM notifications_notification WHERE created_at >= %s AND status = ANY(%s)",
            since, list(OPEN_NOTIFICATIONS)) and not h.count(
            "SELECT count(*) FROM notifications_delivery d JOIN notifications_notification n"
            " ON n.id = d.notification_id WHERE n.created_at >= %s AND d.status = ANY(%s)", since, list(OPEN_DELIVERIES))

    waited = time.perf_counter()
    try:
        h.wait_until(caught_up, timeout, what="the workers catching up")
        gave_up = False
    except TimeoutError:
        gave_up = True
    drained = time.perf_counter() - waited
    lags = [float(row[0]) * 1000 for row in h.rows(
        "SELECT extract(epoch FROM d.sent_at - n.created_at) FROM notifications_delivery d"
        " JOIN notifications_notification n ON n.id = d.notification_id"
        " WHERE n.created_at >= %s AND d.sent_at IS NOT NULL", since)]
    if not lags:
        print(f"  deliveries: none sent ({drained:.1f}s waited)")
        return
    print(
        f"  deliveries: {len(lags)} sent; the workers caught up {drained:.1f}s after the last answer"
        + (" (gave up waiting)" if gave_up else "")
        + f"; accepted -> sent ms: p50 {h.percentile(lags, 50):.0f}  p95 {h.percentile(lags, 95):.0f}"
          f"  p99 {h.percentile(lags, 99):.0f}  max {max(lags):.0f}"
    )


def cpu_meter(processes):
    """The CPU of every process a run keeps busy: the web and the workers, Postgres, Redis and this
    load generator (they all share the machine's cores)."""
    groups = {p.name: lambda p=p: p.pids for p in processes}
    return h.CpuMeter(groups | {"postgres": h.postgres_pids, "redis": h.redis_pids, "load generator": lambda: [os.getpid()]})


def report_cpu(meter, requests, seconds):
    used = meter.used()
    total = sum(used.values())
    print("  CPU per request, from the first request to the workers caught up: "
          + ", ".join(f"{name} {1000 * value / requests:.2f} ms" for name, value in used.items())
          + f"; all {1000 * total / requests:.2f} ms ({total / seconds:.2f} cores over the offered {seconds:.0f} s)")


def database_now():
    return h.rows("SELECT now()")[0][0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second offered")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load first, not counted")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--sweep", default="", help="rates to run in turn, e.g. 100,200,300,400")
    parser.add_argument("--no-workers", action="store_true", help="only the web process runs")
    parser.add_argument("--worker-niceness", default=None,
                        help="the workers' --niceness (default: the Procfile's, 10)")
    parser.add_argument("--conn-max-age", default="0", help="DATABASE_CONN_MAX_AGE of the web process")
    parser.add_argument("--server", choices=["web", "gunicorn", "realtime"], default="web",
                        help="web: the Procfile's granian (WSGI, pooled); to compare, gunicorn (gthread, the same "
                             "shape and pool; pip install gunicorn==27.0.1) or realtime: its uvicorn (ASGI)")
    args = parser.parse_args()
    h.header("api_latency: POST /api/notifications/ at a fixed offered load (open loop)",
             rate=args.rate, seconds=args.seconds, warmup=args.warmup, runs=args.runs,
             workers="no" if args.no_workers else "dispatch, inapp, email", web_conn_max_age=args.conn_max_age,
             server=args.server, worker_niceness=args.worker_niceness or "the Procfile's")

    h.ensure_database()
    h.reset_database()
    h.reset_redis()
    users = h.create_users(1000)
    key = h.issue_api_key()
    port = h.free_port()
    if args.server == "gunicorn" and importlib.util.find_spec("gunicorn") is None:
        sys.exit(h.GUNICORN_INSTALL)
    processes = [h.gunicorn(port) if args.server == "gunicorn" else h.web(port, args.server)]
    processes[0].env["DATABASE_CONN_MAX_AGE"] = args.conn_max_age
    # One API key sends everything here: its throttle (6,000 requests a minute by default) would
    # answer 429 above 100/s and measure the limit instead of the server.
    processes[0].env["NOTIFY_THROTTLE_CLIENT_RATE"] = "10000000/minute"
    if not args.no_workers:
        processes += [h.worker(queue, niceness=args.worker_niceness) for queue in ("dispatch", "inapp", "email")]
    for process in processes:
        process.start(ready=h.WEB_READY.get(process.name, " ready."))
    print(f"processes: {h.describe(processes)}")
    sys.stdout.flush()
    url = f"http://127.0.0.1:{port}/api/notifications/"

    if args.warmup:
        asyncio.run(offered_load(url, key, users, args.rate, args.warmup))
    p95s = []
    for run in range(1, args.runs + 1):
        since, meter = database_now(), cpu_meter(processes)
        results, lag = asyncio.run(offered_load(url, key, users, args.rate, args.seconds))
        p95s.append(summarize(f"run {run}", results, args.seconds)[0])
        print(f"  load generator: last request scheduled {lag:.2f}s after start; load now {h.loadavg()}")
        if not args.no_workers:
            report_delivery_lag(since)
        report_cpu(meter, len(results), args.seconds)
        sys.stdout.flush()
    if args.runs > 1:
        print(f"median p95 over {args.runs} runs: {h.median(p95s):.1f} ms")
    if args.sweep:
        held = None
        for rate in [float(r) for r in args.sweep.split(",")]:
            since, meter = database_now(), cpu_meter(processes)
            results, lag = asyncio.run(offered_load(url, key, users, rate, args.seconds))
            _, p99 = summarize(f"sweep {rate:.0f}/s", results, args.seconds)
            errors = sum(1 for r in results if r[3] != 202)
            print(f"  load generator: last request scheduled {lag:.2f}s after start; load now {h.loadavg()}")
            if not args.no_workers:
                report_delivery_lag(since)
            report_cpu(meter, len(results), args.seconds)
            sys.stdout.flush()
            if p99 < 250 and not errors:
                held = rate
        print(f"highest swept rate with p99 < 250 ms and no errors: {f'{held:.0f}/s' if held else 'none'}")
    accepted = h.count("SELECT count(*) FROM notifications_notification")
    print(f"notifications stored: {accepted}")
    h.stop_all()


if __name__ == "__main__":
    main()
