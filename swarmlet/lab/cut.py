"""Cutting a lab host off the others, as a network partition would: the ruleset, without I/O.

The table (``ip <lab>-cut``) lives in the host's own network namespace and drops every packet
to or from the lab's /24 — the other hosts' addresses, so the swarm's 2377 and the overlays'
VXLAN between their addresses, any second (data path) address a host holds there, and the
bridge's gateway — except through loopback, where the host's packets to its own addresses
travel. The host's swarmletd keeps running and answers on its unix socket; nothing else
reaches it. Healing removes the table.
"""

from __future__ import annotations

from swarmlet.lab.plan import LabConfig
from swarmlet.net.nft import (
    FILTER,
    Json,
    base_chain,
    delete_table,
    match,
    meta,
    payload,
    prefix,
    replace_table,
    rule,
    ruleset,
)

PRIORITY = FILTER - 10  # before any filter chain swarmlet's own tables put in the host
COMMENT = "swarmlet lab cut"


def cut_ruleset(config: LabConfig) -> Json:
    """The table that cuts off the host whose namespace it is applied in (any host of the lab:
    it names no host, only the lab's subnet). Applying it again replaces it as it was."""
    table, lab = config.cut_table, prefix(config.cidr)
    accept, drop = {"accept": None}, {"drop": None}
    source, destination = payload("ip", "saddr"), payload("ip", "daddr")
    return ruleset(
        [
            *replace_table(table),
            base_chain(table, "input", "filter", "input", PRIORITY),
            base_chain(table, "output", "filter", "output", PRIORITY),
            base_chain(table, "forward", "filter", "forward", PRIORITY),
            rule(table, "input", [match(meta("iifname"), "lo"), accept], COMMENT),
            rule(table, "input", [match(source, lab), drop], COMMENT),
            rule(table, "output", [match(meta("oifname"), "lo"), accept], COMMENT),
            rule(table, "output", [match(destination, lab), drop], COMMENT),
            rule(table, "forward", [match(source, lab), drop], COMMENT),
            rule(table, "forward", [match(destination, lab), drop], COMMENT),
        ]
    )


def heal_ruleset(config: LabConfig) -> Json:
    """Removes the cut table; no error when the host is not cut."""
    return delete_table(config.cut_table)
