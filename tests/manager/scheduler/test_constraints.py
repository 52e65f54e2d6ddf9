import pytest

from swarmlet.errors import InvalidSpec
from swarmlet.manager.scheduler.constraints import (
    Operator,
    constraints_match,
    parse_constraint,
    parse_constraints,
)
from swarmlet.models import NodeRole
from tests.manager.scheduler.builders import node


def matches(expression: str, **node_fields: object) -> bool:
    return parse_constraint(expression).matches(node(**node_fields))  # type: ignore[arg-type]


# Parsing


def test_parse_splits_key_operator_value_and_trims_spaces():
    constraint = parse_constraint("  node.labels.zone  ==  east ")
    assert (constraint.key, constraint.operator, constraint.value) == (
        "node.labels.zone",
        Operator.EQ,
        "east",
    )
    assert parse_constraint("node.role!=manager").operator is Operator.NE


def test_keys_are_case_insensitive_but_label_names_keep_their_case():
    assert parse_constraint("NODE.Role==manager").key == "node.role"
    assert parse_constraint("Node.Labels.Zone==east").key == "node.labels.Zone"
    assert parse_constraint("ENGINE.labels.OS==linux").key == "engine.labels.OS"


def test_every_swarm_key_is_accepted():
    expressions = [
        "node.id==abc",
        "node.hostname==h1",
        "node.ip==10.0.0.1",
        "node.role==manager",
        "node.platform.os==linux",
        "node.platform.arch==x86_64",
        "node.labels.zone==east",
        "engine.labels.storage==ssd",
    ]
    assert len(parse_constraints(expressions)) == len(expressions)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("node.name==x", "unknown key 'node.name'"),
        ("node.labels.==x", "unknown key 'node.labels.'"),
        ("labels.zone==x", "unknown key 'labels.zone'"),
        ("node.role=manager", "expected one operator from ==, !="),
        ("node.labels.cpu>=4", "expected one operator from ==, !="),
        ("node.labels.cpu<4", "expected one operator from ==, !="),
        ("node role==manager", "key 'node role' is invalid"),
        ("node.role==", "value '' is invalid"),
        ("node.role==a=b", "value 'a=b' is invalid"),
        ("node.ip==not-an-ip", "'not-an-ip' is not an IP address or a CIDR subnet"),
        ("node.ip==10.0.0.0/33", "is not an IP address or a CIDR subnet"),
    ],
)
def test_a_bad_expression_is_refused_naming_it(expression, reason):
    with pytest.raises(InvalidSpec) as caught:
        parse_constraints(["node.role==manager", expression])
    assert f"invalid constraint {expression!r}" in caught.value.message
    assert reason in caught.value.message


def test_an_unknown_key_message_lists_the_known_keys():
    with pytest.raises(InvalidSpec, match=r"node\.labels\.<label>"):
        parse_constraint("node.zone==x")


# Matching


def test_node_attributes():
    assert matches("node.id==n7", node_id="n7")
    assert matches("node.id!=n8", node_id="n7")
    assert matches("node.hostname==web-1", hostname="web-1")
    assert not matches("node.hostname==web-1", hostname="web-2")
    assert matches("node.role==manager", role=NodeRole.MANAGER)
    assert matches("node.role!=manager", role=NodeRole.WORKER)
    assert matches("node.platform.os==linux", os="linux")
    assert matches("node.platform.arch==aarch64", arch="aarch64")
    assert not matches("node.platform.arch==x86_64", arch="aarch64")


def test_values_compare_case_insensitively():
    assert matches("node.hostname==WEB-1", hostname="web-1")
    assert matches("node.labels.zone==East", labels={"zone": "EAST"})
    assert not matches("node.labels.zone!=east", labels={"zone": "EAST"})
    assert matches("node.role==MANAGER", role=NodeRole.MANAGER)


def test_node_and_engine_labels():
    assert matches("node.labels.zone==east", labels={"zone": "east"})
    assert not matches("node.labels.zone==east", labels={"zone": "west"})
    assert matches("engine.labels.storage==ssd", engine_labels={"storage": "ssd"})
    # Node labels and engine labels are different sets.
    assert not matches("engine.labels.zone==east", labels={"zone": "east"})
    assert not matches("node.labels.storage==ssd", engine_labels={"storage": "ssd"})


def test_a_missing_label_compares_as_the_empty_string():
    # The classic: nodes without an sgx label satisfy "sgx != 0".
    assert matches("node.labels.sgx!=0", labels={})
    assert matches("node.labels.sgx!=0", labels={"other": "1"})
    assert not matches("node.labels.sgx!=0", labels={"sgx": "0"})
    assert not matches("node.labels.sgx==1", labels={})
    assert matches("engine.labels.sgx!=1", engine_labels={})


def test_label_names_are_case_sensitive():
    assert not matches("node.labels.zone==east", labels={"Zone": "east"})
    assert matches("node.labels.Zone==east", labels={"Zone": "east"})


def test_node_ip_against_an_address():
    assert matches("node.ip==10.0.0.5", addr="10.0.0.5")
    assert not matches("node.ip==10.0.0.5", addr="10.0.0.6")
    assert matches("node.ip!=10.0.0.5", addr="10.0.0.6")
    assert matches("node.ip==2001:db8::2", addr="2001:db8::2")
    assert matches("node.ip==::ffff:10.0.0.5", addr="10.0.0.5")


def test_node_ip_against_a_cidr_subnet():
    assert matches("node.ip==10.0.0.0/24", addr="10.0.0.200")
    assert not matches("node.ip==10.0.0.0/24", addr="10.0.1.1")
    assert matches("node.ip!=210.8.4.0/24", addr="10.0.0.1")
    assert not matches("node.ip!=210.8.4.0/24", addr="210.8.4.9")
    # Host bits may be set, as Go's ParseCIDR allows.
    assert matches("node.ip==10.0.0.7/24", addr="10.0.0.200")
    assert matches("node.ip==2001:db8::/32", addr="2001:db8:1::1")
    assert not matches("node.ip==10.0.0.0/8", addr="2001:db8::1")


def test_node_ip_of_a_node_without_an_address():
    assert not matches("node.ip==10.0.0.0/8", addr="")
    assert matches("node.ip!=10.0.0.0/8", addr="")


def test_constraints_are_anded():
    constraints = parse_constraints(["node.role==worker", "node.labels.zone==east"])
    assert constraints_match(constraints, node(labels={"zone": "east"}))
    assert not constraints_match(constraints, node(labels={"zone": "west"}))
    assert not constraints_match(constraints, node(role=NodeRole.MANAGER, labels={"zone": "east"}))
    assert constraints_match([], node())


def test_str_is_the_normalized_expression():
    assert str(parse_constraint(" node.labels.zone == east ")) == "node.labels.zone==east"
