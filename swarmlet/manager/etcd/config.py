"""An etcd member's configuration, decided without I/O: its files, its URLs, the cluster it
starts or joins, the argv of ``etcd`` (3.4's flags) and how long to wait before a restart.

Both ports are HTTPS with client-certificate authentication against the cluster's roots, and
etcd opens no other listener (no plain HTTP, no metrics port):
- the peer port, on the node's advertise address, where members replicate: a certificate
  must also carry the DNS name ``swarm-etcd`` (``MEMBER_NAME``), which only a member's has
  (``tls.member_tls``), so a node certificate from the same root, a worker's, opens nothing;
- the client port, on loopback only (``LOOPBACK``): only this host's ``swarmletd`` talks to
  its member. etcd 3.4 cannot demand ``swarm-etcd`` of its clients: its v3 JSON gateway
  dials the member's own gRPC server with a check that then always fails (etcd-io/etcd#15755),
  so any certificate of the cluster's root is a client, and loopback keeps the other nodes'
  out. A joining manager is added by a manager already in the cluster, through its member.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from swarmlet.errors import InvalidSpec

# etcd's own defaults; lab hosts each have an address of their own, so fixed ports are fine.
CLIENT_PORT = 2379
PEER_PORT = 2380
# The DNS name every member's certificate carries, and the only one etcd admits as a peer.
MEMBER_NAME = "swarm-etcd"
LOOPBACK = "127.0.0.1"

DATA_FOLDER = "etcd"
TLS_FOLDER = "etcd-tls"
LOG_FILE = "etcd.log"

# etcd's defaults refuse a txn of more than 128 operations and a request over 1.5 MiB, but
# the store writes each transaction as one txn, and a scheduler pass places thousands of
# tasks at once: 10,000 tasks (a put and a compare each) make one txn of 20,000 operations
# and, compressed and sealed, about 2.5 MB (docs/store.md, "The etcd backend"). Not more
# than 8 MiB: etcd 3.4 keeps a txn as one entry of its log and cannot read back an entry
# over 10 MB when it restarts (etcd-io/etcd#14025), so a larger txn must be refused when it
# is asked for, not found unreadable at the next start. The request limit also bounds the
# gRPC messages the member accepts, its gateway's included.
MAX_TXN_OPS = 100_000
MAX_REQUEST_BYTES = 8 * 1024 * 1024

# Restarts after a crash: 0.5 s, doubling, at most 30 s; a member that ran for a minute
# before it died starts again from the shortest delay.
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 30.0
STEADY_RUN_S = 60.0


class ClusterState(StrEnum):
    NEW = "new"
    EXISTING = "existing"


@dataclass(frozen=True)
class Peer:
    """A member as ``--initial-cluster`` names it: its name and its peer URL."""

    name: str
    peer_url: str


@dataclass(frozen=True)
class MemberConfig:
    name: str  # the node ID
    state_dir: Path
    address: str  # the node's advertise address (an IP): the peer port's
    cluster_token: str  # the swarm's cluster ID: members of another swarm never mix
    initial_cluster: tuple[Peer, ...]
    cluster_state: ClusterState
    client_port: int = CLIENT_PORT
    peer_port: int = PEER_PORT
    client_address: str = LOOPBACK
    # ``docker swarm init --force-new-cluster``: start once from this member's data as a
    # cluster of itself alone (``forced``); never written to ``etcd.json``.
    force_new_cluster: bool = False

    @property
    def data_dir(self) -> Path:
        return self.state_dir / DATA_FOLDER

    @property
    def tls_dir(self) -> Path:
        return self.state_dir / TLS_FOLDER

    @property
    def cert_path(self) -> Path:
        """The member's certificate (and the cross-signed root during a rotation)."""
        return self.tls_dir / "member.crt"

    @property
    def key_path(self) -> Path:
        return self.tls_dir / "member.key"

    @property
    def trust_path(self) -> Path:
        """The cluster's roots: what a peer's or a client's certificate must chain to."""
        return self.tls_dir / "ca.crt"

    @property
    def log_path(self) -> Path:
        return self.state_dir / LOG_FILE

    @property
    def client_url(self) -> str:
        return _url(self.client_address, self.client_port)

    @property
    def peer_url(self) -> str:
        return _url(self.address, self.peer_port)


