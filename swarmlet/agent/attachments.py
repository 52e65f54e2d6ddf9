"""The host's side of network attachments: a plain container's place on an attachable overlay
network (``docker run --network``), asked of the manager, given back, and listed.

Each call is one HTTPS request to the manager's port (``ATTACHMENTS_PATH``) with the node's
certificate, read again for every call (it may have been renewed), trying each manager address
in turn until one answers. The manager's answer is final: only an address that cannot be
reached moves on to the next. Its refusals become swarmlet's errors, the manager's text their
message:

- ``NotFound`` (404): ``network NET not found``, ``attachment ID not found``;
- ``Forbidden`` (403): ``network NET not manually attachable``, another node's attachment, or
  a node no longer in the swarm;
- ``InvalidSpec``: any other 4xx (a malformed request, an ambiguous network prefix);
- ``Unavailable``: no address within the manager's 20 s (``attaching to network failed, make
  sure your network options are correct and check manager logs: ...``), any other 5xx, or no
  manager reachable.

``engine_message`` words an attach's error as Docker's engine shows it to the user.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp

from swarmlet.errors import Forbidden, InvalidSpec, NotFound, SwarmletError, Unavailable
from swarmlet.pki import Credentials
from swarmlet.pki.tls import MANAGER_NAME, client_context
from swarmlet.protocol import ATTACHMENTS_PATH, AttachmentInfo, AttachRequest

log = logging.getLogger(__name__)

# The manager waits up to 20 s for an address (moby's swarmRequestTimeout): longer than that.
TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5)

# How a gRPC client words the codes SwarmKit's resource allocator answers with.
_GRPC_CODES: tuple[tuple[type[SwarmletError], str], ...] = (
    (NotFound, "NotFound"),
    (Forbidden, "PermissionDenied"),
    (InvalidSpec, "InvalidArgument"),
)


async def attach(
    credentials: Credentials,
    manager_addrs: Sequence[str],
    network: str,
    container_id: str,
    *,
    name: str = "",
    aliases: Sequence[str] = (),
) -> AttachmentInfo:
    """The container's attachment to ``network`` (its ID, name or an ID prefix), with its
    address: a new one, or the one this node already has for the same container and network.
    """
    body = AttachRequest(target=network, container_id=container_id, name=name, aliases=[*aliases])
    answer = await _call(credentials, manager_addrs, "POST", ATTACHMENTS_PATH, body.to_api())
    return AttachmentInfo.model_validate(answer)


async def detach(
    credentials: Credentials, manager_addrs: Sequence[str], attachment_id: str
) -> None:
    """Give the attachment back: its address is free again."""
    await _call(credentials, manager_addrs, "DELETE", f"{ATTACHMENTS_PATH}/{attachment_id}")


async def list_attachments(
    credentials: Credentials, manager_addrs: Sequence[str]
) -> list[AttachmentInfo]:
    """This node's attachments, each with its container's ID (after a restart, the host drops
    those of containers that are gone)."""
    answer = await _call(credentials, manager_addrs, "GET", ATTACHMENTS_PATH)
    if not isinstance(answer, list):
        raise Unavailable(f"unexpected answer from the manager: {answer!r}")
    return [AttachmentInfo.model_validate(item) for item in answer]


def engine_message(network: str, error: SwarmletError) -> str:
    """What Docker's engine says when a container cannot attach to ``network``: a refusal as
    moby's ``Could not attach to network NET: rpc error: code = ... desc = ...``; a timeout
    (or no manager) as it came."""
    for kind, code in _GRPC_CODES:
        if isinstance(error, kind):
            desc = f"rpc error: code = {code} desc = {error.message}"
            return f"Could not attach to network {network}: {desc}"
    return error.message


async def _call(
    credentials: Credentials,
    manager_addrs: Sequence[str],
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
) -> Any:
    """The JSON answer of the first manager that answers (None for an empty one)."""
    errors = []
    for addr in manager_addrs:
        tls = client_context(credentials.trust(), credentials)
        try:
            async with (
                aiohttp.ClientSession(timeout=TIMEOUT) as http,
                http.request(
                    method,
                    f"https://{addr}{path}",
                    json=body,
                    ssl=tls,
                    server_hostname=MANAGER_NAME,
                ) as response,
            ):
                status, text = response.status, await response.text()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            errors.append(f"{addr}: {exc or type(exc).__name__}")
            continue
        return _answer(status, text)
    raise Unavailable("could not reach a manager: " + "; ".join(errors or ["none known"]))


def _answer(status: int, text: str) -> Any:
    if 200 <= status < 300:
        try:
            return json.loads(text) if text else None
        except ValueError as exc:
            raise Unavailable(f"unexpected answer from the manager: {text[:200]!r}") from exc
    try:
        message = str(json.loads(text)["message"])
    except (ValueError, KeyError, TypeError):
        message = text or f"status {status}"
    if status == 404:
        raise NotFound(message)
    if status == 403:
        raise Forbidden(message)
    if 400 <= status < 500:
        raise InvalidSpec(message)
    raise Unavailable(message)
