"""An engine without containers, for benchmarks: tasks go through every state to RUNNING.

``SimulatedEngine`` is ``FakeEngine`` (the tests' in-memory engine) with three differences:
- every image can be pulled (a pull is instant; the first task of an image on a node still
  goes through the inspect → pull path, as on a real engine);
- a start takes ``Behaviour.start_latency`` seconds on the injected clock, spread by
  ``jitter``, and a ``failure_rate`` fraction of starts end with the process exiting at once
  with ``exit_code`` (the task then fails as a crashing container's does);
- a container keeps only what the agent reads back (its image, labels, stop signal and
  timeout), not the whole create request, so that a process can hold 10,000 of them.

A container otherwise "runs" until the agent stops or removes it. The randomness comes from a
``random.Random`` the caller seeds, so a run can be replayed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from swarmlet.agent.fake_engine import FakeEngine, FakeImage, normalize
from swarmlet.clock import Clock
from swarmlet.errors import InvalidSpec

ENGINE_VERSION = "swarmlet-sim"
DEFAULT_CPUS = 4
DEFAULT_MEMORY = 8 * 1024**3
# What a simulated container keeps of its create request: what the agent reads back.
_KEPT_CONFIG = ("Image", "Labels", "StopSignal", "StopTimeout")
_NO_LABELS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Behaviour:
    """How the simulated containers of an engine behave."""

    start_latency: float = 0.0  # seconds a start takes
    jitter: float = 0.0  # the latency varies by up to this fraction either way (0 to 1)
    failure_rate: float = 0.0  # the fraction of starts whose process exits at once (0 to 1)
    exit_code: int = 1  # how those processes exit

    def __post_init__(self) -> None:
        if self.start_latency < 0:
            raise InvalidSpec(f"start latency must not be negative: {self.start_latency}")
        if not 0 <= self.jitter <= 1:
            raise InvalidSpec(f"jitter must be between 0 and 1: {self.jitter}")
        if not 0 <= self.failure_rate <= 1:
            raise InvalidSpec(f"failure rate must be between 0 and 1: {self.failure_rate}")
        if self.exit_code == 0:
            raise InvalidSpec("a failed start exits non-zero: exit code must not be 0")


def start_delay(behaviour: Behaviour, rng: random.Random) -> float:
    """How long one start takes: the latency, moved by up to ``jitter`` of it either way."""
    if behaviour.start_latency == 0:
        return 0.0
    spread = rng.uniform(-behaviour.jitter, behaviour.jitter) if behaviour.jitter else 0.0
    return behaviour.start_latency * (1 + spread)


def start_fails(behaviour: Behaviour, rng: random.Random) -> bool:
    """Whether one start ends with the process exiting at once, non-zero."""
    return behaviour.failure_rate > 0 and rng.random() < behaviour.failure_rate


class SimulatedEngine(FakeEngine):
    """What an agent needs of an engine, in memory; see the module's docstring."""

    def __init__(
        self,
        behaviour: Behaviour = Behaviour(),
        clock: Clock | None = None,
        rng: random.Random | None = None,
        *,
        cpus: int = DEFAULT_CPUS,
        memory: int = DEFAULT_MEMORY,
        labels: Mapping[str, str] = _NO_LABELS,
    ) -> None:
        super().__init__(clock)
        self.behaviour = behaviour
        self._rng = rng or random.Random()
        # What /info says, and so the node's description: its resources and engine labels.
        self.info_data.update(
            NCPU=cpus,
            MemTotal=memory,
            ServerVersion=ENGINE_VERSION,
            Labels=[f"{key}={value}" for key, value in labels.items()],
        )
        self.started = 0  # starts that ran a process
        self.failed = 0  # of those, the ones whose process exited at once

    @property
    def running(self) -> int:
        """How many simulated processes run now."""
        return sum(1 for container in self.containers.values() if container.state == "running")

    async def pull_image(self, ref: str) -> None:
        self._maybe_fail("pull_image")
        # Any image exists; its processes run until they are stopped.
        self.images[normalize(ref)] = FakeImage()

    async def create_container(
        self, name: str, config: Mapping[str, Any], host_config: Mapping[str, Any]
    ) -> str:
        kept = {key: config[key] for key in _KEPT_CONFIG if key in config}
        return await super().create_container(name, kept, {})

    async def start_container(self, container_id: str) -> None:
        delay = start_delay(self.behaviour, self._rng)
        if delay > 0:
            await self.clock.sleep(delay)
        was_running = self.container(container_id).state == "running"
        await super().start_container(container_id)
        container = self.container(container_id)
        if was_running or container.state != "running":
            return
        self.started += 1
        if start_fails(self.behaviour, self._rng):
            self.failed += 1
            self._exit(container, self.behaviour.exit_code)
