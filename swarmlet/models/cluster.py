"""The cluster (the Engine API's ``Swarm`` object).

A zero in the fields declared ``ZeroIsDefault`` is SwarmKit's default, as moby's
MergeSwarmSpecToGRPC keeps the default for them (``if s.Raft.ElectionTick != 0``): the CLI's
``swarm init`` sends ``ElectionTick: 0`` and the swarm still has 10.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from swarmlet.models.base import Model, OmitEmpty, StoredObject, ZeroIsDefault
from swarmlet.models.secret import Driver
from swarmlet.models.service import SECOND_NS

DEFAULT_CLUSTER_NAME = "default"


class OrchestrationConfig(Model):
    task_history_retention_limit: int = 5


class DispatcherConfig(Model):
    heartbeat_period: ZeroIsDefault[int] = 5 * SECOND_NS


class RaftConfig(Model):
    snapshot_interval: ZeroIsDefault[int] = 10000
    log_entries_for_slow_followers: ZeroIsDefault[int] = 500
    election_tick: ZeroIsDefault[int] = 10
    heartbeat_tick: ZeroIsDefault[int] = 1
    # Kept and shown; swarmlet's store keeps no raft snapshots.
    keep_old_snapshots: int = 0


class CAConfig(Model):
    node_cert_expiry: ZeroIsDefault[int] = 90 * 24 * 3600 * SECOND_NS
    # `docker swarm ca --rotate` increments it: every change starts a root rotation.
    force_rotate: OmitEmpty[int] = 0
    # A root given by the operator (`--ca-cert`/`--ca-key`): not taken yet.
    signing_ca_cert: OmitEmpty[str] = ""
    signing_ca_key: OmitEmpty[str] = ""
    external_cas: OmitEmpty[list[dict[str, Any]]] = Field(default_factory=list)


class TaskDefaults(Model):
    """What every task gets unless its service says otherwise (``swarm init --log-driver``)."""

    log_driver: Driver | None = None


class EncryptionConfig(Model):
    auto_lock_managers: bool = False


class ClusterSpec(Model):
    name: ZeroIsDefault[str] = DEFAULT_CLUSTER_NAME
    labels: dict[str, str] = Field(default_factory=dict)
    orchestration: OrchestrationConfig = Field(default_factory=OrchestrationConfig)
    raft: RaftConfig = Field(default_factory=RaftConfig)
    dispatcher: DispatcherConfig = Field(default_factory=DispatcherConfig)
    ca_config: CAConfig = Field(default_factory=CAConfig)
    task_defaults: TaskDefaults = Field(default_factory=TaskDefaults)
    encryption_config: EncryptionConfig = Field(default_factory=EncryptionConfig)


class JoinTokens(Model):
    worker: str = ""
    manager: str = ""


class RootCA(Model):
    """The cluster's CA, as SwarmKit keeps it in its Cluster object: the root every node
    trusts and its key, and during a root rotation the new root and its key. The API never
    shows it (its TLSInfo is derived from it)."""

    ca_cert: str = ""
    ca_key: str = ""
    new_ca_cert: str = ""
    new_ca_key: str = ""
    # The new root signed by the old one, sent with every certificate issued during a
    # rotation so that nodes still trusting only the old root accept it.
    cross_signed: str = ""


class Cluster(StoredObject):
    _not_in_api = {"root_ca"}

    spec: ClusterSpec = Field(default_factory=ClusterSpec)
    join_tokens: JoinTokens = Field(default_factory=JoinTokens)
    root_ca: RootCA = Field(default_factory=RootCA)
    # The pools given at init; None (shown as null, as Swarm shows it) is 10.0.0.0/8.
    default_addr_pool: list[str] | None = None
    subnet_size: int = 24
    data_path_port: int = 4789
