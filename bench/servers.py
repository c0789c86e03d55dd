"""The Procfile's WSGI server (granian) against gunicorn (gthread), alternated in one run.

    pip install gunicorn==27.0.1   # not a dependency of the service: only this comparison uses it
    python -m bench.servers [--rates 100,150,200,250,300] [--seconds 10] [--rounds 2]

Both serve config.wsgi on their own ports at once, against the bench database: granian as the
Procfile runs it (2 workers x 8 blocking threads, --backlog 512), gunicorn with the same shape
(2 gthread processes x 8 threads, --backlog 512), each process with a pool of 4 Postgres
connections. At each rate, each server gets --rounds open-loop runs of `POST /api/notifications/`
(bench.api_latency's load generator), alternating which goes first; no Celery worker runs (for
that, `python -m bench.api_latency --server gunicorn` against `--server web`). Printed per run:
latency and the server's CPU time per request (all of its processes, from /proc), then each
server's medians and the CPU ratio granian/gunicorn.
"""

import argparse
import asyncio
import importlib.util
import sys
import time

from bench import harness as h
from bench.api_latency import offered_load, summarize


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="100,150,200,250,300")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if importlib.util.find_spec("gunicorn") is None:
        sys.exit(h.GUNICORN_INSTALL)
    h.header("servers: gunicorn (gthread) against granian (WSGI), alternated", rates=args.rates,
             seconds=args.seconds, rounds=args.rounds)
    h.ensure_database()
    h.reset_database()
    h.reset_redis()
    users, key = h.create_users(1000), h.issue_api_key()
    # One API key sends everything: its throttle would answer 429 and measure the limit instead.
    env = {"NOTIFY_THROTTLE_CLIENT_RATE": "10000000/minute", "DATABASE_POOL_MAX_SIZE": "4"}
    servers = {}
    for name, make in (("gunicorn", h.gunicorn), ("granian", h.web)):
        port = h.free_port()
        process = make(port)
        process.env.update(env)
        servers[name] = (port, process.start(ready=h.WEB_READY[process.name]))
    time.sleep(2)
    print(f"processes: {h.describe([process for _, process in servers.values()])}")
    rates = [float(rate) for rate in args.rates.split(",")]
    for port, _ in servers.values():  # warm: every process has loaded the app and its connections
        asyncio.run(offered_load(f"http://127.0.0.1:{port}/api/notifications/", key, users, rates[0], 3))
    results = {name: [] for name in servers}
    for rate in rates:
        for round_ in range(args.rounds):
            order = list(servers.items()) if round_ % 2 == 0 else list(reversed(servers.items()))
            for name, (port, process) in order:
                pids = process.pids
                before = h.cpu_seconds(pids)
                runs, _ = asyncio.run(offered_load(f"http://127.0.0.1:{port}/api/notifications/", key, users, rate,
                                                   args.seconds))
                per_request = 1000 * (h.cpu_seconds(pids) - before) / len(runs)
                p95, p99 = summarize(f"{name} at {rate:.0f}/s, round {round_ + 1}", runs, args.seconds)
                print(f"  {name}: {per_request:.2f} ms of CPU per request; load {h.loadavg()}")
                sys.stdout.flush()
                results[name].append((per_request, p95, p99))
    for name, rows in results.items():
        print(f"{name}: median CPU {h.median([r[0] for r in rows]):.2f} ms/request, "
              f"median p95 {h.median([r[1] for r in rows]):.1f} ms, median p99 {h.median([r[2] for r in rows]):.1f} ms")
    ratios = [b[0] / a[0] for a, b in zip(results["gunicorn"], results["granian"])]
    print(f"CPU per request, granian / gunicorn: median {h.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
    h.stop_all()


if __name__ == "__main__":
    main()
