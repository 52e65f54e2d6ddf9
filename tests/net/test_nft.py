"""The nft driver against the real kernel, in scratch namespaces (root; skipped without it,
failed under CI=true): rulesets are applied for real, not only checked."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from swarmlet.net import libnft, nft
from swarmlet.net.mesh import MESH_SYSCTLS, mesh_ruleset, remove_mesh, remove_mesh_ruleset
from swarmlet.net.vip import remove_vip_in_netns, remove_vip_ruleset, vip_ruleset
from swarmlet.protocol import PublishedBackend, PublishedPort, ServiceEntry
from tests.net.nft_netns import in_netns, namespaces, require_root, ruleset_of, sh

WEB = ServiceEntry(
    id="w", name="web", vip="10.0.1.2", backends=["10.0.1.5", "10.0.1.6", "10.0.1.7"]
)
DB = ServiceEntry(id="d", name="db", vip="10.0.1.3", ports=[("tcp", 5432)])
PORTS = [
    PublishedPort(
        service_id="w",
        protocol="tcp",
        published_port=8080,
        target_port=80,
        backends=[
            PublishedBackend(ip="10.255.0.5", local=True),
            PublishedBackend(ip="10.255.0.6", local=False),
        ],
    ),
    PublishedPort(service_id="d", protocol="udp", published_port=5353, target_port=53),
]


def listed(netns: str, table: str) -> list[tuple[str, str]]:
    """The rules of a table as nft lists them: (chain, comment), in order."""
    out = sh("ip", "netns", "exec", netns, "nft", "-j", "list", "table", "ip", table)
    items = json.loads(out)["nftables"]
    return sorted((i["rule"]["chain"], i["rule"].get("comment", "")) for i in items if "rule" in i)


def sent(document: dict) -> list[tuple[str, str]]:
    rules = [c["add"]["rule"] for c in document["nftables"] if "rule" in c.get("add", {})]
    return sorted((rule["chain"], rule.get("comment", "")) for rule in rules)


@pytest.fixture
def scratch():
    with namespaces() as made:
        yield made, made.add("t")


@pytest.fixture(autouse=True, params=["libnftables", "nft command"])
def driver(request, monkeypatch) -> str:
    """Each test with the driver's two ways for a namespace's rulesets: libnftables in this
    process, and the command (where the library cannot be loaded). The host's own namespace
    always gets the command."""
    monkeypatch.setattr(nft, "IN_PROCESS", request.param == "libnftables")
    return str(request.param)


def test_the_library_loads_here(driver):
    # Debian's nftables package depends on libnftables1: the driver never falls back here.
    assert libnft.library() is not None


async def test_a_vip_ruleset_is_applied_in_a_tasks_namespace_and_replaced_whole(scratch):
    made, netns = scratch
    pid = made.sleeper(netns)

    await nft.apply_in_netns(pid, vip_ruleset([WEB, DB]))
    await nft.apply_in_netns(pid, vip_ruleset([WEB, DB]))  # again: replaced, not doubled

    assert listed(netns, "swarmlet") == sent(vip_ruleset([WEB, DB]))
    text = ruleset_of(netns)
    assert "dnat to numgen random mod 3 map { 0 : 10.0.1.5, 1 : 10.0.1.6, 2 : 10.0.1.7 }" in text
    assert 'ip daddr 10.0.1.3 reject with tcp reset comment "db: no task"' in text

    await nft.apply_in_netns(pid, vip_ruleset([DB]))
    assert "10.0.1.5" not in ruleset_of(netns)

    await remove_vip_in_netns(pid)
    await remove_vip_in_netns(pid)  # nothing left to remove is no error
    assert ruleset_of(netns).strip() == ""


async def test_the_mesh_is_applied_in_the_current_namespace(scratch):
    made, netns = scratch
    made.ip(netns, "link", "add", "swlbr4096", "type", "bridge")
    document = mesh_ruleset(PORTS, ["10.255.0.2/16"], "swlbr4096", {"w": "web"})

    # A thread that entered the namespace runs the driver: nft inherits its namespace.
    in_netns(netns, lambda: asyncio.run(nft.apply(document)))
    in_netns(netns, lambda: asyncio.run(nft.apply(document)))

    assert listed(netns, "swarmlet-mesh") == sent(document)
    text = ruleset_of(netns)
    assert (
        "tcp dport 8080 dnat to numgen random mod 2 map { 0 : 10.255.0.5, 1 : 10.255.0.6 }:80"
        ' comment "web tcp/8080->80"' in text
    )
    assert 'udp dport 5353 reject comment "d udp/5353->53: no task"' in text

    in_netns(netns, lambda: asyncio.run(remove_mesh()))
    assert ruleset_of(netns).strip() == ""


async def test_both_tables_live_side_by_side(scratch):
    _, netns = scratch
    path = f"/run/netns/{netns}"

    await nft.apply_in_netns_path(path, vip_ruleset([WEB]))
    await nft.apply_in_netns_path(path, mesh_ruleset(PORTS, [], "swlbr1"))
    await nft.apply_in_netns_path(path, remove_vip_ruleset())

    assert "table ip swarmlet-mesh" in ruleset_of(netns)
    assert "table ip swarmlet {" not in ruleset_of(netns)
    await nft.apply_in_netns_path(path, remove_mesh_ruleset())
    assert ruleset_of(netns).strip() == ""


async def test_nfts_message_is_kept_when_it_refuses(scratch):
    _, netns = scratch
    bad = nft.ruleset(
        [
            *nft.replace_table("swarmlet"),
            nft.rule("swarmlet", "no-such-chain", [{"accept": None}]),
        ]
    )

    with pytest.raises(nft.NftError, match="No such file or directory") as caught:
        await nft.apply_in_netns_path(f"/run/netns/{netns}", bad)

    assert caught.value.message.startswith("nft failed (1): ")
    assert ruleset_of(netns).strip() == ""  # nothing half-made


async def test_a_namespace_that_is_gone_is_an_error(driver):
    said = "cannot enter the network namespace" if driver == "libnftables" else "nsenter"
    with pytest.raises(nft.NftError, match=said):
        await nft.apply_in_netns(2**22 + 1, vip_ruleset([]))


def test_the_mesh_sysctls_are_set_in_the_namespace(scratch):
    _, netns = scratch

    in_netns(netns, lambda: nft.set_sysctls(MESH_SYSCTLS))

    for key, value in MESH_SYSCTLS.items():
        assert in_netns(netns, lambda key=key: Path("/proc/sys", key).read_text().strip()) == value


def test_without_root_these_tests_skip_but_fail_under_ci(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        require_root()

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and the nft tests: needs root"):
        require_root()
