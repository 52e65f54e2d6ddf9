"""The models' JSON, read and written, with 1,000 services and their tasks: what Go's key matching
and ``omitempty`` cost (docs/api.md, "How JSON is read and written").

    .venv/bin/python benchmarks/models_json.py [--services 1000] [--history 2] [--rounds 60]

No server, no lab: the store of ``benchmarks/api.py`` (``fill``: 1000 replicated services, each
with its running task and ``--history`` shut-down ones, on 10 nodes), then, in this process, the
CPU time (``time.process_time``, the fastest of ``--rounds`` rounds, so that other work on the
machine counts as little as it can) of:

- writing every task as ``GET /tasks`` does (``shapes.task_json``) and every service as
  ``GET /services`` does (``shapes.service_json``);
- reading every service's spec back from the API's JSON (``ServiceSpec.model_validate``), with
  its keys as written (Go's names) and with the commonest ones in lower camel case (the case-
  insensitive match's path);
- reading every task back from its stored JSON (``Task.model_validate``: what a store load and
  a worker's assignments do).

Run it on two checkouts to compare them; the figures are printed only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.api import fill
from swarmlet.manager.api.shapes import service_json, task_json
from swarmlet.models import Service, ServiceSpec, Task

_LOWER = ("TaskTemplate", "ContainerSpec", "Image", "Mode", "Replicated", "Replicas", "Name")


def fastest(work: Callable[[], Any], rounds: int) -> float:
    """The least CPU time of ``rounds`` runs, in milliseconds."""
    times = []
    for _ in range(rounds):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return min(times) * 1000


def lower_camel(text: str) -> str:
    for key in _LOWER:
        text = text.replace(f'"{key}"', f'"{key[0].lower()}{key[1:]}"')
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--history", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    store = asyncio.run(fill(args.services, args.history, 10)).store
    services, tasks = store.all(Service), store.all(Task)
    specs = [service.spec.to_api() for service in services]
    lower = [json.loads(lower_camel(json.dumps(spec))) for spec in specs]
    stored = [json.loads(task.model_dump_json(by_alias=True, exclude_none=True)) for task in tasks]
    rounds = args.rounds
    figures = {
        f"write {len(tasks)} tasks (GET /tasks)": fastest(
            lambda: [task_json(task, {}) for task in tasks], rounds
        ),
        f"write {len(services)} services (GET /services)": fastest(
            lambda: [service_json(service) for service in services], rounds
        ),
        f"read {len(specs)} specs, Go's names": fastest(
            lambda: [ServiceSpec.model_validate(spec) for spec in specs], rounds // 2
        ),
        f"read {len(lower)} specs, lower camel case": fastest(
            lambda: [ServiceSpec.model_validate(spec) for spec in lower], rounds // 2
        ),
        f"read {len(stored)} stored tasks": fastest(
            lambda: [Task.model_validate(task) for task in stored], max(rounds // 6, 3)
        ),
    }
    for what, ms in figures.items():
        print(f"{what:<45} {ms:8.1f} ms CPU")


if __name__ == "__main__":
    main()