def _address(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError as exc:
        raise InvalidSpec(f"an etcd member needs an IP address, not {address!r}") from exc


def _url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"


def _port(port: int) -> int:
    if not 0 < port < 65536:
        raise InvalidSpec(f"invalid port for an etcd member: {port}")
    return port


def new_cluster_member(
    name: str,
    state_dir: Path,
    address: str,
    cluster_token: str,
    *,
    client_port: int = CLIENT_PORT,
    peer_port: int = PEER_PORT,
) -> MemberConfig:
    """The first member of a new cluster: the only one its ``--initial-cluster`` names."""
    address = _address(address)
    peer = Peer(name, _url(address, _port(peer_port)))
    return MemberConfig(
        name=name,
        state_dir=state_dir,
        address=address,
        cluster_token=cluster_token,
        initial_cluster=(peer,),
        cluster_state=ClusterState.NEW,
        client_port=_port(client_port),
        peer_port=peer_port,
    )


def joining_member(
    name: str,
    state_dir: Path,
    address: str,
    cluster_token: str,
    members: Sequence[Peer],
    *,
    client_port: int = CLIENT_PORT,
    peer_port: int = PEER_PORT,
) -> MemberConfig:
    """A member joining a running cluster, after it was added to it (``member add``):
    ``members`` are the cluster's members as the add answered (``EtcdClient.member_add``),
    the new one among them without a name yet; it takes ``name`` here.
    """
    address = _address(address)
    own_url = _url(address, _port(peer_port))
    if not any(peer.peer_url == own_url for peer in members):
        raise InvalidSpec(f"{own_url} was not added to the etcd cluster")
    cluster = tuple(
        Peer(name, peer.peer_url) if peer.peer_url == own_url else peer for peer in members
    )
    unnamed = [peer.peer_url for peer in cluster if not peer.name]
    if unnamed:
        raise InvalidSpec(f"etcd members without a name: {', '.join(unnamed)}")
    return MemberConfig(
        name=name,
        state_dir=state_dir,
        address=address,
        cluster_token=cluster_token,
        initial_cluster=cluster,
        cluster_state=ClusterState.EXISTING,
        client_port=_port(client_port),
        peer_port=peer_port,
    )


def forced(config: MemberConfig) -> MemberConfig:
    """The member started once with etcd's ``--force-new-cluster``: from its own data, it
    commits the removal of every other member and runs as a cluster of one, keeping its keys,
    its member ID and its cluster ID. Only for a member that has data (``data_dir``), and only
    once: a member restarted with the flag after others joined it would remove them again."""
    return replace(config, force_new_cluster=True)


def initial_cluster(peers: Sequence[Peer]) -> str:
    """``--initial-cluster``: ``name=url`` pairs, a member with several URLs once for each."""
    return ",".join(f"{peer.name}={peer.peer_url}" for peer in peers)


def etcd_argv(config: MemberConfig, binary: str = "etcd") -> list[str]:
    """The command line of the member. On a restart with data in ``data_dir`` etcd reads its
    cluster from there and ignores the ``--initial-*`` flags."""
    tls = [
        f"--cert-file={config.cert_path}",
        f"--key-file={config.key_path}",
        f"--trusted-ca-file={config.trust_path}",
        "--client-cert-auth=true",
        f"--peer-cert-file={config.cert_path}",
        f"--peer-key-file={config.key_path}",
        f"--peer-trusted-ca-file={config.trust_path}",
        "--peer-client-cert-auth=true",
        f"--peer-cert-allowed-hostname={MEMBER_NAME}",
    ]
    return [
        binary,
        f"--name={config.name}",
        f"--data-dir={config.data_dir}",
        f"--listen-peer-urls={config.peer_url}",
        f"--initial-advertise-peer-urls={config.peer_url}",
        f"--listen-client-urls={config.client_url}",
        f"--advertise-client-urls={config.client_url}",
        f"--initial-cluster={initial_cluster(config.initial_cluster)}",
        f"--initial-cluster-state={config.cluster_state.value}",
        f"--initial-cluster-token={config.cluster_token}",
        *tls,
        f"--max-txn-ops={MAX_TXN_OPS}",
        f"--max-request-bytes={MAX_REQUEST_BYTES}",
        "--enable-v2=false",
        # A member cut off from the others campaigns on its own, raising its raft term; without
        # a pre-vote it would depose etcd's leader when it comes back, and the swarm would lose
        # its leader (and its writes) for a few seconds on every heal (etcd 3.5's default).
        "--pre-vote=true",
        "--logger=zap",
        "--log-outputs=stderr",
        *(["--force-new-cluster"] if config.force_new_cluster else []),
    ]


def restart_delay(failures: int) -> float:
    """Seconds to wait before the ``failures``-th restart in a row (1 for the first)."""
    if failures < 1:
        return 0.0
    return min(FIRST_DELAY_S * float(2 ** min(failures - 1, 16)), MAX_DELAY_S)


def failures_after(previous: int, ran_for_s: float) -> int:
    """Restarts in a row once a member that ran ``ran_for_s`` seconds has died."""
    return 1 if ran_for_s >= STEADY_RUN_S else previous + 1
