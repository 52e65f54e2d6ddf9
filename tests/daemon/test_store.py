"""A manager's daemon loads its store (an SQLite file, sealed with the key file's key) before
it serves the Engine API: loading awaits, and no request may find the manager without it."""

from __future__ import annotations

from pathlib import Path

from swarmlet.api.backend import NO_CLUSTER
from swarmlet.api.control import LocalNodeState
from swarmlet.clock import FakeClock
from swarmlet.daemon import state as identity_file
from swarmlet.daemon.control import NodeControl
from swarmlet.ids import new_id
from swarmlet.manager.api.cluster import LocalCluster
from swarmlet.manager.store import Op, Store
from swarmlet.manager.store.encryption import (
    Cipher,
    create_key_file,
    new_unlock_key,
    parse_unlock_key,
    read_dek,
    rekey_key_file,
)
from swarmlet.manager.store.sqlite import SqliteBackend
from swarmlet.models import Cluster, NodeRole


def node_control(state_dir: Path) -> NodeControl:
    return NodeControl(
        state_dir=state_dir,
        engine=None,  # type: ignore[arg-type]
        engine_socket="/nowhere.sock",
        hostname="node1",
        clock=FakeClock(),
        container_labels={},
    )


async def a_manager(state_dir: Path) -> Cluster:
    """The state a manager leaves behind: its identity, its key file and its store, which
    holds a cluster (returned)."""
    identity_file.save_identity(
        state_dir,
        identity_file.NodeIdentity(
            node_id="node1id",
            role=NodeRole.MANAGER,
            advertise_addr="192.168.5.1",
            listen_addr="0.0.0.0:2377",
            manager_addrs=["192.168.5.1:2377"],
        ),
    )
    key_file = state_dir / identity_file.KEY_FILE
    create_key_file(key_file)
    backend = SqliteBackend(state_dir / identity_file.STORE_FILE, Cipher(read_dek(key_file)))
    store = await Store.open(backend, FakeClock())
    (cluster,) = await store.commit([Op.create(Cluster(id=new_id()))])
    store.close()
    assert isinstance(cluster, Cluster)
    return cluster


async def test_a_manager_has_its_store_loaded_once_opened(tmp_path: Path) -> None:
    cluster = await a_manager(tmp_path)
    control = node_control(tmp_path)
    assert control.store is None
    await control.open()
    try:
        assert control.state is LocalNodeState.ACTIVE
        assert control.store is not None
        assert control.store.cluster() == cluster
        assert control.store.revision == cluster.version.index
        # The API's swarm requests are answered from it.
        assert isinstance(control.cluster, LocalCluster)
        assert control.cluster.store is control.store
    finally:
        control.store.close()


async def test_an_autolocked_manager_stays_locked_without_its_store(tmp_path: Path) -> None:
    await a_manager(tmp_path)
    key_file = tmp_path / identity_file.KEY_FILE
    rekey_key_file(key_file, None, parse_unlock_key(new_unlock_key()))
    control = node_control(tmp_path)
    await control.open()
    assert control.state is LocalNodeState.LOCKED
    assert control.store is None
    assert control.cluster is NO_CLUSTER  # Swarm's "locked" to every swarm request


async def test_a_worker_opens_no_store(tmp_path: Path) -> None:
    control = node_control(tmp_path)
    await control.open()
    assert control.store is None
    assert not (tmp_path / identity_file.STORE_FILE).exists()
