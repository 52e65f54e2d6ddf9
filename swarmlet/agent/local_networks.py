"""The engine's own copy of each overlay network this host takes part in.

A container joins a network of its engine; so every network of the host's ``NetworkState``
is also a network of the host's engine, of swarmlet's driver and IPAM driver (the plugin,
``swarmlet.net.driver``), with the swarm network's name and subnet and its ID in the options.
Tasks are created on them with the manager's addresses; the engine calls the plugin to plumb
them. ``plan_local_networks`` (pure) says which to make and which to remove; ``LocalNetworks``
lists, creates and removes them through the engine.

On an engine that serves several swarmletds (the lab's shared engine), each host's copies are
named ``<network>.<hostname>`` (``suffix``), so that no two hosts' copies share a name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from swarmlet.errors import EngineError, NotFound, SwarmletError
from swarmlet.net.driver import NETWORK_OPTION
from swarmlet.protocol import NetworkView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalNetwork:
    """One of the engine's networks of this host's plugin."""

    id: str  # the engine's
    name: str
    network_id: str  # the swarm's
    subnet: str


@dataclass(frozen=True)
class LocalNetworkPlan:
    create: tuple[NetworkView, ...]
    remove: tuple[LocalNetwork, ...]


def local_names(view: NetworkView, suffix: str) -> tuple[str, str]:
    """The copy's name, and the one it takes when that is still held by a copy the engine
    cannot remove yet (it miscounts a network's endpoints when many of its containers are
    removed at once, until it restarts)."""
    name = f"{view.name}{suffix}"
    return name, f"{name}-{view.id[:12]}"


def plan_local_networks(
    views: Sequence[NetworkView], existing: Sequence[LocalNetwork], suffix: str
) -> LocalNetworkPlan:
    """Make a copy of every view that has none as wanted (same swarm network and subnet, one
    of its two names); remove every copy no view wants (one left from another swarm or
    another name)."""
    wanted = {
        (view.id, name, view.subnet): view for view in views for name in local_names(view, suffix)
    }
    have = {(net.network_id, net.name, net.subnet): net for net in existing}
    copied = {wanted[key].id for key in have if key in wanted}
    return LocalNetworkPlan(
        create=tuple(view for view in views if view.id not in copied),
        remove=tuple(net for key, net in have.items() if key not in wanted),
    )


def create_request(view: NetworkView, plugin: str, name: str) -> dict[str, Any]:
    """The engine's ``POST /networks/create`` body for the copy of ``view``."""
    ours = {NETWORK_OPTION: view.id}
    return {
        "Name": name,
        "CheckDuplicate": True,
        "Driver": plugin,
        "Internal": view.internal,
        # What `docker run --network` may join is the swarm's to say (Attachable), not the
        # engine's: the plugin asks the manager.
        "Attachable": True,
        "IPAM": {"Driver": plugin, "Config": [{"Subnet": view.subnet}], "Options": ours},
        "Options": ours,
        "Labels": ours,
    }


class NetworkEngine(Protocol):
    """The engine calls this needs (``EngineClient`` has them)."""

    async def list_networks(self, filters: Mapping[str, list[str]]) -> list[dict[str, Any]]: ...

    async def create_network(self, body: Mapping[str, Any]) -> str: ...

    async def remove_network(self, network_id: str) -> None: ...


class LocalNetworks:
    """This host's copies on its engine, and which swarm network each stands for."""

    def __init__(self, engine: NetworkEngine, plugin: str, suffix: str) -> None:
        self._engine = engine
        self._plugin = plugin
        self._suffix = suffix
        # The engine's network ID → the copy.
        self._by_engine_id: dict[str, LocalNetwork] = {}
        # Whether the last sync left something undone: a copy it could not remove yet (its
        # containers were still being removed) or make (one of the same name going away).
        self.leftover = False

    def engine_id(self, network_id: str) -> str | None:
        """The engine's ID of the copy of swarm network ``network_id``, once it exists."""
        for local in self._by_engine_id.values():
            if local.network_id == network_id:
                return local.id
        return None

    def name_of(self, network_id: str) -> str:
        """The name of the engine's copy of swarm network ``network_id`` ('' while none)."""
        for local in self._by_engine_id.values():
            if local.network_id == network_id:
                return local.name
        return ""

    async def swarm_network(self, engine_network_id: str) -> str:
        local = self._by_engine_id.get(engine_network_id)
        if local is None:
            await self._refresh()
            local = self._by_engine_id.get(engine_network_id)
        if local is None:
            raise NotFound(f"engine network {engine_network_id[:12]} is not one of swarmlet's")
        return local.network_id

    async def sync(self, views: Sequence[NetworkView]) -> None:
        """Make the engine's copies match ``views``. What cannot be done yet (a copy still in
        use, a name still taken) is left for the caller to sync again a little later
        (``leftover``)."""
        existing = await self._refresh()
        plan = plan_local_networks(views, existing, self._suffix)
        self.leftover = False
        for local in plan.remove:
            try:
                await self._engine.remove_network(local.id)
            except SwarmletError as exc:
                log.info("engine network %s stays for now: %s", local.name, exc.message)
                self.leftover = True
                continue
            self._by_engine_id.pop(local.id, None)
        taken = {local.name for local in self._by_engine_id.values()}
        for view in plan.create:
            name = next((n for n in local_names(view, self._suffix) if n not in taken), "")
            if not name:
                self.leftover = True  # both names held by copies still going away
                continue
            body = create_request(view, self._plugin, name)
            try:
                engine_id = await self._engine.create_network(body)
            except EngineError as exc:
                # Its name taken by a network being removed (a network remade): next time.
                log.warning("engine network %s: %s", name, exc.message)
                self.leftover = True
                continue
            self._by_engine_id[engine_id] = LocalNetwork(engine_id, name, view.id, view.subnet)

    async def remove_all(self) -> None:
        """Leaving the swarm: every copy goes (the containers on them are gone already)."""
        for local in await self._refresh():
            try:
                await self._engine.remove_network(local.id)
            except SwarmletError as exc:
                log.warning("removing engine network %s: %s", local.name, exc.message)
        self._by_engine_id.clear()

    async def _refresh(self) -> list[LocalNetwork]:
        found = await self._engine.list_networks({"driver": [self._plugin]})
        existing = [_local(data) for data in found]
        self._by_engine_id = {local.id: local for local in existing}
        return existing


def _local(data: Mapping[str, Any]) -> LocalNetwork:
    options = data.get("Options") or {}
    configs = (data.get("IPAM") or {}).get("Config") or [{}]
    return LocalNetwork(
        id=str(data.get("Id", "")),
        name=str(data.get("Name", "")),
        network_id=str(options.get(NETWORK_OPTION, "")),
        subnet=str(configs[0].get("Subnet", "")),
    )
