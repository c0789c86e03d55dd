"""Handshakes in batches. After a restart thousands of connections come back at once, and each asks
Postgres the same things: whose token is this, what did they miss, how many are unread. Asked one
connection at a time that is five round trips each (the pool's health check twice, the user, the
missed ones, the count) and the ORM's work for each; a Batch asks once for every connection waiting.
"""

import asyncio
from collections import deque

from channels.db import database_sync_to_async


def database_work(function):
    """`function` (sync, database) run off the event loop in the loop's bounded thread pool
    (min(32, cores + 4) threads, each call with a connection from the process's pool, see
    config/asgi.py), so that after a restart thousands of handshakes share several connections
    instead of queueing on the one thread of Channels' default (thread-sensitive)
    database_sync_to_async. Each connection
    awaits its own calls in order, so nothing of one connection runs in two threads at once."""
    return database_sync_to_async(function, thread_sensitive=False)


class Batch:
    """`await batch(item)` -> what `work` returned for it. `work(items)` (sync, database work, run
    in database_work's thread pool) returns one result per item, in order; an exception in a result's
    place is raised to that item's caller alone, one raised by `work` to the whole batch.

    The first caller starts a batch at once; callers arriving while it runs wait for the next one,
    so a quiet process answers as fast as before and a busy one asks once for many. A batch that
    starts within `gather` seconds of the last one's end waits that long for more callers first,
    unless `size` already wait. Without that, once a storm thins out, batches of a few items run
    back to back, each paying the ORM's compilation and a thread hop while holding the GIL the
    event loop needs to bring in the next handshakes, which then arrive fewer at a time (after a
    restart with 10,000 fast clients: half back in 3 s, the rest 10-17 s later). At most `size`
    items per batch and `parallel` batches at a time."""

    def __init__(self, work, size=500, parallel=1, gather=0.02):
        self.work, self.size, self.parallel, self.gather = database_work(work), size, parallel, gather
        self.loop, self.waiting, self.running, self.ended = None, deque(), 0, float("-inf")

    async def __call__(self, item):
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # a new event loop (tests start several): nothing carries over
            self.loop, self.waiting, self.running, self.ended = loop, deque(), 0, float("-inf")
        future = loop.create_future()
        self.waiting.append((item, future))
        if self.running < self.parallel:
            self.running += 1
            loop.create_task(self.drain())
        result = await future
        if isinstance(result, Exception):
            raise result
        return result

    async def drain(self):
        try:
            while self.waiting:
                if len(self.waiting) < self.size and self.loop.time() - self.ended < self.gather:
                    await asyncio.sleep(self.gather)
                taken = []
                while self.waiting and len(taken) < self.size:
                    item, future = self.waiting.popleft()
                    if not future.done():  # its caller is gone (the client hung up)
                        taken.append((item, future))
                if not taken:
                    continue
                try:
                    results = await self.work([item for item, _ in taken])
                except Exception as error:
                    results = [error] * len(taken)
                self.ended = self.loop.time()
                for (_, future), result in zip(taken, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self.running -= 1
