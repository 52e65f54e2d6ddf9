from __future__ import annotations

import time

import pytest

from swarmlet.errors import InvalidSpec
from swarmlet.ids import new_id
from swarmlet.manager.api.validate import (
    check_port_conflicts,
    parse_service_spec,
    validate_service_spec,
)
from swarmlet.models import Endpoint, EndpointSpec, PortConfig, Service, ServiceSpec
from tests.manager.api.fakes import service_spec


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "busybox:1.36",
        "swarmlet-test/busybox:latest",
        "localhost:5000/team/app:v2",
        "registry.example.com/a/b/c",
        "busybox@sha256:" + "a" * 64,
        "busybox:1.36@sha256:" + "0" * 64,
    ],
)
def test_valid_references_pass(image):
    validate_service_spec(parse_service_spec(service_spec("web", image=image)))


@pytest.mark.parametrize("image", ["Busybox", "busy box", "busybox:", ":latest", "a//b"])
def test_invalid_references_are_refused(image):
    with pytest.raises(InvalidSpec, match="is not a valid repository/tag"):
        validate_service_spec(parse_service_spec(service_spec("web", image=image)))


@pytest.mark.parametrize("name", ["web", "web-1", "web_1", "a" * 63, "W3b"])
def test_valid_names_pass(name):
    validate_service_spec(parse_service_spec(service_spec(name)))


@pytest.mark.parametrize("name", ["-web", "web-", "web.1", "a" * 64, "web 1"])
def test_invalid_names_are_refused(name):
    with pytest.raises(InvalidSpec, match="name"):
        validate_service_spec(parse_service_spec(service_spec(name)))


@pytest.mark.parametrize("name", ["a" * 25 + "!", "9" * 25 + "_", "W" * 26 + "-"])
def test_a_long_invalid_name_is_refused_at_once(name):
    """Found by test_fuzz.py: the name's regular expression backtracked exponentially, so
    these took a second and more (blocking the manager's event loop), and each letter more
    doubled it."""
    started = time.monotonic()
    with pytest.raises(InvalidSpec, match="name must be valid as a DNS name component"):
        validate_service_spec(parse_service_spec(service_spec(name)))
    assert time.monotonic() - started < 0.1


def test_resources_below_the_minimum_are_refused():
    spec = service_spec("web")
    spec["TaskTemplate"]["Resources"] = {"Limits": {"MemoryBytes": 1024}}
    with pytest.raises(InvalidSpec, match="Must be at least 4MiB"):
        validate_service_spec(parse_service_spec(spec))


def published(name: str, port: int, mode: str = "ingress") -> Service:
    ports = [PortConfig(target_port=80, published_port=port, publish_mode=mode)]
    return Service(
        id=new_id(),
        spec=ServiceSpec(name=name, endpoint_spec=EndpointSpec(ports=ports)),
        endpoint=Endpoint(ports=ports),
    )


def spec_publishing(port: int, mode: str = "ingress") -> ServiceSpec:
    ports = [PortConfig(target_port=80, published_port=port, publish_mode=mode)]
    return ServiceSpec(name="new", endpoint_spec=EndpointSpec(ports=ports))


def test_an_ingress_port_belongs_to_one_service():
    other = published("other", 8080)
    with pytest.raises(InvalidSpec, match="as an ingress port"):
        check_port_conflicts(spec_publishing(8080), "", [other])
    with pytest.raises(InvalidSpec, match="as an ingress port"):
        check_port_conflicts(spec_publishing(8080, "host"), "", [other])
    check_port_conflicts(spec_publishing(8081), "", [other])
    # An update of the service itself is no conflict.
    check_port_conflicts(spec_publishing(8080), other.id, [other])


def test_host_ports_may_be_shared_by_host_mode_services():
    other = published("other", 8080, "host")
    check_port_conflicts(spec_publishing(8080, "host"), "", [other])
    with pytest.raises(InvalidSpec, match="as a host-published port"):
        check_port_conflicts(spec_publishing(8080), "", [other])
