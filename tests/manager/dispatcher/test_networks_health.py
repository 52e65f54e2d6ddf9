"""Health and the network state: a task gets traffic only while healthy (RUNNING, no Err)."""

from __future__ import annotations

from dataclasses import replace

from swarmlet.manager.dispatcher.networks import network_state
from swarmlet.models import TaskState, TaskStatus
from tests.manager.dispatcher.test_networks import CLUSTER

UNHEALTHY = TaskStatus(
    state=TaskState.RUNNING, message="started", err="dockerexec: unhealthy container"
)


def _with_w2(status: TaskStatus):
    tasks = [t.replace(status=status) if t.id == "w2" else t for t in CLUSTER.tasks]
    return replace(CLUSTER, tasks=tasks)


def test_a_running_task_being_stopped_as_unhealthy_leaves_vip_dns_and_mesh() -> None:
    cluster = _with_w2(UNHEALTHY)
    coins = next(view for view in network_state("n1", cluster).networks if view.id == "net")
    webui = next(entry for entry in coins.services if entry.name == "webui")
    assert webui.backends == ["10.0.1.21"]
    (port,) = network_state("n1", cluster).published
    assert [backend.ip for backend in port.backends] == ["10.0.0.21"]
    # Still present until its container stops: its address stays a peer.
    assert "10.0.1.22" in [peer.ip for peer in coins.peers]


def test_a_task_waiting_to_be_healthy_is_no_backend() -> None:
    cluster = _with_w2(TaskStatus(state=TaskState.STARTING, message="starting"))
    coins = next(view for view in network_state("n1", cluster).networks if view.id == "net")
    webui = next(entry for entry in coins.services if entry.name == "webui")
    assert webui.backends == ["10.0.1.21"]
    (port,) = network_state("n1", cluster).published
    assert [backend.ip for backend in port.backends] == ["10.0.0.21"]
