"""The realtime process's garbage collector: startup objects frozen, young objects collected every
NOTIFY_WS_GC_THRESHOLD allocations (config/asgi.py says why)."""

from tests.support.collector import collector_after

ASGI_PROCESS = "import config.asgi"


def test_the_asgi_process_freezes_its_startup_objects_and_collects_young_ones_less_often():
    threshold, frozen = collector_after(ASGI_PROCESS)
    assert threshold == (200000, 10, 10)
    assert frozen > 10000  # Django, the app and the channel layer's modules


def test_the_young_generation_threshold_is_a_setting():
    threshold, _frozen = collector_after(ASGI_PROCESS, NOTIFY_WS_GC_THRESHOLD="700")
    assert threshold == (700, 10, 10)
