"""A write to etcd cancelled just as etcd answers ends cancelled: the cancellation is never
dropped for the answer (Python 3.11's ``asyncio.wait_for`` drops it, gh-86296, and a leader's
controller cancelled at the end of its term then ran on, writing:
``tests/e2e/test_failover.py``, the leader paused past its lease)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

import pytest

from swarmlet.manager.etcd.client import Compare, Delete, EtcdClient, Put, TxnResult
from swarmlet.manager.store import Action
from swarmlet.manager.store.backend import Write
from swarmlet.manager.store.etcd import EtcdBackend
from swarmlet.models import Service, ServiceSpec


class AnsweringEtcd:
    """Stands for the client's ``txn``: it answers when the test says."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[TxnResult] = asyncio.get_running_loop().create_future()
        self.asked = asyncio.Event()

    async def txn(self, compares: Sequence[Compare], success: Sequence[Put | Delete]) -> TxnResult:
        self.asked.set()
        return await self.answer


async def test_a_write_cancelled_as_etcd_answers_ends_cancelled() -> None:
    etcd = AnsweringEtcd()
    backend = EtcdBackend(cast(EtcdClient, etcd), None)
    service = Service(id="s1", spec=ServiceSpec(name="web"))
    writing = asyncio.create_task(
        backend.commit([Write(Action.CREATE, service, 0, None, "web")], fence=7)
    )
    await etcd.asked.wait()
    # etcd's answer and the cancellation (the term ended) in the same turn of the loop.
    etcd.answer.set_result(TxnResult(succeeded=True, revision=12))
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
