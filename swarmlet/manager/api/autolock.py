"""Autolock: /swarm/unlock, /swarm/unlockkey, and the unlock key's changes that an init or an
update of the swarm's spec asks for (``EncryptionConfig.AutoLockManagers``,
``rotateManagerUnlockKey``). The key file itself lives with the daemon, behind SwarmControl.
"""

from __future__ import annotations

from aiohttp import web

from swarmlet.errors import Conflict, Unavailable
from swarmlet.manager.api.common import (
    control_of,
    json_response,
    not_manager_message,
    read_json_object,
    store_of,
)
from swarmlet.manager.api.control import LocalNodeState, SwarmControl
from swarmlet.models import ClusterSpec, Model

# daemon/cluster errors.go: notLockedError, a Conflict (409).
NOT_LOCKED = "swarm is not locked"


class UnlockBody(Model):
    unlock_key: str = ""


async def unlock(request: web.Request) -> web.Response:
    """POST /swarm/unlock, as daemon/cluster's UnlockSwarm: 409 on an active manager, the
    state's 503 when not a locked manager; then the control says whether the key opens."""
    body = UnlockBody.from_api(await read_json_object(request))
    control = control_of(request)
    state = control.state
    if state is LocalNodeState.ACTIVE and control.store is not None:
        raise Conflict(NOT_LOCKED)
    if state is not LocalNodeState.LOCKED:
        raise Unavailable(not_manager_message(state))
    await control.unlock(body.unlock_key)
    return web.Response()


async def unlock_key(request: web.Request) -> web.Response:
    """GET /swarm/unlockkey: the key, or '' when autolock is off (the CLI then says "no
    unlock key is set"). Only an active manager answers, like every manager endpoint."""
    store_of(request)
    return json_response({"UnlockKey": control_of(request).unlock_key()})


async def apply_autolock(control: SwarmControl, spec: ClusterSpec, rotate: bool) -> None:
    """After a committed init or update: seal, unseal or re-key the key file when the spec's
    autolock differs from the daemon's, or a rotation is asked with autolock on (SwarmKit's
    controlapi ignores a rotation without autolock)."""
    enabled = spec.encryption_config.auto_lock_managers
    if enabled != bool(control.unlock_key()) or (enabled and rotate):
        await control.set_autolock(enabled, rotate)
