"""What a node remembers across restarts: who it is in which swarm (``node.json``).

The manager's store lives beside it (``store.db``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from swarmlet.models import NodeRole

NODE_FILE = "node.json"
STORE_FILE = "store.db"
# The store's data encryption key, sealed under the unlock key with autolock.
KEY_FILE = "store.key"


class NodeIdentity(BaseModel):
    model_config = ConfigDict(frozen=True)

    node_id: str
    role: NodeRole
    advertise_addr: str
    listen_addr: str
    manager_addrs: list[str]
    # Where the overlays' VXLAN traffic goes (``--data-path-addr``); '' is advertise_addr.
    data_path_addr: str = ""


def load_identity(state_dir: Path) -> NodeIdentity | None:
    path = state_dir / NODE_FILE
    if not path.exists():
        return None
    return NodeIdentity.model_validate_json(path.read_text())


def save_identity(state_dir: Path, identity: NodeIdentity) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / NODE_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(identity.model_dump_json(indent=2))
    temporary.replace(path)


def forget(state_dir: Path) -> None:
    """Leave the swarm: the identity, the store and the store's key go."""
    for name in (NODE_FILE, STORE_FILE, STORE_FILE + "-wal", STORE_FILE + "-shm", KEY_FILE):
        (state_dir / name).unlink(missing_ok=True)
