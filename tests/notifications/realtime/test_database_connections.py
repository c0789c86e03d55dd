"""The realtime process pools its Postgres connections (config/asgi.py): Django's persistent
connections would leak under ASGI, one per request thread, until the collector freed them."""

import os

import pytest
import requests
from websockets.sync.client import connect as ws_connect

from tests.support.workers import AsgiServerProcess

pytestmark = pytest.mark.django_db(transaction=True)

POSTGRES_PORT = 5432


def postgres_connections_of(pid):
    """How many TCP connections process `pid` holds open to Postgres' port."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                remote_port, state, inode = int(fields[2].rsplit(":", 1)[1], 16), fields[3], fields[9]
                if remote_port == POSTGRES_PORT and state == "01" and inode in inodes:  # 01: established
                    count += 1
    return count


@pytest.fixture
def server(worker_env, tmp_path):
    asgi = AsgiServerProcess(worker_env, log_dir=tmp_path, name="asgi-pool").start()
    yield asgi
    asgi.stop()


def test_many_requests_and_handshakes_hold_at_most_the_pool(server, shop, token_for, make_user):
    make_user("ada")
    headers = {"Authorization": f"Bearer {token_for('ada')}"}
    for _ in range(40):  # each request runs in a thread of its own
        answer = requests.get(f"{server.url}/api/me/profile/", headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
    for _ in range(20):
        with ws_connect(server.ws_url, additional_headers=headers, open_timeout=15) as ws:
            ws.recv(timeout=10)
    assert 1 <= postgres_connections_of(server.process.pid) <= 8  # DATABASE_POOL_MAX_SIZE's default here
