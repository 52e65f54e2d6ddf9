"""Plain containers on the swarm's attachable overlay networks, on any node: `docker run
--network NET`, `docker create --network NET` and `docker network connect|disconnect NET CTR`.

As Swarm's daemon does, swarmletd asks the manager for the container's place on the network
(an attachment: its address) before the engine sees the request; the manager refuses a network
that is not attachable (Swarm's `Could not attach to network NET: rpc error: code =
PermissionDenied desc = network NET not manually attachable`, nothing made) or unknown. Then,
once this host has the network (the attachment puts it there), the request goes on to the
engine naming the engine's copy of the network (``swarmlet.agent.local_networks``) with that
address, and the host's network plugin plumbs the container like a task. The attachment goes
back when the engine removes the container (the host watches for it), or at `disconnect`.

Requests that name no swarm network, and every request while the node is in no swarm, pass
through unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from swarmlet.agent.attachments import engine_message
from swarmlet.api.proxy import ENGINE, Engine, stream_back
from swarmlet.errors import EngineError, Forbidden, NotFound, SwarmletError
from swarmlet.ids import new_id
from swarmlet.net.driver import NETWORK_OPTION

# The label that ties a container made here to its attachments (its ID is not known before the
# engine makes it); the host's network agent reads it back when the container is removed.
ATTACHMENT_KEY_LABEL = "com.swarmlet.attachment.key"
# The engine's own network modes, never a swarm network.
_BUILTIN = ("", "default", "bridge", "host", "none")


class Attached(Protocol):
    @property
    def network_id(self) -> str: ...

    @property
    def local_network(self) -> str:
        """The name of the engine's copy of the network."""
        ...

    @property
    def address(self) -> str:
        """The container's address on it (CIDR)."""
        ...

    @property
    def nameserver(self) -> str:
        """Where the swarm's names are answered for it (the host's address there)."""
        ...


class Attacher(Protocol):
    """The host's side (``swarmlet.agent.network.NetworkAgent``)."""

    async def attach_container(
        self, network: str, key: str, name: str, aliases: Sequence[str]
    ) -> Attached: ...

    async def detach_containers(
        self, keys: Iterable[str], network_id: str | None = None
    ) -> None: ...

    def local_network(self, ref: str) -> tuple[str, str] | None:
        """The engine's copy of this host's swarm network ``ref`` (ID, name or ID prefix) and
        the network's ID, or None."""
        ...


# The host's network agent while the node is in a swarm (None otherwise), asked per request.
ATTACHER: web.AppKey[Callable[[], Attacher | None]] = web.AppKey("attacher")


def _attacher(request: web.Request) -> Attacher | None:
    current = request.app.get(ATTACHER)
    return current() if current is not None else None


async def create_container(request: web.Request) -> web.StreamResponse:
    attacher = _attacher(request)
    engine = request.app[ENGINE]
    raw = await request.read()
    body = _json_object(raw)
    if attacher is None or body is None:
        return await _relay(request, engine, "/containers/create", raw)
    host_config = dict(body.get("HostConfig") or {})
    body["HostConfig"] = host_config
    networking = body.get("NetworkingConfig") or {}
    endpoints: dict[str, Any] = dict(networking.get("EndpointsConfig") or {})
    mode = str(host_config.get("NetworkMode") or "")
    named = [ref for ref in dict.fromkeys([mode, *endpoints]) if _maybe_swarm(ref)]
    swarm = {ref: target for ref in named if (target := await _swarm(engine, ref))}
    if not swarm:
        return await _relay(request, engine, "/containers/create", raw)

    key = new_id()
    name = request.query.get("name", "")
    attached = []
    try:
        for ref, target in swarm.items():
            aliases = (endpoints.get(ref) or {}).get("Aliases") or []
            attached.append((ref, await _attach(attacher, target, ref, key, name, aliases)))
    except SwarmletError:
        await attacher.detach_containers([key])
        raise
    for ref, place in attached:
        config = dict(endpoints.pop(ref, None) or {})
        config["IPAMConfig"] = {**(config.get("IPAMConfig") or {}), "IPv4Address": _ip(place)}
        endpoints[place.local_network] = config
        if mode == ref:
            host_config["NetworkMode"] = place.local_network
    body["NetworkingConfig"] = {**networking, "EndpointsConfig": endpoints}
    if not host_config.get("Dns"):
        # The engine's own DNS server in the container forwards what it does not know (the
        # swarm's names) there, as for a task.
        host_config["Dns"] = [attached[0][1].nameserver]
    body["Labels"] = {**(body.get("Labels") or {}), ATTACHMENT_KEY_LABEL: key}
    answer = await engine.send(request, "/containers/create", json.dumps(body).encode())
    if answer.status >= 300:
        await attacher.detach_containers([key])
    return await stream_back(request, answer)


