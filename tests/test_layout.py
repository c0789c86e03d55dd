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


def test_workers_give_way_to_the_web_tier_on_a_shared_machine():
    """The Procfile starts every worker at --niceness ${WORKER_NICENESS:-10}; compose gives every
    worker container less CPU weight than web and realtime (which keep Docker's 1024)."""
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ": " in line)
    workers = {name: command for name, command in procfile.items() if " worker " in command}
    assert workers and all("--niceness ${WORKER_NICENESS:-10}" in command for command in workers.values())
    assert all("--niceness" not in command for name, command in procfile.items() if name not in workers)
    services = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())["services"]
    for name, service in services.items():
        if "worker" in (service.get("command") or []):
            assert service.get("cpu_shares", 1024) < 1024, name
        elif name in ("web", "realtime"):
            assert service.get("cpu_shares", 1024) == 1024, name


def test_the_realtime_process_runs_the_project_websocket_protocol_everywhere():
    """The Procfile and compose run uvicorn with notifications.realtime.protocol (its connections'
    routine log lines dropped before a record is made), as the tests' ASGI server does."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    from notifications.realtime.protocol import WebSocketProtocol

    flag = ["--ws", "notifications.realtime.protocol:WebSocketProtocol"]
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ": " in line)
    realtime = procfile["realtime"].split()
    assert realtime[realtime.index("--ws"):realtime.index("--ws") + 2] == flag
    command = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())["services"]["realtime"]["command"]
    assert command[command.index("--ws"):command.index("--ws") + 2] == flag
    assert issubclass(WebSocketProtocol, WebSocketsSansIOProtocol)
