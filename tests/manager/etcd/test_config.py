"""A member's configuration, argv and restart backoff, decided without I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmlet.errors import InvalidSpec
from swarmlet.manager.etcd import (
    ClusterState,
    Peer,
    etcd_argv,
    joining_member,
    new_cluster_member,
    restart_delay,
)
from swarmlet.manager.etcd.config import MAX_DELAY_S, failures_after

STATE = Path("/var/lib/swarmlet")


def flags(argv: list[str]) -> dict[str, str]:
    """``--name=value`` flags by name; each appears once."""
    pairs = [arg.removeprefix("--").split("=", 1) for arg in argv[1:]]
    assert all(len(pair) == 2 for pair in pairs), argv
    named = dict(pairs)
    assert len(named) == len(pairs)
    return named


def test_a_new_cluster_names_only_its_first_member() -> None:
    config = new_cluster_member("node1", STATE, "192.168.1.10", "cluster-1")
    argv = etcd_argv(config)
    assert argv[0] == "etcd"
    got = flags(argv)
    assert got["name"] == "node1"
    assert got["data-dir"] == "/var/lib/swarmlet/etcd"
    assert got["listen-peer-urls"] == "https://192.168.1.10:2380"
    assert got["initial-advertise-peer-urls"] == "https://192.168.1.10:2380"
    # Clients on loopback only: this host's swarmletd.
    assert got["listen-client-urls"] == "https://127.0.0.1:2379"
    assert got["advertise-client-urls"] == "https://127.0.0.1:2379"
    assert got["initial-cluster"] == "node1=https://192.168.1.10:2380"
    assert got["initial-cluster-state"] == "new"
    assert got["initial-cluster-token"] == "cluster-1"


def test_tls_with_client_certificates_on_both_ports_and_no_other_listener() -> None:
    config = new_cluster_member("node1", STATE, "10.0.0.1", "c", client_port=3379, peer_port=3380)
    got = flags(etcd_argv(config, "/usr/bin/etcd"))
    tls = "/var/lib/swarmlet/etcd-tls"
    assert got["cert-file"] == got["peer-cert-file"] == f"{tls}/member.crt"
    assert got["key-file"] == got["peer-key-file"] == f"{tls}/member.key"
    assert got["trusted-ca-file"] == got["peer-trusted-ca-file"] == f"{tls}/ca.crt"
    assert got["client-cert-auth"] == got["peer-client-cert-auth"] == "true"
    assert got["peer-cert-allowed-hostname"] == "swarm-etcd"
    urls = [value for name, value in got.items() if name.endswith("-urls")]
    assert urls
    assert all(url.startswith("https://") for url in urls)
    assert "listen-metrics-urls" not in got
    assert got["enable-v2"] == "false"
    # A member back from a partition does not depose etcd's leader (tests/e2e/test_failover.py).
    assert got["pre-vote"] == "true"
    assert config.log_path == STATE / "etcd.log"


def test_a_transaction_may_hold_a_scheduler_pass_of_tasks() -> None:
    """etcd's defaults (128 operations, 1.5 MiB) would refuse a pass of thousands of tasks,
    and a request over 10 MB would be a log entry etcd 3.4 cannot read back at its next start
    (etcd-io/etcd#14025): 10,000 tasks, compressed and sealed, are about 2.5 MB."""
    got = flags(etcd_argv(new_cluster_member("n", STATE, "10.0.0.1", "c")))
    assert int(got["max-txn-ops"]) >= 20_000  # 10,000 tasks: a put and a compare each
    assert 4 * 1024 * 1024 <= int(got["max-request-bytes"]) < 10 * 1024 * 1024


def test_an_ipv6_address_is_bracketed_in_urls() -> None:
    config = new_cluster_member("n", STATE, "fd00::0001", "c")
    assert config.address == "fd00::1"
    assert config.peer_url == "https://[fd00::1]:2380"


@pytest.mark.parametrize("address", ["node1.example", "", "10.0.0.300"])
def test_a_member_needs_an_ip_address(address: str) -> None:
    with pytest.raises(InvalidSpec, match="needs an IP address"):
        new_cluster_member("n", STATE, address, "c")


def test_a_port_out_of_range_is_refused() -> None:
    with pytest.raises(InvalidSpec, match="invalid port"):
        new_cluster_member("n", STATE, "10.0.0.1", "c", peer_port=70000)


def test_a_joining_member_names_every_member_and_takes_its_name() -> None:
    members = [
        Peer("node1", "https://10.0.0.1:2380"),
        Peer("node2", "https://10.0.0.2:2380"),
        Peer("", "https://10.0.0.3:2380"),  # the one just added
    ]
    config = joining_member("node3", STATE, "10.0.0.3", "cluster-1", members)
    assert config.cluster_state is ClusterState.EXISTING
    got = flags(etcd_argv(config))
    assert got["initial-cluster"] == (
        "node1=https://10.0.0.1:2380,node2=https://10.0.0.2:2380,node3=https://10.0.0.3:2380"
    )
    assert got["initial-cluster-state"] == "existing"


def test_a_member_that_was_not_added_cannot_join() -> None:
    members = [Peer("node1", "https://10.0.0.1:2380")]
    with pytest.raises(InvalidSpec, match="was not added"):
        joining_member("node3", STATE, "10.0.0.3", "c", members)


def test_another_member_without_a_name_is_refused() -> None:
    # Added but never started: etcd would refuse the --initial-cluster anyway.
    members = [Peer("", "https://10.0.0.2:2380"), Peer("", "https://10.0.0.3:2380")]
    with pytest.raises(InvalidSpec, match="without a name"):
        joining_member("node3", STATE, "10.0.0.3", "c", members)


def test_restarts_back_off_from_half_a_second_to_thirty() -> None:
    assert [restart_delay(n) for n in range(0, 8)] == [0, 0.5, 1, 2, 4, 8, 16, 30]
    assert restart_delay(10_000) == MAX_DELAY_S


def test_a_member_that_ran_a_minute_starts_again_from_the_shortest_delay() -> None:
    assert failures_after(0, 0.2) == 1
    assert failures_after(4, 3.0) == 5
    assert failures_after(4, 60.0) == 1
