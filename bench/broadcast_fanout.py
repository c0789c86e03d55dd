"""Times a broadcast to every user of a scratch database: the API's answer, then the fan-out
(planning the chunks and inserting every chunk's notifications), in this process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/notify_bench \
    CELERY_BROKER_URL=redis://127.0.0.1:6379/10 python bench/broadcast_fanout.py --users 100000

The database is created and migrated when missing; users are bulk-created up to --users. The
dispatch tasks each chunk enqueues go to CELERY_BROKER_URL and are purged at the end (no worker
runs them: this measures the fan-out alone). Prints numbers; asserts nothing.
"""

import argparse
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/notify_bench")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/10")


def ensure_database(url):
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=None)
    args = parser.parse_args()

    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from config.celery import app as celery_app
    from notifications.models import ApiClient, Notification
    from notifications.planning import audiences

    call_command("migrate", verbosity=0)
    if args.chunk_size:
        settings.NOTIFY_BROADCAST_CHUNK_SIZE = args.chunk_size
    have = User.objects.count()
    if have < args.users:
        started = time.perf_counter()
        User.objects.bulk_create(
            (User(username=f"bench-{n}", email=f"bench-{n}@example.com") for n in range(have, args.users)),
            batch_size=5000,
        )
        print(f"created {args.users - have} users in {time.perf_counter() - started:.1f} s")
    owner, _ = User.objects.get_or_create(username="bench-app")
    ApiClient.objects.filter(name="bench").delete()
    _client, key = ApiClient.issue("bench", owner, scopes=["send"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    body = {"to": {"all": True}, "category": "general", "title": "Bench", "channels": ["inapp"]}

    api.post("/api/notifications/", body, format="json")  # warm-up
    started = time.perf_counter()
    response = api.post("/api/notifications/", body, format="json")
    answered = time.perf_counter() - started
    broadcast_id = response.json()["broadcast_id"]

    started = time.perf_counter()
    numbers = audiences.plan(broadcast_id)
    planned = time.perf_counter() - started
    started = time.perf_counter()
    for number in numbers:
        audiences.fan_out_chunk(broadcast_id, number)
    fanned = time.perf_counter() - started
    created = Notification.objects.filter(broadcast_id=broadcast_id).count()

    print(f"recipients            {created}")
    print(f"API answer (202)      {answered * 1000:.1f} ms")
    print(f"plan ({len(numbers)} chunks)    {planned:.2f} s")
    print(f"fan-out inserts       {fanned:.2f} s  ({created / fanned:.0f} notifications/s)")
    with celery_app.connection_for_write() as connection:
        purged = connection.default_channel.queue_purge("dispatch") or 0
    print(f"purged {purged} dispatch messages")


if __name__ == "__main__":
    main()
