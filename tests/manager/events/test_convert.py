"""A store change as the swarm event a Docker manager emits for it (moby's daemon/events.go)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from swarmlet.manager.events import EventMessage, swarm_event, unix_nano
from swarmlet.manager.store import Action
from swarmlet.models import (
    Cluster,
    ClusterSpec,
    Config,
    ConfigSpec,
    ContainerSpec,
    GlobalMode,
    ManagerStatus,
    Network,
    Node,
    NodeAvailability,
    NodeCertificate,
    NodeDescription,
    NodeRole,
    NodeSpec,
    NodeState,
    NodeStatus,
    ReplicatedMode,
    Secret,
    SecretSpec,
    Service,
    ServiceMode,
    ServiceSpec,
    StoredObject,
    Task,
    TaskSpec,
    UpdateState,
    UpdateStatus,
)

CREATED = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
UPDATED = datetime(2026, 3, 1, 12, 5, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 13, 0, 0, tzinfo=UTC)


def service(
    image: str = "busybox:1",
    replicas: int | None = 2,
    update: UpdateState | None = None,
) -> Service:
    mode = (
        ServiceMode(replicated=ReplicatedMode(replicas=replicas))
        if replicas is not None
        else (ServiceMode(global_=GlobalMode()))
    )
    spec = ServiceSpec(
        name="web", task_template=TaskSpec(container_spec=ContainerSpec(image=image)), mode=mode
    )
    return Service(
        id="svc1",
        spec=spec,
        update_status=None if update is None else UpdateStatus(state=update),
        created_at=CREATED,
        updated_at=UPDATED,
    )


def node(
    availability: NodeAvailability = NodeAvailability.ACTIVE,
    state: NodeState = NodeState.READY,
    role: NodeRole = NodeRole.WORKER,
    manager: ManagerStatus | None = None,
    name: str | None = None,
) -> Node:
    return Node(
        id="node1",
        spec=NodeSpec(name=name, availability=availability, role=role),
        description=NodeDescription(hostname="host1"),
        status=NodeStatus(state=state),
        manager_status=manager,
        certificate=NodeCertificate(role=role, serial="1", not_after=NOW),
        created_at=CREATED,
        updated_at=UPDATED,
    )


def attributes(old: StoredObject, new: StoredObject) -> dict[str, str]:
    event = swarm_event(Action.UPDATE, new, old, NOW)
    assert event is not None
    return dict(event.attributes)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(service(), service(), {}, id="nothing that is shown changed"),
        pytest.param(
            service(replicas=2),
            service(replicas=5),
            {"replicas.old": "2", "replicas.new": "5"},
            id="scaled",
        ),
        pytest.param(
            service(image="busybox:1"),
            service(image="busybox:2"),
            {"image.old": "busybox:1", "image.new": "busybox:2"},
            id="image",
        ),
        pytest.param(
            service(),
            service(update=UpdateState.UPDATING),
            {"updatestate.new": "updating"},
            id="a first update status: new only",
        ),
        pytest.param(
            service(update=UpdateState.UPDATING),
            service(update=UpdateState.COMPLETED),
            {"updatestate.old": "updating", "updatestate.new": "completed"},
            id="update status changed",
        ),
        pytest.param(
            service(update=UpdateState.ROLLBACK_STARTED),
            service(update=UpdateState.ROLLBACK_COMPLETED),
            {"updatestate.old": "rollback_started", "updatestate.new": "rollback_completed"},
            id="rollback",
        ),
        pytest.param(
            service(update=UpdateState.UPDATING),
            service(update=UpdateState.UPDATING),
            {},
            id="update status unchanged",
        ),
        pytest.param(
            service(update=UpdateState.COMPLETED),
            service(),
            {},
            id="update status cleared by a new update",
        ),
        pytest.param(
            service(replicas=2),
            service(replicas=None),
            {},
            id="replicated to global: no replicas",
        ),
        pytest.param(
            service(image="a", replicas=1, update=UpdateState.UPDATING),
            service(image="b", replicas=3, update=UpdateState.PAUSED),
            {
                "image.old": "a",
                "image.new": "b",
                "replicas.old": "1",
                "replicas.new": "3",
                "updatestate.old": "updating",
                "updatestate.new": "paused",
            },
            id="everything at once",
        ),
    ],
)
def test_a_service_update_says_what_changed(old, new, expected):
    assert attributes(old, new) == {"name": "web", **expected}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(node(), node(), {}, id="nothing that is shown changed"),
        pytest.param(
            node(),
            node(availability=NodeAvailability.DRAIN),
            {"availability.old": "active", "availability.new": "drain"},
            id="drained",
        ),
        pytest.param(
            node(availability=NodeAvailability.PAUSE),
            node(),
            {"availability.old": "pause", "availability.new": "active"},
            id="active again",
        ),
        pytest.param(
            node(state=NodeState.READY),
            node(state=NodeState.DOWN),
            {"state.old": "ready", "state.new": "down"},
            id="down",
        ),
        pytest.param(
            node(role=NodeRole.WORKER),
            node(role=NodeRole.MANAGER, manager=ManagerStatus()),
            {"role.old": "worker", "role.new": "manager"},
            id="promoted: the certificate's role",
        ),
        pytest.param(
            node(role=NodeRole.MANAGER, manager=ManagerStatus(leader=False)),
            node(role=NodeRole.MANAGER, manager=ManagerStatus(leader=True)),
            {"leader.old": "false", "leader.new": "true"},
            id="leader",
        ),
        pytest.param(
            node(role=NodeRole.MANAGER, manager=ManagerStatus(reachability="reachable")),
            node(role=NodeRole.MANAGER, manager=ManagerStatus(reachability="unreachable")),
            {"reachability.old": "reachable", "reachability.new": "unreachable"},
            id="reachability",
        ),
    ],
)
def test_a_node_update_says_what_changed(old, new, expected):
    assert attributes(old, new) == {"name": "host1", **expected}


def test_a_node_spec_role_alone_is_not_its_role():
    # The desired role changes first; the node's role is the certificate's, renewed later.
    old = node(role=NodeRole.WORKER)
    new = old.replace(spec=old.spec.replace(role=NodeRole.MANAGER))
    assert attributes(old, new) == {"name": "host1"}


def test_a_node_is_named_by_its_spec_before_its_hostname():
    event = swarm_event(Action.CREATE, node(name="edge"), None, NOW)
    assert event is not None
    assert event.attributes == {"name": "edge"}


NETWORK = Network(id="net1", name="backend", created_at=CREATED, updated_at=UPDATED)
SECRET = Secret(id="sec1", spec=SecretSpec(name="pw"), created_at=CREATED, updated_at=UPDATED)
CONFIG = Config(id="cfg1", spec=ConfigSpec(name="conf"), created_at=CREATED, updated_at=UPDATED)


@pytest.mark.parametrize(
    ("obj", "type_", "name"),
    [
        (service(), "service", "web"),
        (node(), "node", "host1"),
        (NETWORK, "network", "backend"),
        (SECRET, "secret", "pw"),
        (CONFIG, "config", "conf"),
    ],
)
@pytest.mark.parametrize(
    ("action", "verb", "moment"),
    [
        (Action.CREATE, "create", CREATED),
        (Action.UPDATE, "update", UPDATED),
        (Action.DELETE, "remove", NOW),
    ],
)
def test_each_kind_and_action(obj, type_, name, action, verb, moment):
    event = swarm_event(action, obj, None, NOW)
    assert event == EventMessage.make(type_, verb, obj.id, unix_nano(moment), {"name": name})
    assert event.scope == "swarm"


def test_kinds_without_events():
    cluster = Cluster(id="c", spec=ClusterSpec(name="default"))
    assert swarm_event(Action.CREATE, cluster, None, NOW) is None
    task = Task.model_validate({"ID": "t", "ServiceID": "svc1", "Spec": {}})
    assert swarm_event(Action.UPDATE, task, task, NOW) is None


def test_the_message_is_mobys_json():
    event = swarm_event(Action.UPDATE, service(replicas=3), service(replicas=1), NOW)
    assert event is not None
    assert json.loads(event.line()) == {
        "Type": "service",
        "Action": "update",
        "Actor": {
            "ID": "svc1",
            "Attributes": {"name": "web", "replicas.new": "3", "replicas.old": "1"},
        },
        "scope": "swarm",
        "time": int(UPDATED.timestamp()),
        "timeNano": int(UPDATED.timestamp()) * 1_000_000_000,
    }
    assert event.line().endswith(b"}\n")
    # Attributes in key order, as Go writes a map.
    assert b'"name":"web","replicas.new":"3","replicas.old":"1"' in event.line()


def test_html_characters_are_escaped_as_go_escapes_them():
    event = EventMessage.make("config", "create", "x", 0, {"name": "a<b>&c"})
    assert b'"name":"a\\u003cb\\u003e\\u0026c"' in event.line()
    assert json.loads(event.line())["Actor"]["Attributes"]["name"] == "a<b>&c"


def test_unix_nano_is_exact():
    assert unix_nano(CREATED) == 1772366400_123456000
