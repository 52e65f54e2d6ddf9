"""The manager runs its controllers for as long as a term of leadership lasts, and not
otherwise: a leader change starts and stops them all the same way."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from swarmlet.aio import cancel_and_wait
from swarmlet.manager.leadership import Lead, Term
from swarmlet.manager.manager import Manager
from swarmlet.manager.store import Op, Store
from swarmlet.models import Service, ServiceMode, Task
from tests.manager.dispatcher.loopback import Manager as Founded


class GrantedTerms:
    """Leadership the test hands out and takes back."""

    def __init__(self) -> None:
        self.granted = asyncio.Event()
        self.revoked = asyncio.Event()
        self.terms = 0

    async def run(self, lead: Lead) -> None:
        while True:
            await self.granted.wait()
            self.granted.clear()
            self.terms += 1
            leading = asyncio.create_task(lead(Term("m1", revision=self.terms)))
            await self.revoked.wait()
            self.revoked.clear()
            await cancel_and_wait(leading)


def web_service(replicas: int) -> Service:
    return Service.model_validate(
        {
            "ID": "svc1",
            "Spec": {
                "Name": "web",
                "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}},
                "Mode": {"Replicated": {"Replicas": replicas}},
            },
        }
    )


def scaled(current: Service, replicas: int) -> Service:
    mode = ServiceMode.model_validate({"Replicated": {"Replicas": replicas}})
    return current.replace(spec=current.spec.replace(mode=mode))


def tasks(store: Store) -> int:
    return len([task for task in store.all(Task) if task.service_id == "svc1"])


async def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    assert check()


async def test_the_controllers_run_only_while_this_manager_leads(tmp_path: Path) -> None:
    founded = await Founded.create(tmp_path)
    store = founded.store
    leadership = GrantedTerms()
    manager = Manager(
        store, founded.clock, "m1", founded.addr, founded.credentials, leadership=leadership
    )
    running = asyncio.create_task(manager.run())
    try:
        await store.commit([Op.create(web_service(2))])
        await asyncio.sleep(0.5)
        assert tasks(store) == 0  # no leader, no orchestrator

        leadership.granted.set()
        await eventually(lambda: tasks(store) == 2)

        leadership.revoked.set()
        await asyncio.sleep(0.1)
        current = store.get(Service, "svc1")
        await store.commit([Op.update(scaled(current, 4))])
        await asyncio.sleep(0.5)
        assert tasks(store) == 2  # the term ended: nothing acts on the change

        leadership.granted.set()
        await eventually(lambda: tasks(store) == 4)
        assert leadership.terms == 2
    finally:
        await cancel_and_wait(running)
