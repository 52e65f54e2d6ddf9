"""Bad values of the ContainerSpec and Resources fields the task's container gets are refused
at create (a 400 naming the field), never left for the engine to refuse task after task."""

from __future__ import annotations

from typing import Any

import pytest

from swarmlet.errors import InvalidSpec
from swarmlet.manager.api.validate import parse_service_spec, validate_service_spec
from tests.manager.api.fakes import service_spec


def spec_with(container: dict[str, Any], resources: dict[str, Any] | None) -> dict[str, Any]:
    spec = service_spec("web")
    spec["TaskTemplate"]["ContainerSpec"].update(container)
    if resources is not None:
        spec["TaskTemplate"]["Resources"] = resources
    return spec


NOFILE = {"Name": "nofile", "Soft": 1024, "Hard": 2048}

REFUSED = [
    ({}, {"Limits": {"NanoCPUs": -1_000_000_000}},
     "Resources.Limits: invalid cpu value -1: Must be at least 0.001"),
    ({}, {"Limits": {"MemoryBytes": -1}},
     "Resources.Limits: invalid memory value -1: Must be at least 4MiB"),
    ({}, {"Reservations": {"NanoCPUs": -5}},
     "Resources.Reservations: invalid cpu value -5e-09: Must be at least 0.001"),
    ({}, {"Reservations": {"MemoryBytes": -4194304}},
     "Resources.Reservations: invalid memory value -4194304: Must be at least 4MiB"),
    ({}, {"Limits": {"Pids": -1}},
     "Resources.Limits: invalid pids value -1: Must be at least 0 (0 is unlimited)"),
    ({}, {"Limits": {"MemoryBytes": 67108864}, "SwapBytes": -2},
     "Resources.SwapBytes: invalid swap value -2: Must be at least -1 (unlimited)"),
    ({}, {"MemorySwappiness": 101},
     "Resources.MemorySwappiness: Invalid value: 101, valid memory swappiness range is 0-100"),
    ({}, {"MemorySwappiness": -2}, "valid memory swappiness range is 0-100"),
    ({"OomScoreAdj": 1001}, None,
     "ContainerSpec.OomScoreAdj: Invalid value 1001, range for oom score adj is [-1000, 1000]"),
    ({"OomScoreAdj": -1001}, None, "range for oom score adj is"),
    ({"Ulimits": [NOFILE, {"Name": "nofiles", "Soft": 1, "Hard": 1}]}, None,
     "ContainerSpec.Ulimits: invalid ulimit type: nofiles"),
    ({"Ulimits": [{"Name": "nofile", "Soft": 2048, "Hard": 1024}]}, None,
     "ContainerSpec.Ulimits: ulimit soft limit must be less than or equal to hard limit:"
     " 2048 > 1024"),
    ({"Ulimits": [{"Name": "nproc", "Soft": -2, "Hard": 10}]}, None,
     "ContainerSpec.Ulimits: invalid nproc value -2: Must be at least -1 (unlimited)"),
]  # fmt: skip


@pytest.mark.parametrize(("container", "resources", "message"), REFUSED)
def test_bad_values_are_refused_naming_the_field(
    container: dict[str, Any], resources: dict[str, Any] | None, message: str
) -> None:
    spec = parse_service_spec(spec_with(container, resources))
    with pytest.raises(InvalidSpec) as refused:
        validate_service_spec(spec)
    assert message in str(refused.value)


ACCEPTED = [
    ({}, {"Limits": {"Pids": 0}}),
    ({}, {"Limits": {"Pids": 64, "NanoCPUs": 500_000_000, "MemoryBytes": 67108864}}),
    ({}, {"Limits": {"MemoryBytes": 67108864}, "SwapBytes": -1, "MemorySwappiness": -1}),
    ({}, {"Limits": {"MemoryBytes": 67108864}, "SwapBytes": 0, "MemorySwappiness": 100}),
    ({"OomScoreAdj": -1000}, None),
    ({"OomScoreAdj": 1000}, None),
    ({"Ulimits": [NOFILE, {"Name": "core", "Soft": -1, "Hard": -1}]}, None),
]


@pytest.mark.parametrize(("container", "resources"), ACCEPTED)
def test_good_values_pass(container: dict[str, Any], resources: dict[str, Any] | None) -> None:
    validate_service_spec(parse_service_spec(spec_with(container, resources)))
