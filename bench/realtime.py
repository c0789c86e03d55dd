"""The WebSocket tier: API -> WebSocket latency, many connections on one ASGI process, a broadcast
reaching all of them, and everyone back after a restart.

    python -m bench.realtime latency [--rate 100] [--seconds 20] [--warmup 3] [--clients 200]
    python -m bench.realtime connections [--clients 10000]

Starts the Procfile's `web` (granian), `realtime` (uvicorn, config.asgi) and the dispatch and
inapp workers against the bench database and Redis db. Clients are `websockets` connections in
this process, each authenticated with its own end-user token (HS256, as an app signs them).

latency: one notification per 1/rate s (open loop, `channels: ["inapp"]`) to a random connected
user; latency runs from the moment the POST was scheduled to the moment the `notification`
message reached that user's client. Errors are non-202 answers and notifications never seen.
The first --warmup seconds of sends (at the same rate) are not counted, as in bench.api_latency:
they meet a cold web process and workers still growing their pools.

connections: opens --clients connections (64 at a time), prints the realtime process's RSS,
then sends one `"to": {"all": true}` in-app broadcast through the API (after three single sends
that warm the web process) and times from the POST until every client got it (end to end: the
API's answer, fan-out, planning and in-app delivery included), and the same number
of events pushed from this process as the in-app worker pushes them (events.send_to_users: the
push path alone).
Finally it restarts the realtime process and times until every client is connected again
(clients retry with the inbox page's policy: full jitter, 0.5 s doubling, capped at 5 s for the
first minute offline and 30 s after it; the stop and start run in threads, so the clients see the
drop at once and retry during the down time), and the CPU the realtime process and the clients
used meanwhile. The clients run on uvloop, as the realtime process does, and once open their
objects are frozen out of this process's garbage collector's sight (else its full collections
were most of their CPU, and paced their retries). The process is "back" when the thread waiting
for it saw it listen.
"""

import argparse
import asyncio
import collections
import json
import os
import random
import resource
import signal
import sys
import time

import aiohttp
import jwt
import uvloop
from websockets.asyncio.client import connect

from bench import harness as h
from config.collector import freeze_startup

CONNECT_CONCURRENCY = 64
CLIENTS_GC_THRESHOLD = 200000


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def signing_client():
    """The bench API client, with an HS256 secret for its users' tokens."""
    from notifications.api.end_user_tokens import new_token_secret
    from notifications.models import ApiClient

    client = ApiClient.objects.get(name="bench")
    client.token_secret = new_token_secret()
    client.save(update_fields=["token_secret"])
    return client


def token(client, username):
    now = int(time.time())
    return jwt.encode({"sub": username, "aud": "notifications", "exp": now + 3000}, client.token_secret,
                      algorithm="HS256", headers={"kid": client.key_prefix})


def reconnect_delay(attempts, offline_for):
    """The inbox page's (inbox.js reconnectDelay): full jitter over 0.5 s doubling, capped at 5 s
    for the first minute offline and at 30 s after it."""
    return random.random() * min(5.0 if offline_for < 60 else 30.0, 0.5 * 2 ** attempts)


class Client:
    """One user's device: connects, keeps reconnecting with backoff + full jitter, records arrivals."""

    def __init__(self, url, username, token_value):
        self.url, self.username, self.token = url, username, token_value
        self.arrivals = {}  # notification title -> perf_counter
        self.wall_arrivals = {}  # notification title -> time.time(), to compare with Postgres timestamps
        self.connected = asyncio.Event()
        self.connections = 0
        self.failures = 0  # connection attempts that failed (refused, or dropped before the handshake ended)
        # The connection now open: when its attempt started and when its handshake ended (perf_counter).
        self.attempted = self.opened = None
        self.task = None

    async def run(self):
        attempts, offline_since = 0, None
        while True:
            attempted = time.perf_counter()
            try:
                # proxy=None: websockets otherwise looks for a proxy in the environment on every
                # connect (urllib's getproxies_environment), a quarter of these clients' CPU in a
                # reconnect storm, on the cores the realtime process needs. compression=None: the
                # realtime process runs without per-message deflate, and building the offer on
                # every connect was a sixth of these clients' CPU in one (py-spy).
                async with connect(self.url, subprotocols=["notifications", f"bearer.{self.token}"],
                                   open_timeout=60, ping_interval=None, max_queue=None, proxy=None,
                                   compression=None) as ws:
                    attempts, offline_since = 0, None
                    self.attempted, self.opened = attempted, time.perf_counter()
                    self.connections += 1
                    self.connected.set()
                    async for raw in ws:
                        message = json.loads(raw)
                        if message["type"] == "notification":
                            self.arrivals.setdefault(message["title"], time.perf_counter())
                            self.wall_arrivals.setdefault(message["title"], time.time())
            except (OSError, asyncio.TimeoutError, Exception):  # noqa: BLE001 - any drop: reconnect
                if not self.connected.is_set():
                    self.failures += 1
            self.connected.clear()
            offline_since = offline_since or time.monotonic()
            await asyncio.sleep(reconnect_delay(attempts, time.monotonic() - offline_since))
            attempts += 1


