"""The channel registry is the one list of channels: everything per channel is derived from it,
and what runs the service (Procfile, docker/compose.yaml) has a worker for every queue."""

import re
from pathlib import Path

import yaml

from channels_delivery import registry
from channels_delivery.engine.tasks import DELIVERY_TASKS
from config.celery import QUEUES, app
from notifications.models import Channel

ROOT = Path(__file__).resolve().parent.parent


def queues_of(command):
    return set(command[command.index("-Q") + 1].split(",")) if "-Q" in command else set()


def test_channels_queues_routes_and_tasks_come_from_the_registry():
    assert list(Channel.values) == registry.NAMES
    assert set(QUEUES) == {"dispatch", "maintenance", *registry.NAMES}
    for entry in registry.CHANNELS:
        assert DELIVERY_TASKS[entry.name].name == entry.task_name
        assert app.amqp.router.route({}, entry.task_name)["queue"].name == entry.queue
        kit = registry.kit(entry.name)
        assert kit.name == entry.name and kit.providers and all(p.channel == entry.name for p in kit.providers)


def test_the_procfile_runs_a_worker_for_every_queue():
    commands = [line.split(":", 1)[1].split() for line in (ROOT / "Procfile").read_text().splitlines()
                if re.match(r"^\w+:", line)]
    served = set().union(*(queues_of(command) for command in commands if "worker" in command))
    assert served == set(QUEUES)


def test_compose_runs_a_worker_for_every_queue():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    commands = [service.get("command") or [] for service in compose["services"].values()]
    served = set().union(*(queues_of(command) for command in commands if "worker" in command))
    assert served == set(QUEUES)
