"""When the lab cannot run, its tests skip — except under CI=true, where they fail."""

import os

import pytest

from swarmlet.lab.plan import LabConfig
from swarmlet.lab.testing import (
    SWARMLETD_ENV,
    TEST_LAB,
    exclusive,
    missing_prerequisite,
    require_lab,
    with_daemon_override,
)


@pytest.fixture
def not_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)


def test_without_root_a_lab_test_skips(not_root, monkeypatch):
    monkeypatch.delenv("CI", raising=False)

    with pytest.raises(pytest.skip.Exception, match="the lab needs root"):
        require_lab()


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_it_fails_instead(not_root, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)

    with pytest.raises(pytest.fail.Exception, match="CI=true and the lab needs root"):
        require_lab()


def test_an_engine_that_does_not_answer_is_a_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    config = TEST_LAB.model_copy(update={"shared_engine": f"unix://{tmp_path}/none.sock"})

    reason = missing_prerequisite(config)

    assert reason is not None
    assert reason.startswith("no engine answers on unix://")


def test_the_daemon_can_be_replaced_for_a_run(monkeypatch):
    monkeypatch.setenv(SWARMLETD_ENV, "/usr/bin/python3 fake.py --flag")

    assert with_daemon_override(TEST_LAB).swarmletd == ("/usr/bin/python3", "fake.py", "--flag")
    # A test that chose its own daemon keeps it.
    own = LabConfig(swarmletd=("/bin/false",))
    assert with_daemon_override(own).swarmletd == ("/bin/false",)


def test_without_the_variable_the_default_daemon_stays(monkeypatch):
    monkeypatch.delenv(SWARMLETD_ENV, raising=False)

    assert with_daemon_override(TEST_LAB) == TEST_LAB


def test_a_lab_lock_is_held_once_per_process(tmp_path):
    lock = tmp_path / "lab.lock"
    with (
        exclusive(lock),
        pytest.raises(pytest.fail.Exception, match="two fixtures build the same lab"),
        exclusive(lock),
    ):
        pass
    with exclusive(lock):  # released, so free again
        pass
