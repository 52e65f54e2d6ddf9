"""/swarm (inspect), /swarm/update (with join-token and unlock-key rotation) and
/swarm/unlockkey: the swarm's own state, from the store. Init, join, leave and unlock are the
node's verbs (``swarmlet.api.swarm``, ``swarmlet.api.autolock``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from swarmlet.api.autolock import apply_autolock
from swarmlet.api.common import (
    bool_query,
    clock_of,
    control_of,
    json_response,
    min_cert_expiry_of,
    read_json_object,
    version_query,
)
from swarmlet.api.swarm import check_ca_config
from swarmlet.errors import InvalidSpec, NotFound, Unavailable
from swarmlet.manager.api.common import store_of
from swarmlet.manager.ca.rotation import start_rotation
from swarmlet.manager.store import Tx
from swarmlet.models import Cluster, ClusterSpec, RootCA, Version
from swarmlet.pki import JoinToken, tls_info

_NO_TLS_INFO = {"TrustRoot": "", "CertIssuerSubject": "", "CertIssuerPublicKey": ""}


def swarm_json(cluster: Cluster, with_tokens: bool = True) -> dict[str, Any]:
    """The API's `Swarm` (GET /swarm) or, without the tokens, its `ClusterInfo` (/info).

    The CA's key never leaves the store: only the root's TLSInfo is shown."""
    data = cluster.to_api()
    data.pop("RootCA", None)
    data["DefaultAddrPool"] = cluster.default_addr_pool  # null when none was given, as Go writes it
    data["TLSInfo"] = cluster_tls_info(cluster.root_ca)
    data["RootRotationInProgress"] = bool(cluster.root_ca.new_ca_cert)
    if not with_tokens:
        data.pop("JoinTokens", None)
    return data


def cluster_tls_info(root_ca: RootCA) -> dict[str, str]:
    """The root the swarm trusts, and who issues its certificates: during a rotation the new
    root does (what ``docker swarm ca --rotate`` waits for every node to report)."""
    if not root_ca.ca_cert:
        return dict(_NO_TLS_INFO)
    info = tls_info(root_ca.ca_cert)
    if root_ca.new_ca_cert:
        issuer = tls_info(root_ca.new_ca_cert)
        info = info.replace(
            cert_issuer_subject=issuer.cert_issuer_subject,
            cert_issuer_public_key=issuer.cert_issuer_public_key,
        )
    return info.to_api()


def check_update(current: ClusterSpec, spec: ClusterSpec) -> None:
    """What SwarmKit's UpdateCluster refuses."""
    if spec.name != current.name:
        raise InvalidSpec("modification of cluster name is not allowed")
    if spec.dispatcher.heartbeat_period < 0:
        raise InvalidSpec("heartbeat time period cannot be a negative duration")


def rotate_token(token: str) -> str:
    """A new secret for a join token; the `SWMTKN-1-<CA digest>-` part stays."""
    try:
        return str(JoinToken.parse(token).rotated())
    except InvalidSpec as exc:
        raise Unavailable("the swarm has no join token to rotate") from exc


async def inspect(request: web.Request) -> web.Response:
    cluster = store_of(request).cluster()
    if cluster is None:
        raise NotFound("This node is not part of a swarm")
    return json_response(swarm_json(cluster))


async def update(request: web.Request) -> web.Response:
    store = store_of(request)
    version = version_query(request, "swarm")
    spec = ClusterSpec.from_api(await read_json_object(request))
    min_cert_expiry = min_cert_expiry_of(request)
    now = clock_of(request).now()

    def write(tx: Tx) -> None:
        cluster = tx.cluster()
        if cluster is None:
            raise NotFound("This node is not part of a swarm")
        check_ca_config(spec, min_cert_expiry)
        check_update(cluster.spec, spec)
        root_ca = cluster.root_ca
        if spec.ca_config.force_rotate != cluster.spec.ca_config.force_rotate:
            if not root_ca.ca_cert:
                raise InvalidSpec("the swarm has no root CA to rotate")
            root_ca = start_rotation(root_ca, now)
        tokens = cluster.join_tokens
        if bool_query(request, "rotateWorkerToken"):
            tokens = tokens.replace(worker=rotate_token(tokens.worker))
        if bool_query(request, "rotateManagerToken"):
            tokens = tokens.replace(manager=rotate_token(tokens.manager))
        tx.update(
            cluster.replace(
                spec=spec, join_tokens=tokens, root_ca=root_ca, version=Version(index=version)
            )
        )

    await store.update(write)
    # After the commit, so a stale version changes no key.
    rotate_unlock_key = bool_query(request, "rotateManagerUnlockKey")
    await apply_autolock(control_of(request), spec, rotate=rotate_unlock_key)
    return web.Response()


async def unlock_key(request: web.Request) -> web.Response:
    """GET /swarm/unlockkey: the key, or '' when autolock is off (the CLI then says "no
    unlock key is set"). Only an active manager answers, like every manager endpoint."""
    store_of(request)
    return json_response({"UnlockKey": control_of(request).unlock_key()})
