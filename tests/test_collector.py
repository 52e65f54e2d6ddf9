"""The garbage collector's settings for a process holding a large, long-lived heap."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
from swarmlet import collector
kept = [[i] for i in range(10_000)]  # objects alive at the call: out of the collector's sight
collector.tune_for_a_long_lived_store()
print(gc.get_threshold() == collector.THRESHOLDS, gc.get_freeze_count() >= len(kept))
"""


def test_a_tuned_process_collects_rarely_and_leaves_what_it_holds_alone() -> None:
    # In a process of its own: the settings are the whole process's.
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["True", "True"]
