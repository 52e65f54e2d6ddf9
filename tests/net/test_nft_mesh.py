"""The ingress mesh ruleset, built without a kernel (its application and traffic:
test_nft_traffic)."""

from __future__ import annotations

import random

from swarmlet.net.mesh import MESH_SYSCTLS, TABLE, mesh_for, mesh_ruleset, remove_mesh_ruleset
from swarmlet.protocol import (
    NetworkState,
    NetworkView,
    PublishedBackend,
    PublishedPort,
    ServiceEntry,
)

BRIDGE = "swlbr4096"
ADDRESSES = ["10.255.0.2/16", "10.0.1.2/24"]


def port(published: int, *backends: tuple[str, bool], protocol="tcp", target=80) -> PublishedPort:
    return PublishedPort(
        service_id="svc-web",
        protocol=protocol,
        published_port=published,
        target_port=target,
        backends=[PublishedBackend(ip=ip, local=local) for ip, local in backends],
    )


def rules(document: dict, chain: str) -> list[dict]:
    found = [
        command["add"]["rule"]
        for command in document["nftables"]
        if "rule" in command.get("add", {})
    ]
    return [rule for rule in found if rule["chain"] == chain]


def by_comment(document: dict, chain: str) -> dict[str, dict]:
    return {rule["comment"]: rule for rule in rules(document, chain)}


