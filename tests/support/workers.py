"""Real Celery worker processes for integration tests."""

import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from config.celery import QUEUES

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    def __init__(self, env, log_dir, queues=QUEUES, concurrency=2, name="all", extra_args=()):
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.extra_args = list(extra_args)
        self.queues = queues
        self.concurrency = concurrency
        self.name = name
        self.log_path = Path(log_dir) / f"worker-{name}.log"
        self.process = None

    def start(self, timeout=60):
        return self.launch().wait_ready(timeout)

    def launch(self):
        """Start the process without waiting for it (several workers then boot side by side)."""
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "config", "worker",
                "-Q", ",".join(self.queues), "-c", str(self.concurrency), "-n", f"{self.name}-%h@test",
                "--without-gossip", "--without-mingle", "-l", "info", *self.extra_args,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    # The log line that says the process is up, and what to call it in errors.
    READY, KIND = " ready.", "worker"

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.READY in self.log():
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.KIND} exited early:\n{self.log()}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.KIND} not ready in {timeout}s:\n{self.log()}")

    @property
    def hostname(self):
        """Its node name (`-n`), the destination of a remote-control command meant for it alone:
        with a destination, a command returns as soon as that worker replies, not at its timeout."""
        return f"{self.name}-{socket.gethostname()}@test"

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log_file.close()


class BeatProcess(WorkerProcess):
    """A real `celery beat` with the project's scheduler, against the test database and broker."""

    READY, KIND = "beat started: holding", "beat"

    def __init__(self, env, log_dir, name="beat"):
        super().__init__(env, log_dir, queues=(), name=name)

    def start(self, timeout=60, wait_ready=True):
        self.launch()
        return self.wait_ready(timeout) if wait_ready else self

    def launch(self):
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "info",
             "-S", "notifications.clock.beat:SingleBeatScheduler", "--schedule", str(self.log_path) + ".db"],
            cwd=ROOT, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def procfile():
    """{entry name: its command line} of the Procfile."""
    return dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())


def procfile_exec(name):
    """The Procfile's `name` line for `bash -c`, as honcho runs it but with the shell replaced by
    the program (`exec` after the line's leading NAME=value assignments), so a signal reaches it."""
    words = procfile()[name].split()
    assignments = list(itertools.takewhile(lambda word: re.match(r"\w+=", word), words))
    return " ".join([*assignments, "exec", *words[len(assignments):]])


class AsgiServerProcess(WorkerProcess):
    """A real uvicorn serving config.asgi (HTTP and WebSocket) on a free port."""

    def __init__(self, env, log_dir, name="asgi", ping_interval=20.0, ping_timeout=20.0):
        super().__init__(env, log_dir, queues=(), name=name)
        self.port = free_port()
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}/ws/notifications/"

    def start(self, timeout=60):
        seen = len(self.log())  # a restart appends to the log: only what follows counts
        self.log_file = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--ws", "notifications.realtime.protocol:WebSocketProtocol",
             "--host", "127.0.0.1",
             "--port", str(self.port), "--ws-ping-interval", str(self.ping_interval),
             "--ws-ping-timeout", str(self.ping_timeout), "--ws-per-message-deflate", "false", "--log-level", "info"],
            cwd=ROOT, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "Uvicorn running on" in self.log()[seen:]:  # logged once the socket listens
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"ASGI server exited early:\n{self.log()}")
            time.sleep(0.1)
        raise RuntimeError(f"ASGI server not ready in {timeout}s:\n{self.log()}")


class WebServerProcess(AsgiServerProcess):
    """The Procfile's HTTP tier, run by its own `web` line: granian serving config.wsgi
    (WEB_CONCURRENCY processes x WEB_THREADS threads, pooled Postgres)."""

    def start(self, timeout=60):
        seen = len(self.log())
        self.log_file = open(self.log_path, "a")
        env = {**self.env, "WEB_PORT": str(self.port),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', os.environ['PATH'])}"}
        self.process = subprocess.Popen(
            ["bash", "-c", procfile_exec("web")], cwd=ROOT, env=env, stdout=self.log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        processes = int(env.get("WEB_CONCURRENCY", "2"))
        deadline = time.time() + timeout
        while time.time() < deadline:
            # granian logs it once a worker process has loaded the app
            if self.log()[seen:].count("Started worker-") >= processes:
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"web server exited early:\n{self.log()}")
            time.sleep(0.1)
        raise RuntimeError(f"web server not ready in {timeout}s:\n{self.log()}")
