"""/swarm: inspect, init, join, leave, update (with join-token rotation)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from swarmlet.errors import NotFound, Unavailable
from swarmlet.ids import new_id
from swarmlet.manager.api.common import (
    bool_query,
    control_of,
    json_response,
    read_json_object,
    store_of,
    version_query,
)
from swarmlet.manager.api.control import InitRequest, JoinRequest
from swarmlet.manager.store import Op
from swarmlet.models import Cluster, ClusterSpec, Model, Version

_DEFAULT_LISTEN_ADDR = "0.0.0.0:2377"
_NO_TLS_INFO = {"TrustRoot": "", "CertIssuerSubject": "", "CertIssuerPublicKey": ""}


class InitBody(Model):
    listen_addr: str = ""
    advertise_addr: str = ""
    force_new_cluster: bool = False
    spec: dict[str, Any] | None = None


class JoinBody(Model):
    remote_addrs: list[str] = Field(default_factory=list)
    join_token: str = ""
    listen_addr: str = ""
    advertise_addr: str = ""


def swarm_json(cluster: Cluster, with_tokens: bool = True) -> dict[str, Any]:
    """The API's `Swarm` (GET /swarm) or, without the tokens, its `ClusterInfo` (/info)."""
    data = cluster.to_api()
    data.setdefault("TLSInfo", dict(_NO_TLS_INFO))
    data.setdefault("RootRotationInProgress", False)
    if not with_tokens:
        data.pop("JoinTokens", None)
    return data


def rotate_token(token: str) -> str:
    """A new secret for a join token; the `SWMTKN-1-<CA digest>-` part stays."""
    parts = token.split("-")
    if len(parts) != 4 or parts[0] != "SWMTKN":
        raise Unavailable("the swarm has no join token to rotate")
    return "-".join([*parts[:3], new_id()])


async def inspect(request: web.Request) -> web.Response:
    cluster = store_of(request).cluster()
    if cluster is None:
        raise NotFound("This node is not part of a swarm")
    return json_response(swarm_json(cluster))


async def init(request: web.Request) -> web.Response:
    body = InitBody.from_api(await read_json_object(request))
    spec = body.spec or {}
    ClusterSpec.from_api(spec)  # refuse a malformed spec here, naming the field
    node_id = await control_of(request).init(
        InitRequest(
            listen_addr=body.listen_addr or _DEFAULT_LISTEN_ADDR,
            advertise_addr=body.advertise_addr,
            force_new_cluster=body.force_new_cluster,
            spec=spec,
        )
    )
    return json_response(node_id)


async def join(request: web.Request) -> web.Response:
    body = JoinBody.from_api(await read_json_object(request))
    await control_of(request).join(
        JoinRequest(
            remote_addrs=tuple(body.remote_addrs),
            join_token=body.join_token,
            listen_addr=body.listen_addr or _DEFAULT_LISTEN_ADDR,
            advertise_addr=body.advertise_addr,
        )
    )
    return web.Response()


async def leave(request: web.Request) -> web.Response:
    await control_of(request).leave(bool_query(request, "force"))
    return web.Response()


async def update(request: web.Request) -> web.Response:
    store = store_of(request)
    version = version_query(request, "swarm")
    spec = ClusterSpec.from_api(await read_json_object(request))
    cluster = store.cluster()
    if cluster is None:
        raise NotFound("This node is not part of a swarm")
    tokens = cluster.join_tokens
    if bool_query(request, "rotateWorkerToken"):
        tokens = tokens.replace(worker=rotate_token(tokens.worker))
    if bool_query(request, "rotateManagerToken"):
        tokens = tokens.replace(manager=rotate_token(tokens.manager))
    updated = cluster.replace(spec=spec, join_tokens=tokens, version=Version(index=version))
    store.commit([Op.update(updated)])
    return web.Response()
