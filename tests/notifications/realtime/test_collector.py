"""The realtime process's garbage collector: startup objects frozen, young objects collected every
NOTIFY_WS_GC_THRESHOLD allocations (config/asgi.py says why)."""

import os
import subprocess
import sys

from tests.support.workers import ROOT

PROBE = "import gc, config.asgi; print(*gc.get_threshold(), gc.get_freeze_count())"


def collector_of_the_asgi_process(**env):
    answer = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stderr
    *threshold, frozen = map(int, answer.stdout.split())
    return tuple(threshold), frozen


def test_the_asgi_process_freezes_its_startup_objects_and_collects_young_ones_less_often():
    threshold, frozen = collector_of_the_asgi_process()
    assert threshold == (50000, 10, 10)
    assert frozen > 10000  # Django, the app and the channel layer's modules


def test_the_young_generation_threshold_is_a_setting():
    threshold, _frozen = collector_of_the_asgi_process(NOTIFY_WS_GC_THRESHOLD="700")
    assert threshold == (700, 10, 10)
