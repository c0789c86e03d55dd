"""Celery workers' garbage collector: what they loaded is frozen, young objects are collected every
NOTIFY_WORKER_GC_THRESHOLD allocations (config/celery.py says why)."""

from tests.support.collector import collector_after
from tests.support.workers import WorkerProcess

# What a worker runs as it starts, before its pool: Celery's worker_init signal.
WORKER_INIT = ("import config.celery; from celery import signals; "
               "signals.worker_init.send(sender=type('Worker', (), {'options': {}})())")


def test_a_worker_freezes_what_it_loaded_and_collects_young_objects_less_often():
    threshold, frozen = collector_after(WORKER_INIT)
    assert threshold == (50000, 10, 10)
    assert frozen > 10000  # Django, Celery and the app's modules


def test_the_threshold_is_a_setting_and_zero_leaves_python_s_collector_alone():
    assert collector_after(WORKER_INIT, NOTIFY_WORKER_GC_THRESHOLD="20000")[0] == (20000, 10, 10)
    assert collector_after(WORKER_INIT, NOTIFY_WORKER_GC_THRESHOLD="0") == ((700, 10, 10), 0)


def test_a_running_worker_says_so_in_its_log(worker_env, tmp_path):
    worker = WorkerProcess(worker_env, log_dir=tmp_path, name="collector").start()
    try:
        log = worker.log()
    finally:
        worker.stop()
    assert "collector: " in log and "objects frozen, young ones collected every 50000 allocations" in log
