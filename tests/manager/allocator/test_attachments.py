"""Attachments (plain containers' tasks, no service) in one allocation pass, on plain objects:
addressed like any task, and holding their address while they exist."""

from __future__ import annotations

from collections.abc import Sequence

from swarmlet.manager.allocator import PENDING_MESSAGE, ClusterState, allocate
from swarmlet.models import (
    NetworkAttachmentConfig,
    Node,
    Service,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from swarmlet.models.service import NetworkAttachmentSpec
from tests.manager.allocator.builders import NOW, addresses, ingress, network, node, service, task

INGRESS = ingress()
DC = network("dc", [INGRESS])


def attachment(task_id: str, target: str = DC.id, aliases: list[str] | None = None) -> Task:
    return Task(
        id=task_id,
        service_id="",
        node_id="n1",
        spec=TaskSpec(
            network_attachment_spec=NetworkAttachmentSpec(container_id=f"ctr-{task_id}"),
            networks=[NetworkAttachmentConfig(target=target, aliases=aliases)],
        ),
        status=TaskStatus(state=TaskState.NEW, message="created", timestamp=NOW),
    )


def run(tasks: Sequence[Task], nodes: Sequence[Node] = (), services: Sequence[Service] = ()):
    state = ClusterState([INGRESS, DC], list(services), list(tasks), list(nodes))
    return allocate(state, NOW)


def test_an_attachment_gets_its_address_and_its_node_one_in_the_same_pass() -> None:
    result = run([attachment("a1", aliases=["db"])], [node("n1"), node("n2")])
    (written,) = result.tasks
    assert (written.state, written.status.message) == (TaskState.PENDING, PENDING_MESSAGE)
    assert addresses(written) == {"dc": "10.0.1.2/24"}
    assert written.networks_attachments[0].aliases == ["db"]
    # Nothing else used the network: the attachment alone puts it in use, so every Ready node
    # gets its own address there now (its host needs the bridge), not on a later pass.
    own = {n.id: [(a.network_id, a.address) for a in n.attachments] for n in result.nodes}
    assert own == {"n1": [(DC.id, "10.0.1.3/24")], "n2": [(DC.id, "10.0.1.4/24")]}


def test_an_attachment_to_a_network_that_is_gone_waits_saying_why() -> None:
    result = run([attachment("a1", target="gone")], [node("n1")])
    (written,) = result.tasks
    assert written.state == TaskState.NEW
    assert written.status.err == "network gone not found"
    assert result.waiting == ["a1"]
    assert result.nodes == []


def test_a_running_attachment_holds_its_address_until_it_is_deleted() -> None:
    (first,) = run([attachment("a1")]).tasks
    running = first.replace(status=first.status.replace(state=TaskState.RUNNING))
    web = service("web", networks=[DC.id])
    web_task = task(web, task_id="w1")
    result = run([running, web_task], services=[web])
    (given,) = [t for t in result.tasks if t.id == "w1"]
    assert addresses(given)["dc"] != addresses(running)["dc"]
    # Deleted: the next pass gives its address again.
    again = run([attachment("a2")])
    assert addresses(again.tasks[0]) == addresses(running)
