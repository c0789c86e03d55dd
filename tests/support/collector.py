"""The garbage collector's settings of a freshly started process (config/asgi.py, config/celery.py)."""

import os
import subprocess
import sys

from tests.support.workers import ROOT

REPORT = "print(*gc.get_threshold(), gc.get_freeze_count())"


def collector_after(setup, **env):
    """((threshold0, threshold1, threshold2), objects frozen) once `setup` (Python code) ran in a new
    interpreter with `env` added to this one's environment."""
    answer = subprocess.run([sys.executable, "-c", f"import gc; {setup}; {REPORT}"], cwd=ROOT,
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stderr
    *threshold, frozen = map(int, answer.stdout.split())
    return tuple(threshold), frozen
