"""The beat scheduler: django-celery-beat's DatabaseScheduler that syncs the code's schedules at
start and refuses to run while another beat holds the Redis lock (two beats send every task twice)."""

import logging
import os
import socket
import time

import redis
from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler
from redis.exceptions import LockError, RedisError

from notifications.clock.schedules import sync_schedules

logger = logging.getLogger(__name__)

LOCK_KEY = "notify:beat:lock"


class BeatLock:
    def __init__(self, url=None, ttl=None):
        self.client = redis.Redis.from_url(url or settings.REDIS_URL, socket_timeout=5)
        self.ttl = ttl or settings.NOTIFY_BEAT_LOCK_TTL
        self.lock = self.client.lock(LOCK_KEY, timeout=self.ttl, thread_local=False)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"

    def acquire(self):
        return self.lock.acquire(blocking=False, token=self.owner)

    def refresh(self):
        """Extend the lock; False only when another beat holds it. Redis being away is no reason
        to stop the clock, and a flushed Redis gives the lock back to whoever asks first."""
        try:
            self.lock.reacquire()
            return True
        except LockError:
            return self.acquire()
        except RedisError as error:
            logger.warning("beat lock not refreshed, Redis unavailable: %s", error)
            return True

    def holder(self):
        value = self.client.get(LOCK_KEY)
        return value.decode() if value else None

    def release(self):
        try:
            self.lock.release()
        except (LockError, RedisError):
            pass


class SingleBeatScheduler(DatabaseScheduler):
    def setup_schedule(self):
        self.beat_lock = BeatLock()
        # A beat that crashed leaves its lock for up to its TTL: wait that long before giving up,
        # so a quick restart (or honcho, which stops everything when one process exits) is safe.
        deadline = time.monotonic() + settings.NOTIFY_BEAT_LOCK_WAIT
        while not self.beat_lock.acquire():
            if time.monotonic() >= deadline:
                logger.critical("another beat is running (%s holds %s); exiting", self.beat_lock.holder(), LOCK_KEY)
                raise SystemExit(1)
            logger.warning("beat lock held by %s; waiting for it to expire", self.beat_lock.holder())
            time.sleep(1)
        sync_schedules()
        super().setup_schedule()
        # Beat's own line per message sent is routine (CELERY_ROUTINE_LOG_LEVEL); this says it runs.
        logger.info("beat started: holding %s, %d periodic tasks", LOCK_KEY, len(self.schedule))

    def tick(self, *args, **kwargs):
        if not self.beat_lock.refresh():
            logger.critical("beat lock taken over by %s; exiting", self.beat_lock.holder())
            raise SystemExit(1)
        return super().tick(*args, **kwargs)

    def close(self):
        super().close()
        if getattr(self, "beat_lock", None) is not None:
            self.beat_lock.release()
