"""The dispatcher's heartbeat checker writes through its term's fenced store (on a real etcd
member): a leader woken after a pause past its lease finds every node's last heartbeat old,
and its checker's timer is due before its election has seen the term end; that pass must mark
no node Down (``tests/e2e/test_failover.py``, the leader paused past its lease)."""

from __future__ import annotations

import asyncio

import pytest

from swarmlet.clock import FakeClock
from swarmlet.manager.dispatcher import Dispatcher
from swarmlet.manager.etcd.client import Compare, Delete, EtcdClient, Put
from swarmlet.manager.leadership import Term
from swarmlet.manager.store import Op, Store
from swarmlet.manager.store.backend import TermEnded
from swarmlet.manager.store.etcd import EtcdBackend
from swarmlet.models import Node, NodeDescription, NodeState, NodeStatus
from swarmlet.protocol import Register

HELLO = Register(description=NodeDescription(hostname="node2"), addr="192.168.254.12")


async def take_leader_key(client: EtcdClient, key: bytes, node_id: str) -> Term:
    made = await client.txn([Compare.absent(key)], [Put(key, node_id.encode())])
    assert made.succeeded
    return Term(node_id, revision=made.revision)


async def test_a_woken_leader_marks_no_node_down_once_its_term_is_over(
    etcd_client: EtcdClient, prefix: bytes
) -> None:
    backend = EtcdBackend(etcd_client, None, prefix)
    clock = FakeClock()
    store = await Store.open(backend, clock)
    try:
        node = Node(id="n1", status=NodeStatus(state=NodeState.UNKNOWN))
        await store.commit([Op.create(node)])
        dispatcher = Dispatcher(store, clock)
        await dispatcher.register("n1", HELLO)
        term = await take_leader_key(etcd_client, backend.leader_key, "m1")
        running = asyncio.create_task(dispatcher.run(store.fenced(term)))
        await asyncio.sleep(0)
        # Paused: the term ends meanwhile (the key's lease ran out, another manager leads).
        await etcd_client.txn([], [Delete(backend.leader_key)])
        await take_leader_key(etcd_client, backend.leader_key, "m2")
        # Woken, far past every node's grace: the checker's pass is refused, and ends the run.
        await clock.advance(60)
        with pytest.raises(ExceptionGroup) as ended:
            await asyncio.wait_for(running, 10)
        assert ended.group_contains(TermEnded)
        assert store.get(Node, "n1").status.state == NodeState.READY
        stored = await etcd_client.range(backend.object_key("Node", "n1"))
        assert b"down" not in stored.kvs[0].value
    finally:
        store.close()
