"""The garbage collector, set for a process with a large heap that lives long.

A manager holds every object of the cluster for as long as it runs — 10,000 tasks are some
300,000 tracked objects — and makes new ones at a high rate (every change is a new immutable
copy; almost all of them are freed by reference counting, without the collector). With
Python's default thresholds the collector kept walking the whole store: full collections
several times a second during a burst, each of them a pause for every controller and
session, about a tenth of the manager's time at 10,000 tasks (benchmarks/scale.py). The
simulator of a thousand nodes (``swarmlet sim nodes``) is the same case.
"""

from __future__ import annotations

import gc

# A young collection after this many new container objects (Python's default: 700); a full
# one only after this many young collections of the middle generation (default: 10 and 10).
THRESHOLDS = (50_000, 20, 20)


def tune_for_a_long_lived_store() -> None:
    """Fewer young collections, and what exists now (the modules, the store as loaded) out of
    the collector's sight: it would never find garbage there."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
