"""Garbage-collector settings for long-running processes, applied once where each starts (the
realtime process in config/asgi.py, Celery workers in config/celery.py, the web's processes in
config/wsgi.py)."""

import gc


def freeze_startup(young_threshold=None):
    """Move what the process loaded out of the collector's sight, so a full collection scans only
    what the process allocates from now on; with `young_threshold`, collect young objects every
    that many allocations instead of Python's 700. Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    if young_threshold:
        gc.set_threshold(young_threshold, *gc.get_threshold()[1:])
    return gc.get_freeze_count()
