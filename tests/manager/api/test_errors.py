from __future__ import annotations

import pydantic
import pytest

from swarmlet.api.common import NOT_IN_SWARM, WORKER
from swarmlet.api.control import LocalNodeState
from swarmlet.api.errors import describe_validation_error, status_of
from swarmlet.errors import (
    EngineError,
    InvalidSpec,
    NameConflict,
    NotFound,
    Unavailable,
    VersionConflict,
)
from swarmlet.models import ServiceSpec
from tests.manager.api.fakes import service_spec


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("x"), 404),
        (NameConflict("x"), 409),
        (VersionConflict("x"), 409),
        (InvalidSpec("x"), 400),
        (Unavailable("x"), 503),
        (EngineError("x", 404), 404),
        (EngineError("x", 0), 500),
    ],
)
def test_status_of_each_error(error, status):
    assert status_of(error) == status


def test_a_validation_error_names_the_field():
    with pytest.raises(pydantic.ValidationError) as caught:
        ServiceSpec.from_api({"TaskTemplate": {"ContainerSpec": {"Image": ["x"]}}})
    message = describe_validation_error(caught.value)
    assert message.startswith("invalid JSON: TaskTemplate.ContainerSpec.Image: ")


SWARM_ONLY = [
    ("GET", "/swarm"),
    ("POST", "/swarm/update?version=1"),
    ("GET", "/nodes"),
    ("GET", "/nodes/x"),
    ("POST", "/nodes/x/update?version=1"),
    ("DELETE", "/nodes/x"),
    ("GET", "/services"),
    ("POST", "/services/create"),
    ("GET", "/services/x"),
    ("POST", "/services/x/update?version=1"),
    ("DELETE", "/services/x"),
    ("GET", "/tasks"),
    ("GET", "/tasks/x"),
]


@pytest.mark.parametrize(("method", "path"), SWARM_ONLY)
@pytest.mark.parametrize(
    ("state", "message"),
    [(LocalNodeState.INACTIVE, NOT_IN_SWARM), (LocalNodeState.ACTIVE, WORKER)],
)
async def test_swarm_endpoints_need_a_manager(client, control, method, path, state, message):
    control.state = state
    control.store = None
    response = await client.request(method, "/v1.47" + path, json={})
    assert response.status == 503
    assert await response.json() == {"message": message}


async def test_an_unexpected_error_is_a_500_with_a_message(client, control):
    class Broken:
        def all(self, kind):
            raise RuntimeError("disk on fire")

    control.store = Broken()
    response = await client.get("/nodes")
    assert response.status == 500
    assert await response.json() == {"message": "disk on fire"}


# Found by test_fuzz.py: JSON nested deeper than Python's recursion limit was a 500, and what
# Go's decoder refuses (NaN, Infinity, numbers beyond uint64 and float64) was taken in: NaN and
# 1e400 were stored as null, and a delay of 10**400 ns broke the orchestrator's arithmetic
# (OverflowError) after the API had said yes.
@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("[" * 5000 + "]" * 5000, "nested deeper than 100 levels"),
        ('{"Name": ' * 101 + '"x"' + "}" * 101, "nested deeper than 100 levels"),
        ('{"Name": "web", "Labels": {"a": NaN}}', "NaN is not a JSON number"),
        ('{"Name": "web", "Mode": {"Replicated": {"Replicas": -Infinity}}}', "-Infinity is not"),
        ('{"Name": "web", "UpdateConfig": {"MaxFailureRatio": 1e400}}', "1e400 is out of range"),
        ('{"Name": "web", "Mode": {"Replicated": {"Replicas": 18446744073709551616}}}', "range"),
        ('{"Name": "web", "UpdateConfig": {"Delay": -9223372036854775809}}', "out of range"),
        ('{"Name": "web", "Mode": {"Replicated": {"Replicas": ' + "9" * 5000 + "}}}", "limit"),
    ],
)
async def test_json_that_go_refuses_is_a_400_saying_why(client, store, raw, why):
    revision = store.revision
    response = await client.post(
        "/v1.47/services/create", data=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    message = (await response.json())["message"]
    assert message.startswith("invalid JSON: ")
    assert why in message
    assert store.revision == revision


async def test_the_widest_go_integers_are_still_numbers(client, store):
    spec = service_spec("web")
    spec["Mode"] = {"Replicated": {"Replicas": 2**64 - 1}}
    spec["UpdateConfig"] = {"Delay": 2**63 - 1, "MaxFailureRatio": 1e-300}
    response = await client.post("/v1.47/services/create", json=spec)
    assert response.status == 201
