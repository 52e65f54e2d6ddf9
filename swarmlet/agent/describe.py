"""The node's description, as the manager's scheduler sees it: read from the engine's /info."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from swarmlet.agent.engine import Engine
from swarmlet.models import GenericResource, NodeDescription, Platform, Resources
from swarmlet.models.node import EngineDescription, PluginDescription

NANO = 1_000_000_000


def engine_labels(pairs: Iterable[str]) -> dict[str, str]:
    """/info lists the engine's labels as ``key=value`` strings; a bare key has no value."""
    labels: dict[str, str] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        labels[key] = value
    return labels


def engine_plugins(plugins: object) -> list[PluginDescription]:
    """/info's ``Plugins`` (``{"Log": [...], "Network": [...], "Volume": [...]}``) as Swarm's
    node description lists them: one entry per type and name, sorted by both."""
    if not isinstance(plugins, dict):
        return []
    return [
        PluginDescription(type=kind, name=name)
        for kind, names in sorted(plugins.items())
        if isinstance(names, list)
        for name in sorted({str(name) for name in names})
    ]


def description_from_info(
    info: dict[str, object], hostname: str, generic: Sequence[GenericResource] = ()
) -> NodeDescription:
    """The description; ``generic``: the resources the daemon advertises beyond CPUs and
    memory (``--node-generic-resource``, devices), as ``Resources.GenericResources``."""

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
        resources=Resources(
            nano_cpus=number("NCPU") * NANO,
            memory_bytes=number("MemTotal"),
            generic_resources=list(generic) or None,
        ),
        engine=EngineDescription(
            engine_version=text("ServerVersion"),
            labels=engine_labels(str(pair) for pair in labels) if isinstance(labels, list) else {},
            plugins=engine_plugins(info.get("Plugins")) or None,
        ),
    )


async def describe_node(
    engine: Engine, hostname: str, generic: Sequence[GenericResource] = ()
) -> NodeDescription:
    return description_from_info(await engine.info(), hostname, generic)