async def open_clients(url, client, usernames):
    clients = [Client(url, name, token(client, name)) for name in usernames]
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def start(c):
        async with gate:
            c.task = asyncio.create_task(c.run())
            await c.connected.wait()

    started = time.perf_counter()
    await asyncio.gather(*(start(c) for c in clients))
    return clients, time.perf_counter() - started


async def post(session, url, key, body):
    async with session.post(url, data=json.dumps(body), headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"}) as response:
        await response.read()
        return response.status


async def latency(args, api_url, ws_url, key, client, usernames, processes):
    clients, took = await open_clients(ws_url, client, usernames)
    print(f"{len(clients)} clients connected in {took:.1f}s")
    by_name = {c.username: c for c in clients}
    sent, statuses = [], []
    # Every process the run keeps busy, on the same cores: which one runs out first.
    meter = h.CpuMeter({p.name: lambda p=p: p.pids for p in processes}
                       | {"postgres": h.postgres_pids, "redis": h.redis_pids, "clients and load generator": lambda: [os.getpid()]})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        start = time.perf_counter()
        tasks = []
        warmup = int(args.rate * args.warmup)  # sent at the same rate first, not counted
        for i in range(warmup + int(args.rate * args.seconds)):
            scheduled = start + i / args.rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            name = random.choice(usernames)
            title = f"n{i}"
            if i >= warmup:
                sent.append((by_name[name], title, scheduled))
            tasks.append(asyncio.create_task(post(session, api_url, key, {
                "recipients": [name], "category": "orders", "title": title, "channels": ["inapp"]})))
        statuses = (await asyncio.gather(*tasks, return_exceptions=True))[warmup:]
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and any(title not in c.arrivals for c, title, _ in sent):
        meter.sample()
        await asyncio.sleep(0.2)
    used, took = meter.used(), time.perf_counter() - start
    count = len(sent) * (1 + args.warmup / args.seconds)  # the warm-up's sends too
    print(f"  CPU per notification, from the first send to the last seen ({took:.1f} s, {os.cpu_count()} cores, "
          f"{1000 * os.cpu_count() * took / count:.1f} ms of them per notification): "
          + ", ".join(f"{name} {1000 * seconds / count:.2f} ms" for name, seconds in used.items())
          + f"; all {1000 * sum(used.values()) / count:.2f} ms")
    values = [(c.arrivals[title] - scheduled) * 1000 for c, title, scheduled in sent if title in c.arrivals]
    errors = sum(1 for s in statuses if s != 202)
    print(f"API -> WebSocket: {len(sent)} notifications at {args.rate:.0f}/s; seen {len(values)}, "
          f"API errors {errors}, never seen {len(sent) - len(values)}")
    print(f"  latency ms: p50 {h.percentile(values, 50):.1f}  p95 {h.percentile(values, 95):.1f}  "
          f"p99 {h.percentile(values, 99):.1f}  max {max(values, default=float('nan')):.1f}; load {h.loadavg()}")
    # Whether the tail is spread over the run or comes in a few stalls.
    slices = collections.defaultdict(list)
    for c, title, scheduled in sent:
        if title in c.arrivals:
            slices[int((scheduled - start - args.warmup) // 5) * 5].append((c.arrivals[title] - scheduled) * 1000)
    print("  p95 ms per 5 s sent: " + "  ".join(
        f"{second}s {h.percentile(part, 95):.0f}" for second, part in sorted(slices.items())))
    return sent


def breakdown(sent):
    """Where the time went: the delivery engine (notification stored -> the in-app provider called,
    from Postgres) and the push (provider called -> the client had it; includes recording the
    attempt, which happens before the publish)."""
    from notifications.models import Delivery, DeliveryAttempt

    called = dict(DeliveryAttempt.objects.filter(delivery__channel="inapp", outcome="sent").values_list(
        "delivery__notification__title", "started_at"))
    created = dict(DeliveryAttempt.objects.filter(delivery__channel="inapp").values_list(
        "delivery__notification__title", "delivery__notification__created_at"))
    # Delivery.created_at: when dispatch built the row, in the batch that planned the notification.
    planned = dict(Delivery.objects.filter(channel="inapp").values_list("notification__title", "created_at"))
    # sent_at is Postgres' now() in the transaction that records the chunk: when recording began.
    recorded = dict(Delivery.objects.filter(channel="inapp", sent_at__isnull=False).values_list(
        "notification__title", "sent_at"))
    engine = [(called[t] - created[t]).total_seconds() * 1000 for _, t, _ in sent if t in called and t in created]
    planning = [(planned[t] - created[t]).total_seconds() * 1000 for _, t, _ in sent if t in planned and t in created]
    queueing = [(called[t] - planned[t]).total_seconds() * 1000 for _, t, _ in sent if t in called and t in planned]
    push = [(c.wall_arrivals[t] - called[t].timestamp()) * 1000 for c, t, _ in sent if t in c.wall_arrivals and t in called]
    settling = [(recorded[t] - called[t]).total_seconds() * 1000 for _, t, _ in sent if t in called and t in recorded]
    pushing = [(c.wall_arrivals[t] - recorded[t].timestamp()) * 1000 for c, t, _ in sent
               if t in c.wall_arrivals and t in recorded]
    for label, part in (("stored -> in-app call", engine), ("  stored -> planned", planning),
                        ("  planned -> call", queueing), ("in-app call -> client", push),
                        ("  call -> recording", settling), ("  recording -> client", pushing)):
        print(f"  {label:22} ms: p50 {h.percentile(part, 50):.1f}  p95 {h.percentile(part, 95):.1f}  "
              f"p99 {h.percentile(part, 99):.1f}")


async def connections(args, api_url, ws_url, key, client, usernames, realtime, ids):
    cpu_before = h.cpu_seconds(realtime.pids)
    clients, took = await open_clients(ws_url, client, usernames)
    opening_cpu = h.cpu_seconds(realtime.pids) - cpu_before
    # This process now holds 10,000 clients' objects, and with Python's collector settings every
    # full collection rescanned them all: during the reconnect it paid more for that than for its
    # handshakes, and arrived at the realtime process at the pace of its own collector. Frozen, as
    # the realtime process does with its startup (config/collector.py).
    freeze_startup(CLIENTS_GC_THRESHOLD)
    print(f"{len(clients)} connections opened in {took:.1f}s ({len(clients) / took:.0f}/s, {CONNECT_CONCURRENCY} at a time; "
          f"the realtime process used {1000 * opening_cpu / len(clients):.2f} ms of CPU per handshake); "
          f"realtime process RSS {h.rss_mib(realtime.pids):.0f} MiB; load {h.loadavg()}")
    sys.stdout.flush()

    if args.broadcast_timeout:
        async with aiohttp.ClientSession() as session:
            for i in range(3):  # a warm web process, as in production (its first request loads the app)
                await post(session, api_url, key, {"recipients": [usernames[i]], "category": "orders",
                                                   "title": f"warm-up {i}", "channels": ["inapp"]})
            await asyncio.sleep(2)
            started = time.perf_counter()
            status = await post(session, api_url, key, {"to": {"all": True}, "category": "orders",
                                                        "title": "broadcast", "channels": ["inapp"]})
        answered = time.perf_counter() - started
        # Timed from the moment the POST left, so the API's answer counts too.
        reached = await wait_for_all(clients, "broadcast", args.broadcast_timeout, since=started)
        print(f"broadcast through the API (status {status}, answered in {answered * 1000:.0f} ms): "
              f"{reached[0]} of {len(clients)} clients had it after {reached[1]:.1f}s; load {h.loadavg()}")

    from notifications.realtime import events

    message = {"type": "notification", "id": "0", "category": "orders", "title": "pushed", "message": "",
               "priority": "medium", "data": {}, "created_at": "", "read_at": None, "seen_at": None}
    started = time.perf_counter()
    await asyncio.to_thread(events.send_to_users, {ids[c.username]: [message] for c in clients})
    sent = time.perf_counter() - started
    reached = await wait_for_all(clients, "pushed", 60, since=started)
    print(f"push straight through the channel layer: {len(clients)} users in {sent:.2f}s "
          f"(events.send_to_users); {reached[0]} clients had it after {reached[1]:.1f}s")

    failed_before = sum(c.failures for c in clients)
    before = {id(c): c.connections for c in clients}
    if args.restart == "rolling":
        await rolling_restart(args, clients, before, failed_before, realtime)
        return
    stopped = time.perf_counter()
    # In threads: the clients share this event loop, and must see the drop and retry meanwhile as
    # real clients would (run here, the stop and start blocked them until the process was back).
    await asyncio.to_thread(realtime.stop)
    exited = time.perf_counter()

    def start():
        realtime.start(ready=h.WEB_READY["realtime"])
        # Read in the thread that saw the process listen: after the await, this event loop (busy
        # with 10,000 clients retrying) noted it up to a second or two late.
        return time.perf_counter()

    back = await asyncio.to_thread(start)
    cpu_at_back = h.cpu_seconds(realtime.pids), time.process_time(), h.steal_seconds()
    deadline = back + args.reconnect_timeout
    progress, marks = [], [0.5, 0.9, 0.99]
    while time.perf_counter() < deadline:
        again = sum(1 for c in clients if c.connections > before[id(c)] and c.connected.is_set())
        while marks and again >= marks[0] * len(clients):
            progress.append(f"{marks.pop(0):.0%} after {time.perf_counter() - back:.1f}s")
        if again == len(clients):
            break
        await asyncio.sleep(0.2)
    print(f"restart (down {back - stopped:.1f}s, of which {exited - stopped:.1f}s shutting down): {again} of {len(clients)} "
          f"reconnected {time.perf_counter() - back:.1f}s "
          f"after the realtime process was back ({', '.join(progress)}); {sum(c.failures for c in clients) - failed_before} "
          f"failed attempts since the stop; RSS {h.rss_mib(realtime.pids):.0f} MiB; load {h.loadavg()}")
    # What bounds it: when the clients' own backoff let them try again, or the handshakes' wait.
    back_again = [c for c in clients if c.connections > before[id(c)] and c.connected.is_set()]
    tried = [c.attempted - back for c in back_again]
    handshakes = [(c.opened - c.attempted) * 1000 for c in back_again]
    print(f"  the attempts that got back in started after the process was back by: p50 {h.percentile(tried, 50):.1f}s, "
          f"p99 {h.percentile(tried, 99):.1f}s, last {max(tried, default=float('nan')):.1f}s (the clients' backoff); "
          f"their handshakes took p50 {h.percentile(handshakes, 50):.0f} ms, p99 {h.percentile(handshakes, 99):.0f} ms")
    server_cpu, clients_cpu = h.cpu_seconds(realtime.pids) - cpu_at_back[0], time.process_time() - cpu_at_back[1]
    stolen, took = h.steal_seconds() - cpu_at_back[2], time.perf_counter() - back
    print(f"  CPU from back to all back: realtime process {server_cpu:.1f}s ({1000 * server_cpu / len(clients):.2f} ms "
          f"per client), these clients {clients_cpu:.1f}s ({1000 * clients_cpu / len(clients):.2f} ms per client); "
          f"stolen by the hypervisor: {stolen:.1f} of the {os.cpu_count() * took:.1f} core-seconds")
    for c in clients:
        c.task.cancel()


async def rolling_restart(args, clients, before, failed_before, realtime):
    """SIGHUP to uvicorn's supervisor (REALTIME_WORKERS >= 2): it replaces its processes one at a
    time, each new one serving before the old one stops, so the port never goes dark and a
    dropped client reconnects to a live process."""
    workers = int(realtime.env.get("REALTIME_WORKERS") or 1)
    if workers < 2:
        sys.exit("--restart rolling needs uvicorn's supervisor: run with REALTIME_WORKERS=2 or more")
    old = [pid for pid in realtime.pids if uvicorn_worker(pid)]
    assert len(old) == workers, f"expected {workers} uvicorn processes, found {old}"
    started = time.perf_counter()
    os.kill(realtime.process.pid, signal.SIGHUP)
    deadline = started + args.reconnect_timeout
    replaced = None
    while time.perf_counter() < deadline:
        if replaced is None and not any(alive(pid) for pid in old):
            replaced = time.perf_counter()
        if replaced is not None and all(c.connected.is_set() for c in clients):
            break
        await asyncio.sleep(0.2)
    now = time.perf_counter()
    dropped = sum(1 for c in clients if c.connections > before[id(c)] or not c.connected.is_set())
    print(f"rolling restart of {workers} processes (SIGHUP): the last old process exited "
          f"{(replaced or now) - started:.1f}s after the signal; every client connected {now - (replaced or now):.1f}s "
          f"after that; {dropped} of {len(clients)} clients were dropped and reconnected "
          f"({sum(c.connections - before[id(c)] for c in clients)} reconnections), "
          f"{sum(c.failures for c in clients) - failed_before} failed attempts; "
          f"RSS {h.rss_mib(realtime.pids):.0f} MiB; load {h.loadavg()}")
    for c in clients:
        c.task.cancel()


def uvicorn_worker(pid):
    """Whether this process of the realtime entry's group is one of uvicorn's (spawned) servers."""
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        return b"spawn_main" in cmdline.read()


def alive(pid):
    """Whether the process runs (an exited child not yet reaped by its parent does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def wait_for_all(clients, title, timeout, since=None):
    started = since or time.perf_counter()
    deadline = started + timeout
    while time.perf_counter() < deadline:
        count = sum(1 for c in clients if title in c.arrivals)
        if count == len(clients):
            break
        await asyncio.sleep(0.1)
    count = sum(1 for c in clients if title in c.arrivals)
    last = max((c.arrivals[title] for c in clients if title in c.arrivals), default=started)
    return count, last - started


def run(coroutine):
    """On uvloop, as uvicorn runs the realtime process: the 10,000 clients share its two cores."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["latency", "connections"])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="latency: seconds of load first, not counted")
    parser.add_argument("--clients", type=int, default=None, help="latency: 200; connections: 10000")
    parser.add_argument("--broadcast-timeout", type=float, default=300.0, help="0 skips the API broadcast")
    parser.add_argument("--reconnect-timeout", type=float, default=120.0)
    parser.add_argument("--restart", choices=["full", "rolling"], default="full",
                        help="full: stop and start the realtime entry; rolling: SIGHUP to uvicorn's supervisor "
                             "(REALTIME_WORKERS >= 2), which replaces its processes one at a time")
    parser.add_argument("--worker-niceness", default=None,
                        help="the dispatch and inapp workers' --niceness (default: the Procfile's, 10)")
    args = parser.parse_args()
    args.clients = args.clients or (200 if args.mode == "latency" else 10000)
    limit = raise_file_limit()
    h.header(f"realtime {args.mode}", clients=args.clients, rate=args.rate, seconds=args.seconds, nofile=limit, restart=args.restart,
             realtime_workers=os.environ.get("REALTIME_WORKERS", "1"),
             worker_niceness=args.worker_niceness or "the Procfile's")

    h.ensure_database()
    h.reset_database()
    h.reset_redis()
    usernames = h.create_users(args.clients, email=False)
    key = h.issue_api_key()
    client = signing_client()
    web_port, ws_port = h.free_port(), h.free_port()
    web, realtime = h.web(web_port), h.web(ws_port, "realtime")
    processes = [web, realtime, h.worker("dispatch", niceness=args.worker_niceness),
                 *h.workers("inapp", niceness=args.worker_niceness)]
    for process in processes:
        process.start(ready=h.WEB_READY.get(process.name, " ready."))
    print(f"processes: {h.describe(processes)}")
    sys.stdout.flush()
    api_url = f"http://127.0.0.1:{web_port}/api/notifications/"
    ws_url = f"ws://127.0.0.1:{ws_port}/ws/notifications/"
    if args.mode == "latency":
        breakdown(run(latency(args, api_url, ws_url, key, client, usernames, processes)))
    else:
        from django.contrib.auth import get_user_model

        ids = dict(get_user_model().objects.filter(username__in=usernames).values_list("username", "id"))
        run(connections(args, api_url, ws_url, key, client, usernames, realtime, ids))
    h.stop_all()


if __name__ == "__main__":
    main()
