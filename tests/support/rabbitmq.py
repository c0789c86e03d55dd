"""RabbitMQ as the test broker: a vhost of our own, created if missing and emptied at start."""

import subprocess
from urllib.parse import unquote, urlsplit

from kombu import Connection, Queue

from config.celery import QUEUES


def vhost_of(url):
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def rabbitmqctl(*args):
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)


def fresh_vhost(url):
    vhost = vhost_of(url)
    try:
        with Connection(url, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:  # noqa: BLE001 - any failure here means the same thing
        if "access" not in str(error).lower() and "vhost" not in str(error).lower():
            raise RuntimeError(
                f"RabbitMQ does not answer at {url.split('@')[-1]}: {error}. Start it with "
                "`rabbitmq-server -detached` (bin/test-rabbitmq does) or test on Redis."
            ) from error
        user = urlsplit(url).username or "guest"
        for args in (("add_vhost", vhost), ("set_permissions", "-p", vhost, user, ".*", ".*", ".*")):
            result = rabbitmqctl(*args)
            if result.returncode != 0 and "already exists" not in result.stderr:
                raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr}") from error
    with Connection(url, connect_timeout=5) as connection:
        channel = connection.default_channel
        for name in QUEUES:
            queue = Queue(name)(channel)
            queue.declare()
            queue.purge()
