"""Autolock: /swarm/unlock, and the unlock key's changes that an init or an update of the
swarm's spec asks for (``EncryptionConfig.AutoLockManagers``, ``rotateManagerUnlockKey``). The
key file itself lives with the daemon, behind SwarmControl; /swarm/unlockkey is the swarm's
(``swarmlet.manager.api.swarm``).
"""

from __future__ import annotations

from aiohttp import web

from swarmlet.api.common import control_of, not_manager_message, read_json_object
from swarmlet.api.control import LocalNodeState, SwarmControl
from swarmlet.errors import Conflict, Unavailable
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
    if state is LocalNodeState.ACTIVE and control.cluster.holds_store:
        raise Conflict(NOT_LOCKED)
    if state is not LocalNodeState.LOCKED:
        raise Unavailable(not_manager_message(state))
    await control.unlock(body.unlock_key)
    return web.Response()


async def apply_autolock(control: SwarmControl, spec: ClusterSpec, rotate: bool) -> None:
    """After a committed init or update: seal, unseal or re-key the key file when the spec's
    autolock differs from the daemon's, or a rotation is asked with autolock on (SwarmKit's
    controlapi ignores a rotation without autolock)."""
    enabled = spec.encryption_config.auto_lock_managers
    if enabled != bool(control.unlock_key()) or (enabled and rotate):
        await control.set_autolock(enabled, rotate)
