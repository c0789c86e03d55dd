"""What every benchmark shares: its own database and Redis db, the machine, real processes, timing.

A benchmark is a script (`python -m bench.<name>`), never part of the test suite. It prints
figures. It runs against its own Postgres database (`bench_notify`, created and migrated here)
and its own Redis database (9), empties both before it starts, and starts the service's real
processes from the Procfile (uvicorn, one Celery worker per queue) in their own process groups,
which it stops again on exit.
"""

import atexit
import fcntl
import os
import re
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = os.environ.get("BENCH_DB_NAME", "bench_notify")
BENCH_REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")

# Set before Django reads its settings, so this process and every child use the bench stores.
BENCH_ENV = {
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
    "CELERY_BROKER_URL": BENCH_REDIS,
    "REDIS_URL": BENCH_REDIS,
    "THROTTLE_REDIS_URL": BENCH_REDIS,
    "DJANGO_SETTINGS_MODULE": "config.settings",
    # The processes refuse the development fallback key (config/checks.py).
    "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
    "PYTHONUNBUFFERED": "1",
}
os.environ.update(BENCH_ENV)
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.db import connection  # noqa: E402

# One benchmark at a time: they share the bench database and Redis db, and would skew each other.
_LOCK = open(os.path.join(tempfile.gettempdir(), f"{BENCH_DB}.lock"), "w")
try:
    fcntl.flock(_LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    sys.exit(f"another benchmark holds {_LOCK.name}; run one at a time")

LOG_DIR = Path(tempfile.mkdtemp(prefix="bench-"))


# --- the machine and the command --------------------------------------------------------------
def machine():
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "nproc": os.cpu_count(),
        "load": load,
        "python": sys.version.split()[0],
        "commit": commit.stdout.strip() or "?",
    }


def header(title, **parameters):
    m = machine()
    print(f"== {title}")
    print(f"command: {shlex.join(['python', '-m', f'bench.{Path(sys.argv[0]).stem}', *sys.argv[1:]])}")
    print(f"machine: nproc={m['nproc']} loadavg(1/5/15 min)={m['load']} python={m['python']} commit={m['commit']}")
    print(f"stores: database {BENCH_DB}, redis {BENCH_REDIS}; logs in {LOG_DIR}")
    if PROCFILE != ROOT / "Procfile":
        print(f"processes from {PROCFILE} (BENCH_PROCFILE), not this checkout's Procfile")
    if parameters:
        print("parameters: " + ", ".join(f"{k}={v}" for k, v in parameters.items()))
    sys.stdout.flush()


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# --- the stores --------------------------------------------------------------------------------
def ensure_database():
    """Create and migrate bench_notify if needed (the only database this code touches)."""
    exists = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc",
         f"SELECT 1 FROM pg_database WHERE datname='{BENCH_DB}'"],
        capture_output=True, text=True,
    )
    if "1" not in exists.stdout:
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", BENCH_DB], check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)


TABLES_TO_EMPTY = [
    "auth_user", "notifications_notification", "notifications_delivery", "notifications_deliveryattempt",
    "notifications_broadcast", "notifications_broadcastchunk", "notifications_digest",
    "notifications_escalation", "notifications_idempotencyrecord", "notifications_resend",
    "notifications_providerevent", "notifications_apiclient",
]


def reset_database():
    """Empty the bench database's users and everything sent (categories and templates stay)."""
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(TABLES_TO_EMPTY)} RESTART IDENTITY CASCADE")
    connection.close()


def broker():
    return redis.Redis.from_url(BENCH_REDIS)


def reset_redis():
    """FLUSHDB on the bench Redis database only (never another db, never FLUSHALL)."""
    broker().flushdb()


def vacuum_analyze():
    with connection.cursor() as cursor:
        for table in ("notifications_notification", "notifications_delivery", "notifications_deliveryattempt",
                      "auth_user"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def create_users(count, prefix="u", email=True):
    """`count` active users by COPY (unusable passwords); returns their usernames."""
    names = [f"{prefix}{i:07d}" for i in range(count)]
    with connection.cursor() as wrapper:
        with wrapper.cursor.copy(
            "COPY auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, "
            "is_active, date_joined) FROM STDIN"
        ) as copy:
            for name in names:
                copy.write_row(("!", False, name, "", "", f"{name}@example.com" if email else "", False, True,
                                "2026-01-01T00:00:00Z"))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE auth_user")
    return names


def issue_api_key(owner_name="bench-app"):
    """An app's key (send, read, broadcast, critical) whose recipients are every user made so far, granted
    as the tenancy rules want (notifications/tenancy.py), plus its owner."""
    from django.contrib.auth import get_user_model

    from notifications.models import ApiClient, RecipientGrant

    owner = get_user_model().objects.create_user(owner_name, email="")
    client, key = ApiClient.issue("bench", owner, scopes=["send", "read", "broadcast", "critical"])
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {RecipientGrant._meta.db_table} (client_id, user_id, created_at) "
                       "SELECT %s, id, now() FROM auth_user", [client.id])
    return key


