from __future__ import annotations

from datetime import timedelta

from aiohttp.test_utils import make_mocked_request

from swarmlet.api import make_app
from swarmlet.api.common import min_cert_expiry_of
from swarmlet.clock import FakeClock
from tests.api.fakes import WorkerControl


def test_the_minimum_certificate_expiry_is_swarms_hour_by_default(
    control: WorkerControl, clock: FakeClock
) -> None:
    request = make_mocked_request("GET", "/swarm", app=make_app(control, clock))
    assert min_cert_expiry_of(request) == timedelta(hours=1)


def test_the_daemon_may_lower_it_for_tests(control: WorkerControl, clock: FakeClock) -> None:
    app = make_app(control, clock, min_cert_expiry=timedelta(seconds=90))
    request = make_mocked_request("GET", "/swarm", app=app)
    assert min_cert_expiry_of(request) == timedelta(seconds=90)
