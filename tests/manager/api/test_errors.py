from __future__ import annotations

import pydantic
import pytest

from swarmlet.errors import (
    EngineError,
    InvalidSpec,
    NameConflict,
    NotFound,
    Unavailable,
    VersionConflict,
)
from swarmlet.manager.api.common import NOT_IN_SWARM, WORKER
from swarmlet.manager.api.control import LocalNodeState
from swarmlet.manager.api.errors import describe_validation_error, status_of
from swarmlet.models import ServiceSpec


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