def match(left: dict, right, op="==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


DNATTED = match({"ct": {"key": "status"}}, "dnat", "in")
ON_BRIDGE = match({"meta": {"key": "oifname"}}, BRIDGE)
LOCAL = match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")

THREE = (("10.255.0.7", False), ("10.255.0.5", True), ("10.255.0.6", False))


def test_the_table_and_its_chains():
    commands = mesh_ruleset([], ADDRESSES, BRIDGE)["nftables"]

    table = {"family": "ip", "name": TABLE}
    assert commands[:3] == [
        {"add": {"table": table}},
        {"delete": {"table": table}},
        {"add": {"table": table}},
    ]
    chains = [c["add"]["chain"] for c in commands if "chain" in c.get("add", {})]
    assert [(c["name"], c.get("type"), c.get("hook"), c.get("prio")) for c in chains] == [
        ("published", None, None, None),
        ("prerouting", "nat", "prerouting", -100),
        ("output", "nat", "output", -100),
        ("postrouting", "nat", "postrouting", 100),
        ("input", "filter", "input", 0),
    ]
    # Both connections from outside and those made on the host reach the published ports.
    for chain in ("prerouting", "output"):
        assert [rule["expr"] for rule in rules(mesh_ruleset([], ADDRESSES, BRIDGE), chain)] == [
            [LOCAL, {"jump": {"target": "published"}}]
        ]


def test_a_published_port_spreads_over_its_backends_to_the_target_port():
    document = mesh_ruleset([port(8080, *THREE)], ADDRESSES, BRIDGE, {"svc-web": "web"})

    [rule] = rules(document, "published")
    assert rule["comment"] == "web tcp/8080->80"
    assert rule["expr"][0] == match({"payload": {"protocol": "tcp", "field": "dport"}}, 8080)
    dnat = rule["expr"][1]["dnat"]
    assert dnat["port"] == 80
    assert dnat["addr"]["map"]["key"]["numgen"]["mod"] == 3
    assert dnat["addr"]["map"]["data"]["set"] == [
        [0, "10.255.0.5"],
        [1, "10.255.0.6"],
        [2, "10.255.0.7"],
    ]


def test_without_a_name_the_comment_names_the_service_id():
    [rule] = rules(mesh_ruleset([port(8080, *THREE)], ADDRESSES, BRIDGE), "published")

    assert rule["comment"] == "svc-web tcp/8080->80"


def test_only_connections_to_remote_backends_and_from_loopback_are_masqueraded():
    document = mesh_ruleset(
        [port(8080, *THREE), port(9000, ("10.255.0.9", False), ("10.255.0.5", True))],
        ADDRESSES,
        BRIDGE,
    )

    post = by_comment(document, "postrouting")
    remote = post["mesh: to tasks on other hosts"]["expr"]
    assert remote == [
        DNATTED,
        ON_BRIDGE,
        match(
            {"payload": {"protocol": "ip", "field": "daddr"}},
            {"set": ["10.255.0.6", "10.255.0.7", "10.255.0.9"]},
        ),
        {"masquerade": None},
    ]
    loopback = post["mesh: from 127.0.0.1 on this host"]["expr"]
    assert (
        match(
            {"payload": {"protocol": "ip", "field": "saddr"}},
            {"prefix": {"addr": "127.0.0.0", "len": 8}},
        )
        in loopback
    )
    hairpin = post["mesh: from a task on this host"]["expr"]
    assert match({"meta": {"key": "iifname"}}, BRIDGE) in hairpin


def test_all_backends_local_means_no_remote_masquerade():
    document = mesh_ruleset([port(8080, ("10.255.0.5", True))], ADDRESSES, BRIDGE)

    assert "mesh: to tasks on other hosts" not in by_comment(document, "postrouting")
    [rule] = rules(document, "published")
    assert rule["expr"][1] == {"dnat": {"addr": "10.255.0.5", "port": 80}}


def test_overlay_traffic_leaving_through_another_interface_is_masqueraded():
    outbound = by_comment(mesh_ruleset([], ADDRESSES, BRIDGE), "postrouting")[
        "overlay: tasks reaching out through this host"
    ]

    assert outbound["expr"] == [
        match(
            {"payload": {"protocol": "ip", "field": "saddr"}},
            {
                "set": [
                    {"prefix": {"addr": "10.0.1.0", "len": 24}},
                    {"prefix": {"addr": "10.255.0.0", "len": 16}},
                ]
            },
        ),
        match({"meta": {"key": "oifname"}}, "swlbr*", "!="),
        {"masquerade": None},
    ]


def test_a_port_without_backends_is_refused():
    document = mesh_ruleset([port(8080), port(53, protocol="udp", target=53)], ADDRESSES, BRIDGE)

    assert rules(document, "published") == []
    refusals = by_comment(document, "input")
    assert refusals["svc-web tcp/8080->80: no task"]["expr"][-1] == {
        "reject": {"type": "tcp reset"}
    }
    assert refusals["svc-web udp/53->53: no task"]["expr"] == [
        match({"payload": {"protocol": "udp", "field": "dport"}}, 53),
        {"reject": {"type": "icmp", "expr": "port-unreachable"}},
    ]


def test_nothing_from_outside_reaches_loopback_addresses():
    [guard] = [
        rule for rule in rules(mesh_ruleset([], [], BRIDGE), "input") if "drop" in rule["expr"][-1]
    ]

    assert guard["expr"][:3] == [
        match({"meta": {"key": "iifname"}}, "lo", "!="),
        match(
            {"payload": {"protocol": "ip", "field": "daddr"}},
            {"prefix": {"addr": "127.0.0.0", "len": 8}},
        ),
        match({"ct": {"key": "state"}}, ["new", "invalid"], "in"),
    ]
    assert MESH_SYSCTLS["net/ipv4/conf/all/route_localnet"] == "1"
    assert MESH_SYSCTLS["net/ipv4/ip_forward"] == "1"


def test_the_same_ports_make_the_same_ruleset_in_any_order():
    ports = [port(8080, *THREE), port(8081, ("10.255.0.8", True)), port(53, protocol="udp")]
    shuffled = [
        entry.model_copy(update={"backends": random.sample(entry.backends, len(entry.backends))})
        for entry in random.sample(ports, len(ports))
    ]

    assert mesh_ruleset(shuffled, ADDRESSES[::-1], BRIDGE) == mesh_ruleset(ports, ADDRESSES, BRIDGE)


def test_from_a_network_state():
    state = NetworkState(
        networks=[
            NetworkView(
                id="n1",
                name="ingress",
                vni=4096,
                subnet="10.255.0.0/16",
                ingress=True,
                local_address="10.255.0.2/16",
                services=[ServiceEntry(id="svc-web", name="web", vip="10.255.0.3")],
            ),
            NetworkView(
                id="n2",
                name="back",
                vni=4097,
                subnet="10.0.2.0/24",
                internal=True,
                local_address="10.0.2.2/24",
            ),
            NetworkView(id="n3", name="front", vni=4098, subnet="10.0.3.0/24"),
        ],
        published=[port(8080, *THREE)],
    )

    assert mesh_for(state) == mesh_ruleset(
        [port(8080, *THREE)], ["10.255.0.2/16"], BRIDGE, {"svc-web": "web"}
    )


def test_without_an_ingress_network_nothing_is_published():
    state = NetworkState(
        networks=[
            NetworkView(
                id="n3", name="front", vni=4098, subnet="10.0.3.0/24", local_address="10.0.3.2/24"
            )
        ],
        published=[port(8080, *THREE)],
    )

    document = mesh_for(state)

    assert rules(document, "published") == []
    assert list(by_comment(document, "postrouting")) == [
        "overlay: tasks reaching out through this host"
    ]


def test_removal_deletes_the_table_even_if_absent():
    table = {"family": "ip", "name": TABLE}

    assert remove_mesh_ruleset() == {
        "nftables": [{"add": {"table": table}}, {"delete": {"table": table}}]
    }