def count(sql, *params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def rows(sql, *params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def queue_depth(queue):
    """Messages waiting in a Celery queue on the Redis transport (every priority sub-list)."""
    r = broker()
    return sum(r.llen(key) for key in r.scan_iter(match=f"{queue}*") if r.type(key) == b"list")


def deliveries_waiting(queue):
    """Deliveries waiting in a channel queue: one per one-delivery message, its ids' count per
    chunk message (engine/chunks.py). Reads every message (Redis transport, JSON bodies)."""
    import base64
    import json

    r = broker()
    total = 0
    for key in r.scan_iter(match=f"{queue}*"):
        if r.type(key) != b"list":
            continue
        for raw in r.lrange(key, 0, -1):
            envelope = json.loads(raw)
            args = json.loads(base64.b64decode(envelope["body"]))[0]
            total += len(args[0]) if args and isinstance(args[0], list) else 1
    return total


def unacked():
    """Messages reserved by workers and not yet acknowledged (acks_late: until the task ran)."""
    return broker().hlen("unacked")


# --- processes from the Procfile ----------------------------------------------------------------
PROCESSES = []


# BENCH_PROCFILE compares another process layout (e.g. an older Procfile) on the same code.
PROCFILE = Path(os.environ.get("BENCH_PROCFILE", ROOT / "Procfile"))


def procfile():
    entries = {}
    for line in PROCFILE.read_text().splitlines():
        if ":" in line and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def expand(command, env):
    """${NAME:-default} as a shell would, from `env`."""
    return re.sub(
        r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: env.get(m.group(1)) or (m.group(2) or ""), command
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """One Procfile entry, run as `python -m <program>` from the venv, in its own process group."""

    def __init__(self, name, env=None, extra_args=()):
        self.name = name
        self.env = {**os.environ, **BENCH_ENV, **(env or {})}
        command = expand(procfile()[name], self.env)
        argv = shlex.split(command)
        while re.match(r"\w+=", argv[0]):  # NAME=value before the program, as a shell takes it
            key, _, value = argv.pop(0).partition("=")
            self.env[key] = value
        self.argv = [sys.executable, "-m", argv[0], *argv[1:], *extra_args]
        self.shown = shlex.join([*argv, *extra_args])
        self.log_path = LOG_DIR / f"{name}.log"
        self.process = None

    def start(self, ready=" ready.", timeout=120):
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        PROCESSES.append(self)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if ready in self.log():
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.log()[-3000:]}")

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def pids(self):
        """The process and its children (a prefork worker's pool processes)."""
        out = subprocess.run(["pgrep", "-g", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def stop(self, timeout=30):
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
        self.log_file.close()


def workers(queue, concurrency=None, include_noop=True, niceness=None):
    """worker(queue), as many times as BENCH_WORKER_PROCESSES asks for it ("inapp=2,email=3"),
    each with a node name of its own: more processes of a queue's worker on one machine."""
    count = dict(part.split("=") for part in os.environ.get("BENCH_WORKER_PROCESSES", "").split(",") if "=" in part)
    processes = [worker(queue, concurrency, include_noop, niceness)]
    for number in range(2, int(count.get(queue, 1)) + 1):
        extra = worker(queue, concurrency, include_noop, niceness)
        extra.name, extra.log_path = f"{queue}.{number}", LOG_DIR / f"{queue}.{number}.log"
        extra.argv += ["-n", f"{queue}.{number}@%h"]
        extra.shown += f" -n {queue}.{number}@%h"
        processes.append(extra)
    return processes


def worker(queue, concurrency=None, include_noop=True, niceness=None):
    """The Procfile's worker for `queue`, which also knows the bench's no-op task; `niceness`
    overrides the Procfile's (WORKER_NICENESS)."""
    env = {f"{queue.upper()}_CONCURRENCY": str(concurrency)} if concurrency else {}
    if niceness is not None:
        env["WORKER_NICENESS"] = str(niceness)
    extra = ["-I", "bench.noop"] if include_noop else []
    return Process(queue, env=env, extra_args=extra)


WEB_READY = {"web": "Started worker-", "realtime": "Uvicorn running on"}


def start_procfile(procfile=None, env=None, timeout=300):
    """The whole Procfile under honcho, as `bin/serve` runs it, against the bench stores; returns
    the honcho process (its own process group) once every entry is up."""
    procfile = procfile or PROCFILE
    env = {**os.environ, **BENCH_ENV, "WEB_PORT": str(free_port()), "FLOWER_PORT": str(free_port()),
           "REALTIME_PORT": str(free_port()),
           "FLOWER_BASIC_AUTH": f"bench:{secrets.token_urlsafe(12)}",  # Flower refuses to start without it
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    log_path = LOG_DIR / "honcho.log"
    with open(log_path, "w") as log:
        honcho = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "-f", str(procfile), "-d", str(ROOT)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    honcho.env = env
    workers = sum(1 for line in Path(procfile).read_text().splitlines() if " worker " in line)

    def up():
        text = log_path.read_text(errors="replace")
        if honcho.poll() is not None:
            raise RuntimeError(f"honcho exited:\n{text[-3000:]}")
        return (text.count(" ready.") >= workers and "Booting worker" in text and "Uvicorn running on" in text
                and "Visit me at" in text and "beat started" in text)

    try:
        wait_until(up, timeout, interval=0.5, what="every Procfile process up")
    except BaseException:
        stop_procfile(honcho)
        raise
    return honcho


def stop_procfile(honcho):
    """SIGTERM to the process group, SIGKILL after 60 s."""
    try:
        os.killpg(honcho.pid, signal.SIGTERM)
        honcho.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(honcho.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def web(port, entry="web"):
    """The Procfile's HTTP tier (granian, WSGI) or, with entry="realtime", the ASGI server (uvicorn)."""
    return Process(entry, env={"WEB_PORT": str(port), "REALTIME_PORT": str(port)})


# The WSGI server the Procfile ran before granian, with the same shape (2 processes x 8 threads,
# the same pool and backlog), for comparisons: `pip install gunicorn==27.0.1` first.
GUNICORN_INSTALL = "gunicorn is not installed: pip install gunicorn==27.0.1 (only the comparison uses it)"


def gunicorn(port):
    process = web(port)
    process.argv = [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", "2", "--threads", "8",
                    "--bind", f"127.0.0.1:{port}", "--backlog", "512", "--keep-alive", "5", "config.wsgi:application"]
    process.shown = shlex.join(process.argv[2:])
    process.name = "gunicorn"
    return process


WEB_READY["gunicorn"] = "Booting worker"


def stop_all():
    for process in reversed(PROCESSES):
        process.stop()
    PROCESSES.clear()


atexit.register(stop_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def describe(processes):
    return "; ".join(p.shown for p in processes)


# --- waiting and figures ------------------------------------------------------------------------
def wait_until(condition, timeout, interval=0.25, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached in {timeout}s")


def rss_mib(pids):
    """Resident memory of these processes together, MiB (VmRSS: shared pages count in each)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (FileNotFoundError, StopIteration):
            pass
    return total / 1024


def cpu_seconds(pids):
    """CPU time (user + system) these processes have used so far, seconds."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # exited meanwhile
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def steal_seconds():
    """CPU time the hypervisor gave other guests while this machine's processes were ready to run
    (all cores, seconds so far): the part of a shared machine's noise that shows."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK")


def postgres_pids():
    """Every process of the local Postgres server (its backends serve the processes measured)."""
    out = subprocess.run(["pgrep", "-u", "postgres"], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def redis_pids():
    """The local Redis server's processes."""
    out = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


class CpuMeter:
    """CPU used by each named group of processes since the meter was made: `{name: pids}`, where
    pids is a function returning the group's processes now. A process that starts later (a
    prefork child, a Postgres backend) counts from its start; one that exits counts up to the last
    `sample()` that saw it, so call `sample()` while waiting when processes come and go."""

    def __init__(self, groups):
        self.groups = groups
        self.start, self.last = {}, {}
        for name, pids in groups.items():
            for pid in pids():
                self.start[name, pid] = self.last[name, pid] = cpu_seconds([pid])

    def sample(self):
        for name, pids in self.groups.items():
            for pid in pids():
                now = cpu_seconds([pid])
                if (name, pid) in self.last and now < self.last[name, pid]:  # the pid was reused
                    self.start[name, pid] -= self.last[name, pid]
                self.start.setdefault((name, pid), 0.0)
                self.last[name, pid] = now

    def used(self):
        self.sample()
        totals = dict.fromkeys(self.groups, 0.0)
        for (name, pid), now in self.last.items():
            totals[name] += now - self.start[name, pid]
        return totals

    def line(self):
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.used().items())


def percentile(values, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def median(values):
    return statistics.median(values) if values else float("nan")
