"""The ruleset that cuts a lab host off the others (no root: the plan only; the live test is
tests/lab/test_lab_cut_live.py)."""

from swarmlet.lab.cut import cut_ruleset, heal_ruleset
from swarmlet.lab.plan import LabConfig

CONFIG = LabConfig.named("swlm", "192.168.246")
LAB = {"prefix": {"addr": "192.168.246.0", "len": 24}}


def commands(document, verb, kind):
    return [
        command[verb][kind] for command in document["nftables"] if kind in command.get(verb, {})
    ]


def rules_of(document, chain):
    return [rule["expr"] for rule in commands(document, "add", "rule") if rule["chain"] == chain]


def match(left, right):
    return {"match": {"op": "==", "left": left, "right": right}}


def test_the_table_is_the_labs_own_and_replaced_whole():
    document = cut_ruleset(CONFIG)

    table = {"family": "ip", "name": "swlm-cut"}
    assert document["nftables"][:3] == [
        {"add": {"table": table}},
        {"delete": {"table": table}},
        {"add": {"table": table}},
    ]
    assert CONFIG.cut_table == "swlm-cut"
    assert LabConfig().cut_table == "swl-cut"


def test_input_output_and_forward_are_hooked_before_swarmlets_filters():
    chains = commands(cut_ruleset(CONFIG), "add", "chain")

    assert {(c["name"], c["hook"], c["prio"], c["policy"]) for c in chains} == {
        ("input", "input", -10, "accept"),
        ("output", "output", -10, "accept"),
        ("forward", "forward", -10, "accept"),
    }


def test_everything_to_and_from_the_lab_subnet_is_dropped_but_loopback():
    document = cut_ruleset(CONFIG)
    source = {"payload": {"protocol": "ip", "field": "saddr"}}
    destination = {"payload": {"protocol": "ip", "field": "daddr"}}

    # Loopback first: the host's packets to its own address travel there, and stay.
    assert rules_of(document, "input") == [
        [match({"meta": {"key": "iifname"}}, "lo"), {"accept": None}],
        [match(source, LAB), {"drop": None}],
    ]
    assert rules_of(document, "output") == [
        [match({"meta": {"key": "oifname"}}, "lo"), {"accept": None}],
        [match(destination, LAB), {"drop": None}],
    ]
    assert rules_of(document, "forward") == [
        [match(source, LAB), {"drop": None}],
        [match(destination, LAB), {"drop": None}],
    ]


def test_the_ruleset_names_no_host_so_it_serves_every_host_of_the_lab():
    assert "192.168.246.1" not in str(cut_ruleset(CONFIG))


def test_heal_removes_the_table_even_when_absent():
    table = {"family": "ip", "name": "swlm-cut"}

    assert heal_ruleset(CONFIG) == {
        "nftables": [{"add": {"table": table}}, {"delete": {"table": table}}]
    }
