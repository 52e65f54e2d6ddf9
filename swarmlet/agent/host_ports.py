"""Ports published in ``mode=host``: bound on the task's own host only, as the container's own
port bindings (Swarm's executor does the same).

On the engine's default bridge (a task on no overlay) the engine binds them itself. On an
overlay, the engine hands them to its network driver, swarmlet's plugin, which forwards the
host's addresses to the task (``swarmlet/net/host_ports.py``). A port published as 0 gets one
the engine (or the plugin) chooses; the task's ``PortStatus`` says which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from swarmlet.models.service import EndpointSpec, PortConfig
from swarmlet.models.task import PortStatus


def host_mode_ports(endpoint_spec: EndpointSpec | None) -> list[PortConfig]:
    return endpoint_spec.host_mode_ports() if endpoint_spec is not None else []


def _key(port: PortConfig) -> str:
    return f"{port.target_port}/{port.protocol}"


def port_bindings(ports: Sequence[PortConfig]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The container's ``ExposedPorts`` and ``HostConfig.PortBindings`` for these ports."""
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in ports:
        exposed[_key(port)] = {}
        host_port = str(port.published_port) if port.published_port else ""
        bindings.setdefault(_key(port), []).append({"HostIp": "", "HostPort": host_port})
    return exposed, bindings


def port_status(
    ports: Sequence[PortConfig], bound: Mapping[str, Sequence[Mapping[str, Any]] | None]
) -> PortStatus | None:
    """What the task reports: each host-mode port with the host port it got (the engine's
    ``NetworkSettings.Ports``, for one published as 0)."""
    if not ports:
        return None
    reported = []
    for port in ports:
        published = port.published_port or 0
        if not published:
            for binding in bound.get(_key(port)) or ():
                if str(binding.get("HostPort", "")).isdigit():
                    published = int(binding["HostPort"])
                    break
        reported.append(port.replace(published_port=published))
    return PortStatus(ports=reported)
