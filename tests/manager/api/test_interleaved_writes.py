"""A handler checks the cluster's state inside its ``store.update``: another writer's commit
that lands after the handler read the store, but before its write, is what the checks see.

``InterleavingStore`` lands such a commit just before the handler's transaction runs (what an
await between a handler's reads and its write, or another manager's write to a shared
backend, would let happen); a check made on what the handler read earlier would let the
write through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest

from swarmlet.clock import FakeClock
from swarmlet.ids import new_id
from swarmlet.manager.store import Commit, Op, Store, Tx
from swarmlet.models import Network, Secret, SecretSpec, Service, ServiceSpec, Version
from tests.manager.api.fakes import service_spec

R = TypeVar("R")


class InterleavingStore(Store):
    """Before each update, another writer's queued commit (``landing``) lands."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.landing: list[Sequence[Op]] = []

    async def update(self, fn: Callable[[Tx], R]) -> Commit[R]:
        if self.landing:
            ops = self.landing.pop(0)
            await super().update(lambda tx: tx.write(ops))
        return await super().update(fn)


@pytest.fixture
def store(clock: FakeClock) -> InterleavingStore:
    return InterleavingStore(clock)


def other_service(name: str, **extra: Any) -> Service:
    spec = ServiceSpec.from_api(service_spec(name, **extra))
    return Service(id=new_id(), spec=spec, spec_version=Version(index=1))


async def test_a_port_taken_just_before_the_write_is_refused(client, store):
    ports = {"Ports": [{"TargetPort": 80, "PublishedPort": 8080}]}
    one = other_service("one", EndpointSpec=ports)
    store.landing.append([Op.create(one)])
    response = await client.post("/services/create", json=service_spec("two", EndpointSpec=ports))
    assert response.status == 400
    assert (await response.json())["message"] == (
        f"port '8080' is already in use by service 'one' ({one.id}) as an ingress port"
    )
    assert [s.spec.name for s in store.all(Service)] == ["one"]


async def test_a_secret_used_just_before_its_removal_stays(client, store):
    secret = Secret(id=new_id(), spec=SecretSpec(name="db_pass", data=b"hunter2"))
    await store.commit([Op.create(secret)])
    reference = {"SecretID": secret.id, "SecretName": "db_pass", "File": {"Name": "db_pass"}}
    spec = service_spec("web")
    spec["TaskTemplate"]["ContainerSpec"]["Secrets"] = [reference]
    web = Service(id=new_id(), spec=ServiceSpec.from_api(spec), spec_version=Version(index=1))
    store.landing.append([Op.create(web)])
    response = await client.delete("/secrets/db_pass")
    assert response.status == 400
    assert (await response.json())["message"] == (
        "secret 'db_pass' is in use by the following service: web"
    )
    assert store.find(Secret, secret.id) is not None


async def test_a_network_used_just_before_its_removal_stays(client, store):
    response = await client.post("/networks/create", json={"Name": "backend", "Driver": "overlay"})
    assert response.status == 201
    network_id = (await response.json())["Id"]
    spec = service_spec("web")
    spec["TaskTemplate"]["Networks"] = [{"Target": network_id}]
    web = Service(id=new_id(), spec=ServiceSpec.from_api(spec), spec_version=Version(index=1))
    store.landing.append([Op.create(web)])
    response = await client.delete("/networks/backend")
    assert response.status == 400
    assert (await response.json())["message"] == "network backend is in use by service web"
    assert store.find(Network, network_id) is not None


async def test_a_name_taken_just_before_the_write_is_a_conflict(client, store):
    store.landing.append([Op.create(other_service("web"))])
    response = await client.post("/services/create", json=service_spec("web"))
    assert response.status == 409
    assert len(store.all(Service)) == 1
