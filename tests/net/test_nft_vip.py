"""The VIP ruleset, built without a kernel (its application and traffic: test_nft_traffic)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from swarmlet.net.vip import TABLE, remove_vip_ruleset, vip_ruleset
from swarmlet.protocol import ServiceEntry


def service(name: str, vip: str | None, *backends: str, ports=()) -> ServiceEntry:
    return ServiceEntry(
        id=f"{name}-id", name=name, vip=vip, backends=list(backends), ports=list(ports)
    )


def rules(document: dict, chain: str) -> list[dict]:
    found = [
        command["add"]["rule"]
        for command in document["nftables"]
        if "rule" in command.get("add", {})
    ]
    return [rule for rule in found if rule["chain"] == chain]


def dnat_of(rule: dict) -> dict:
    return next(expr["dnat"] for expr in rule["expr"] if "dnat" in expr)


def test_the_table_is_replaced_whole_whether_or_not_it_exists():
    commands = vip_ruleset([])["nftables"]

    table = {"family": "ip", "name": TABLE}
    assert commands[:3] == [
        {"add": {"table": table}},
        {"delete": {"table": table}},
        {"add": {"table": table}},
    ]
    chains = [command["add"]["chain"] for command in commands[3:]]
    assert [(c["name"], c["type"], c["hook"], c["prio"]) for c in chains] == [
        ("vip", "nat", "output", -100),
        ("refuse", "filter", "output", 0),
    ]


def test_n_backends_make_a_numgen_map_of_n():
    document = vip_ruleset([service("web", "10.0.1.2", "10.0.1.7", "10.0.1.5", "10.0.1.6")])

    [rule] = rules(document, "vip")
    assert rule["comment"] == "web"
    assert rule["expr"][0] == {
        "match": {
            "op": "==",
            "left": {"payload": {"protocol": "ip", "field": "daddr"}},
            "right": "10.0.1.2",
        }
    }
    dnat = dnat_of(rule)
    assert "port" not in dnat  # the destination port is kept
    assert dnat["addr"]["map"]["key"] == {"numgen": {"mode": "random", "mod": 3, "offset": 0}}
    assert dnat["addr"]["map"]["data"]["set"] == [[0, "10.0.1.5"], [1, "10.0.1.6"], [2, "10.0.1.7"]]
    assert rules(document, "refuse") == []


def test_one_backend_is_a_plain_dnat():
    [rule] = rules(vip_ruleset([service("web", "10.0.1.2", "10.0.1.5")]), "vip")

    assert dnat_of(rule) == {"addr": "10.0.1.5"}


def test_a_vip_without_backends_is_refused_at_once():
    document = vip_ruleset([service("db", "10.0.1.3")])

    assert rules(document, "vip") == []
    tcp, other = rules(document, "refuse")
    assert tcp["comment"] == other["comment"] == "db: no task"
    assert {"reject": {"type": "tcp reset"}} in tcp["expr"]
    assert {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}} in tcp[
        "expr"
    ]
    assert other["expr"][-1] == {"reject": {"type": "icmp", "expr": "port-unreachable"}}


def test_dnsrr_services_have_no_rule():
    document = vip_ruleset([service("dns", None, "10.0.1.5")])

    assert rules(document, "vip") == rules(document, "refuse") == []


def test_listed_ports_are_balanced_and_the_others_refused():
    entry = service(
        "web", "10.0.1.2", "10.0.1.5", "10.0.1.6", ports=[("tcp", 443), ("udp", 53), ("tcp", 80)]
    )

    document = vip_ruleset([entry])

    tcp, udp = rules(document, "vip")
    assert (tcp["comment"], udp["comment"]) == ("web tcp", "web udp")
    assert tcp["expr"][1]["match"]["left"] == {"payload": {"protocol": "tcp", "field": "dport"}}
    assert tcp["expr"][1]["match"]["right"] == {"set": [80, 443]}
    assert udp["expr"][1]["match"]["right"] == 53
    assert [rule["comment"] for rule in rules(document, "refuse")] == [
        "web: port not published"
    ] * 2


def test_the_same_services_make_the_same_ruleset_in_any_order():
    entries = [
        service("web", "10.0.1.2", "10.0.1.5", "10.0.1.6"),
        service("db", "10.0.1.3", "10.0.1.9"),
        service("cache", "10.0.1.4"),
    ]
    shuffled = [
        entry.model_copy(update={"backends": random.sample(entry.backends, len(entry.backends))})
        for entry in random.sample(entries, len(entries))
    ]

    assert vip_ruleset(shuffled) == vip_ruleset(entries)
    assert [rule["comment"] for rule in rules(vip_ruleset(entries), "vip")] == ["db", "web"]


@given(st.sets(st.integers(2, 250), max_size=12), st.sets(st.integers(2, 250), max_size=12))
def test_every_backend_is_in_the_map_once(first, second):
    backends = [f"10.0.1.{n}" for n in first] + [f"10.0.1.{n}" for n in second]
    document = vip_ruleset([service("web", "10.0.1.1", *backends)])

    targets: set[str] = set()
    for rule in rules(document, "vip"):
        addr = dnat_of(rule)["addr"]
        targets |= {addr} if isinstance(addr, str) else {ip for _, ip in addr["map"]["data"]["set"]}
    assert targets == set(backends)
    assert bool(rules(document, "refuse")) == (not backends)


def test_removal_deletes_the_table_even_if_absent():
    table = {"family": "ip", "name": TABLE}

    assert remove_vip_ruleset() == {
        "nftables": [{"add": {"table": table}}, {"delete": {"table": table}}]
    }
