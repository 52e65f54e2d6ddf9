"""The node's description, as the manager's scheduler sees it: read from the engine's /info."""

from __future__ import annotations

from collections.abc import Iterable

from swarmlet.agent.engine import Engine
from swarmlet.models import NodeDescription, Platform, Resources
from swarmlet.models.node import EngineDescription

NANO = 1_000_000_000


def engine_labels(pairs: Iterable[str]) -> dict[str, str]:
    """/info lists the engine's labels as ``key=value`` strings; a bare key has no value."""
    labels: dict[str, str] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        labels[key] = value
    return labels


def description_from_info(info: dict[str, object], hostname: str) -> NodeDescription:
    def text(key: str) -> str:
        value = info.get(key)
        return value if isinstance(value, str) else ""

    def number(key: str) -> int:
        value = info.get(key)
        return value if isinstance(value, int) else 0

    labels = info.get("Labels")
    return NodeDescription(
        hostname=hostname,
        # As the engine says it ("x86_64", "linux"), as Swarm's node inspect shows it.
        platform=Platform(architecture=text("Architecture"), os=text("OSType")),
        resources=Resources(nano_cpus=number("NCPU") * NANO, memory_bytes=number("MemTotal")),
        engine=EngineDescription(
            engine_version=text("ServerVersion"),
            labels=engine_labels(str(pair) for pair in labels) if isinstance(labels, list) else {},
        ),
    )


async def describe_node(engine: Engine, hostname: str) -> NodeDescription:
    return description_from_info(await engine.info(), hostname)
