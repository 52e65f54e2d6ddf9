"""The host's sysctls and Docker's FORWARD chain (``swarmlet.net.host``): the plans on plain
listings, then on the kernel in scratch namespaces firewalled as Docker does."""

from __future__ import annotations

from pathlib import Path

from swarmlet.net.host import (
    CHAIN,
    FORWARD_RULES,
    HOST_FILE,
    JUMP,
    HostChanges,
    is_managed,
    plan_close,
    plan_open,
)
from tests.net.nft_netns import in_netns, namespaces, sh

UNMANAGED = "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"
DOCKER = (
    "-P FORWARD DROP\n"
    "-A FORWARD -j DOCKER-USER\n"
    "-A FORWARD -j DOCKER-ISOLATION-STAGE-1\n"
    "-A FORWARD -o docker0 -j DOCKER\n"
)
OURS = f"-N {CHAIN}\n" + "".join(f"-A {CHAIN} {' '.join(rule)}\n" for rule in FORWARD_RULES)


def forward_with_jump_first(listing: str) -> str:
    head, _, rest = listing.partition("\n")
    return f"{head}\n-A FORWARD -j {CHAIN}\n{rest}"


def test_only_a_firewalled_forward_chain_is_managed() -> None:
    assert not is_managed(UNMANAGED)
    assert is_managed(DOCKER)
    assert is_managed("-P FORWARD ACCEPT\n-A FORWARD -i eth0 -j DROP\n")
    assert is_managed("-P FORWARD DROP\n")


def test_opening_makes_the_chain_and_jumps_to_it_first() -> None:
    commands = plan_open(DOCKER, None)
    assert commands[0] == ("-N", CHAIN)
    assert commands[1 : 1 + len(FORWARD_RULES)] == [("-A", CHAIN, *r) for r in FORWARD_RULES]
    assert commands[-1] == ("-I", "FORWARD", "1", *JUMP)


def test_opening_what_is_open_does_nothing() -> None:
    assert plan_open(forward_with_jump_first(DOCKER), OURS) == []


def test_a_jump_pushed_down_by_a_restarted_dockerd_goes_first_again() -> None:
    pushed = DOCKER.replace(
        "-A FORWARD -j DOCKER-ISOLATION-STAGE-1\n",
        f"-A FORWARD -j DOCKER-ISOLATION-STAGE-1\n-A FORWARD -j {CHAIN}\n",
    )
    assert plan_open(pushed, OURS) == [("-D", "FORWARD", *JUMP), ("-I", "FORWARD", "1", *JUMP)]


def test_a_chain_with_other_rules_is_refilled() -> None:
    stale = f"-N {CHAIN}\n-A {CHAIN} -j DROP\n"
    commands = plan_open(forward_with_jump_first(DOCKER), stale)
    assert commands == [("-F", CHAIN), *[("-A", CHAIN, *r) for r in FORWARD_RULES]]


def test_closing_removes_every_jump_and_the_chain() -> None:
    twice = forward_with_jump_first(forward_with_jump_first(DOCKER))
    assert plan_close(twice, OURS) == [
        ("-D", "FORWARD", *JUMP),
        ("-D", "FORWARD", *JUMP),
        ("-F", CHAIN),
        ("-X", CHAIN),
    ]
    assert plan_close(DOCKER, None) == []


def sysctl(name: str) -> str:
    return Path("/proc/sys", name).read_text().strip()


def test_on_a_firewalled_host_apply_opens_and_restore_puts_everything_back(
    tmp_path: Path,
) -> None:
    with namespaces() as made:
        netns = made.add("h")
        sh("ip", "netns", "exec", netns, "iptables", "-P", "FORWARD", "DROP")
        sh(
            "ip",
            "netns",
            "exec",
            netns,
            "iptables",
            "-A",
            "FORWARD",
            "-o",
            "docker0",
            "-j",
            "ACCEPT",
        )
        before = sh("ip", "netns", "exec", netns, "iptables", "-S")
        localnet = in_netns(netns, lambda: sysctl("net/ipv4/conf/all/route_localnet"))
        assert localnet == "0"

        in_netns(netns, HostChanges(tmp_path).apply)
        in_netns(netns, HostChanges(tmp_path).apply)  # again: nothing more
        opened = sh("ip", "netns", "exec", netns, "iptables", "-S", "FORWARD").splitlines()
        assert opened[1] == f"-A FORWARD -j {CHAIN}"
        assert opened.count(f"-A FORWARD -j {CHAIN}") == 1
        assert in_netns(netns, lambda: sysctl("net/ipv4/conf/all/route_localnet")) == "1"
        assert in_netns(netns, lambda: sysctl("net/ipv4/ip_forward")) == "1"

        # Another daemon (a restart) restores from what the first one remembered.
        in_netns(netns, HostChanges(tmp_path).restore)
        assert sh("ip", "netns", "exec", netns, "iptables", "-S") == before
        assert in_netns(netns, lambda: sysctl("net/ipv4/conf/all/route_localnet")) == "0"
        assert not (tmp_path / HOST_FILE).exists()


def test_a_namespace_nobody_firewalls_gets_no_iptables_rules(tmp_path: Path) -> None:
    with namespaces() as made:
        netns = made.add("h")
        in_netns(netns, HostChanges(tmp_path).apply)
        # Not even an empty table: iptables-nft makes one only when a rule is written.
        assert sh("ip", "netns", "exec", netns, "nft", "list", "ruleset") == ""
        in_netns(netns, HostChanges(tmp_path).restore)
        assert sh("ip", "netns", "exec", netns, "nft", "list", "ruleset") == ""