@dataclass(frozen=True)
class _NetworkCall:
    """A `network connect` or `disconnect`: the network as the user named it, the body, and
    what to ask the manager for ('' when it is none of the swarm's, or no swarm)."""

    attacher: Attacher | None
    engine: Engine
    ref: str
    raw: bytes
    body: dict[str, Any] | None
    target: str

    async def relay(self, request: web.Request, verb: str) -> web.StreamResponse:
        return await _relay(request, self.engine, f"/networks/{self.ref}/{verb}", self.raw)


async def _network_call(request: web.Request) -> _NetworkCall:
    attacher, engine = _attacher(request), request.app[ENGINE]
    ref = request.match_info["id"]
    raw = await request.read()
    body = _json_object(raw)
    target = await _swarm(engine, ref) if attacher is not None and body is not None else ""
    return _NetworkCall(attacher, engine, ref, raw, body, target)


async def connect_network(request: web.Request) -> web.StreamResponse:
    call = await _network_call(request)
    if call.attacher is None or call.body is None or not call.target:
        return await call.relay(request, "connect")
    container = await _container(call.engine, str(call.body.get("Container") or ""))
    config = dict(call.body.get("EndpointConfig") or {})
    name = str(container.get("Name") or "").lstrip("/")
    aliases = config.get("Aliases") or []
    place = await _attach(call.attacher, call.target, call.ref, container["Id"], name, aliases)
    config["IPAMConfig"] = {**(config.get("IPAMConfig") or {}), "IPv4Address": _ip(place)}
    body = {**call.body, "EndpointConfig": config}
    path = f"/networks/{place.local_network}/connect"
    answer = await call.engine.send(request, path, json.dumps(body).encode())
    if answer.status >= 300:
        await call.attacher.detach_containers([container["Id"]], place.network_id)
    return await stream_back(request, answer)


async def disconnect_network(request: web.Request) -> web.StreamResponse:
    call = await _network_call(request)
    copy = call.attacher.local_network(call.target) if call.attacher and call.target else None
    if call.attacher is None or call.body is None or copy is None:
        return await call.relay(request, "disconnect")
    local_network, network_id = copy
    container = await _container(call.engine, str(call.body.get("Container") or ""))
    path = f"/networks/{local_network}/disconnect"
    answer = await call.engine.send(request, path, call.raw)
    if answer.status < 300:
        labels = (container.get("Config") or {}).get("Labels") or {}
        keys = [container["Id"], labels.get(ATTACHMENT_KEY_LABEL, "")]
        await call.attacher.detach_containers([k for k in keys if k], network_id)
    return await stream_back(request, answer)


async def local_containers(request: web.Request, network_id: str) -> dict[str, Any]:
    """The containers of this node on swarm network ``network_id``, as `docker network inspect`
    lists them (keyed by container ID): the engine's copy's."""
    attacher = _attacher(request)
    copy = attacher.local_network(network_id) if attacher is not None else None
    if copy is None:
        return {}
    try:
        local = await request.app[ENGINE].get_json(f"/networks/{copy[0]}")
    except EngineError:
        return {}
    containers = local.get("Containers") if isinstance(local, dict) else None
    return dict(containers) if isinstance(containers, dict) else {}


# Served by every node for its own engine, never forwarded to the leader.
ROUTES = (
    ("POST", "/containers/create", create_container),
    ("POST", "/networks/{id}/connect", connect_network),
    ("POST", "/networks/{id}/disconnect", disconnect_network),
)


# -- inside ---------------------------------------------------------------------------------


def _maybe_swarm(ref: str) -> bool:
    """Not one of the engine's own modes (``bridge``, ``none``, ``container:ID``...): the CLI
    names the default one in EndpointsConfig too."""
    return ref not in _BUILTIN and ":" not in ref


async def _swarm(engine: Engine, ref: str) -> str:
    """What to ask the manager for when ``ref`` may be a swarm network: the swarm network's ID
    when it is the engine's copy of one, ``ref`` itself when the engine does not know it (the
    manager says whether it exists), '' for one of the engine's own networks."""
    try:
        network = await engine.get_json(f"/networks/{ref}")
    except EngineError as exc:
        if exc.status == 404:
            return ref
        raise
    options = network.get("Options") or {} if isinstance(network, dict) else {}
    return str(options.get(NETWORK_OPTION) or "")


async def _attach(
    attacher: Attacher, target: str, ref: str, key: str, name: str, aliases: Sequence[str]
) -> Attached:
    try:
        return await attacher.attach_container(target, key, name, [str(a) for a in aliases])
    except NotFound:
        raise NotFound(f"network {ref} not found") from None
    except Forbidden as exc:
        raise Forbidden(engine_message(ref, exc)) from exc


async def _container(engine: Engine, ref: str) -> dict[str, Any]:
    found = await engine.get_json(f"/containers/{ref}/json")
    if not isinstance(found, dict) or "Id" not in found:
        raise NotFound(f"No such container: {ref}")
    return found


async def _relay(request: web.Request, engine: Engine, path: str, raw: bytes) -> web.StreamResponse:
    """The request as it came (its body already read), answered by the engine."""
    return await stream_back(request, await engine.send(request, path, raw))


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _ip(place: Attached) -> str:
    return place.address.partition("/")[0]
