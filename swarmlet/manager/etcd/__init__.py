"""The etcd member a manager runs: its configuration, its TLS, its process and its cluster.

Each manager's ``swarmletd`` will run one member of the swarm's etcd cluster (Debian's
``etcd-server``, 3.4), as its child, with peer and client TLS issued by the cluster's root
and its data in the node's state directory. Decisions are pure (``config``: the member's
files, URLs, ``--initial-cluster`` and ``etcd``'s argv; the restart backoff); the I/O is thin:
``tls`` issues and writes the member's certificate, ``supervisor`` runs the process, ``client``
speaks etcd's v3 gRPC API (health, members, keys, leases, watches). A manager alone
imports this package, and the client (gRPC, some 22 MiB) only a manager on etcd: it is
imported from its module, not from here. See docs/store.md ("etcd members").
"""

from swarmlet.manager.etcd.config import (
    CLIENT_PORT,
    MEMBER_NAME,
    PEER_PORT,
    ClusterState,
    MemberConfig,
    Peer,
    etcd_argv,
    joining_member,
    new_cluster_member,
    restart_delay,
)
from swarmlet.manager.etcd.supervisor import Supervisor, wait_healthy
from swarmlet.manager.etcd.tls import (
    ClientTLS,
    MemberTLS,
    client_ssl_context,
    client_tls,
    member_tls,
    write_member_tls,
)

__all__ = [
    "CLIENT_PORT",
    "MEMBER_NAME",
    "PEER_PORT",
    "ClientTLS",
    "ClusterState",
    "MemberConfig",
    "MemberTLS",
    "Peer",
    "Supervisor",
    "client_ssl_context",
    "client_tls",
    "etcd_argv",
    "joining_member",
    "member_tls",
    "new_cluster_member",
    "restart_delay",
    "wait_healthy",
    "write_member_tls",
]
