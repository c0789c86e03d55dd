"""Real Celery worker processes for integration tests."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from config.celery import QUEUES

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    def __init__(self, env, log_dir, queues=QUEUES, concurrency=2, name="all"):
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.queues = queues
        self.concurrency = concurrency
        self.name = name
        self.log_path = Path(log_dir) / f"worker-{name}.log"
        self.process = None

    def start(self, timeout=60):
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "config", "worker",
                "-Q", ",".join(self.queues), "-c", str(self.concurrency), "-n", f"{self.name}-%h@test",
                "--without-gossip", "--without-mingle", "-l", "info",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if " ready." in self.log():
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready in {timeout}s:\n{self.log()}")

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

    def __init__(self, env, log_dir, name="beat"):
        super().__init__(env, log_dir, queues=(), name=name)

    def start(self, timeout=60, wait_ready=True):
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "info",
             "-S", "notifications.clock.beat:SingleBeatScheduler", "--schedule", str(self.log_path) + ".db"],
            cwd=ROOT, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        if not wait_ready:
            return self
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "beat started: holding" in self.log():
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"beat exited early:\n{self.log()}")
            time.sleep(0.1)
        raise RuntimeError(f"beat not ticking in {timeout}s:\n{self.log()}")
