"""Every ContainerSpec and Resources field reaches the create request as moby's Swarm executor
maps it (daemon/cluster/executor/container/container.go): one row per option, the task's spec
as the Engine API gives it, and what the engine is sent."""

from __future__ import annotations

from typing import Any

import pytest

from swarmlet.agent.executor import extra_hosts, plan_container
from swarmlet.models import Driver, Task, TaskSpec, TaskState, TaskStatus

MIB = 1024 * 1024

# Mounts reach the engine as the spec has them (the Engine API's Mount is the engine's).
BIND = {
    "Type": "bind",
    "Source": "/srv",
    "Target": "/s",
    "ReadOnly": True,
    "BindOptions": {"Propagation": "rslave"},
}
VOLUME = {
    "Type": "volume",
    "Source": "data",
    "Target": "/d",
    "VolumeOptions": {"NoCopy": True, "Labels": {"k": "v"}, "DriverConfig": {"Name": "local"}},
}
TMPFS = {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": MIB, "Mode": 0o1770}}
# Left out of the HostConfig when the spec does not set them.
UNSET = (
    "Init",
    "GroupAdd",
    "ReadonlyRootfs",
    "Sysctls",
    "CapAdd",
    "CapDrop",
    "OomScoreAdj",
    "Ulimits",
    "Dns",
    "DnsSearch",
    "DnsOptions",
    "ExtraHosts",
    "PidsLimit",
    "NanoCpus",
    "Memory",
    "MemorySwap",
    "MemorySwappiness",
    "LogConfig",
    "Mounts",
)

# (container spec fields, task spec fields besides the container, where, expected)
# `where` is "config" or "host"; `expected` holds the keys checked there (None: absent).
ROWS: list[tuple[str, dict[str, Any], dict[str, Any], str, dict[str, Any]]] = [
    ("env", {"Env": ["A=1", "B=2"]}, {}, "config", {"Env": ["A=1", "B=2"]}),
    ("workdir", {"Dir": "/tmp"}, {}, "config", {"WorkingDir": "/tmp"}),
    ("user", {"User": "nobody"}, {}, "config", {"User": "nobody"}),
    ("hostname", {"Hostname": "h1"}, {}, "config", {"Hostname": "h1"}),
    ("tty", {"TTY": True}, {}, "config", {"Tty": True}),
    ("open stdin", {"OpenStdin": True}, {}, "config", {"OpenStdin": True}),
    ("stop signal", {"StopSignal": "SIGUSR1"}, {}, "config", {"StopSignal": "SIGUSR1"}),
    ("stop grace", {"StopGracePeriod": 3_000_000_000}, {}, "config", {"StopTimeout": 3}),
    (
        "entrypoint and args",
        {"Command": ["sh", "-c"], "Args": ["sleep 1d"]},
        {},
        "config",
        {"Entrypoint": ["sh", "-c"], "Cmd": ["sleep 1d"]},
    ),
    (
        "container labels",
        {"Labels": {"tier": "front"}},
        {},
        "config",
        {"Labels": {"tier": "front"}},  # beside Swarm's own, checked below
    ),
    ("groups", {"Groups": ["1234", "adm"]}, {}, "host", {"GroupAdd": ["1234", "adm"]}),
    ("read only", {"ReadOnly": True}, {}, "host", {"ReadonlyRootfs": True}),
    ("init", {"Init": True}, {}, "host", {"Init": True}),
    ("no init", {"Init": False}, {}, "host", {"Init": False}),
    ("isolation", {"Isolation": "default"}, {}, "host", {"Isolation": "default"}),
    (
        "sysctls",
        {"Sysctls": {"net.ipv4.ip_forward": "1"}},
        {},
        "host",
        {"Sysctls": {"net.ipv4.ip_forward": "1"}},
    ),
    ("cap add", {"CapabilityAdd": ["CAP_NET_ADMIN"]}, {}, "host", {"CapAdd": ["CAP_NET_ADMIN"]}),
    ("cap drop", {"CapabilityDrop": ["CAP_CHOWN"]}, {}, "host", {"CapDrop": ["CAP_CHOWN"]}),
    ("oom score adj", {"OomScoreAdj": 500}, {}, "host", {"OomScoreAdj": 500}),
    (
        "ulimits",
        {"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]},
        {},
        "host",
        {"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]},
    ),
    (
        "dns",
        {"DNSConfig": {"Nameservers": ["10.9.9.9"], "Search": ["ex.test"], "Options": ["ndots:2"]}},
        {},
        "host",
        {"Dns": ["10.9.9.9"], "DnsSearch": ["ex.test"], "DnsOptions": ["ndots:2"]},
    ),
    (
        "hosts",
        {"Hosts": ["10.1.2.3 db.test", "10.1.2.4 cache.test alias", "10.1.2.5"]},
        {},
        "host",
        {"ExtraHosts": ["db.test:10.1.2.3", "cache.test:10.1.2.4"]},
    ),
    ("bind mount", {"Mounts": [BIND]}, {}, "host", {"Mounts": [BIND]}),
    ("volume mount", {"Mounts": [VOLUME]}, {}, "host", {"Mounts": [VOLUME]}),
    ("tmpfs mount", {"Mounts": [TMPFS]}, {}, "host", {"Mounts": [TMPFS]}),
    (
        "cpu and memory limits",
        {},
        {"Resources": {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 64 * MIB}}},
        "host",
        {"NanoCpus": 500_000_000, "Memory": 64 * MIB, "MemorySwap": None},
    ),
    (
        "pids limit",
        {},
        {"Resources": {"Limits": {"Pids": 64}}},
        "host",
        {"PidsLimit": 64},
    ),
    (
        "reservations are the scheduler's only",
        {},
        {"Resources": {"Reservations": {"NanoCPUs": 10**8, "MemoryBytes": 32 * MIB}}},
        "host",
        {"NanoCpus": None, "Memory": None, "MemoryReservation": None, "CpuShares": None},
    ),
    (
        "swap beyond the memory limit",
        {},
        {"Resources": {"Limits": {"MemoryBytes": 64 * MIB}, "SwapBytes": 16 * MIB}},
        "host",
        {"Memory": 64 * MIB, "MemorySwap": 80 * MIB},
    ),
    (
        "no swap",
        {},
        {"Resources": {"Limits": {"MemoryBytes": 64 * MIB}, "SwapBytes": 0}},
        "host",
        {"MemorySwap": 64 * MIB},
    ),
    (
        "unlimited swap",
        {},
        {"Resources": {"Limits": {"MemoryBytes": 64 * MIB}, "SwapBytes": -1}},
        "host",
        {"MemorySwap": -1},
    ),
    (
        "swap needs a memory limit",
        {},
        {"Resources": {"Limits": {}, "SwapBytes": 16 * MIB}},
        "host",
        {"Memory": None, "MemorySwap": None},
    ),
    (
        "swappiness",
        {},
        {"Resources": {"Limits": {}, "MemorySwappiness": 10}},
        "host",
        {"MemorySwappiness": 10},
    ),
    (
        "swappiness without limits, as moby: not applied",
        {},
        {"Resources": {"MemorySwappiness": 10}},
        "host",
        {"MemorySwappiness": None},
    ),
    (
        "log driver",
        {},
        {"LogDriver": {"Name": "json-file", "Options": {"max-size": "1m"}}},
        "host",
        {"LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}}},
    ),
    ("nothing set", {}, {}, "host", {"Isolation": "default", **dict.fromkeys(UNSET)}),
]


def make_task(container: dict[str, Any], task_spec: dict[str, Any]) -> Task:
    spec = TaskSpec.from_api({"ContainerSpec": {"Image": "busybox", **container}, **task_spec})
    return Task(
        id="task1",
        name="web.1",
        service_id="svc1",
        service_name="web",
        slot=1,
        node_id="node1",
        spec=spec,
        status=TaskStatus(state=TaskState.ASSIGNED),
        desired_state=TaskState.RUNNING,
    )


@pytest.mark.parametrize(
    ("container", "task_spec", "where", "expected"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_each_field_reaches_the_create_request(
    container: dict[str, Any], task_spec: dict[str, Any], where: str, expected: dict[str, Any]
) -> None:
    plan = plan_container(make_task(container, task_spec), "node1", {})
    sent = plan.config if where == "config" else plan.host_config
    if "Labels" in expected:
        sent = {"Labels": {k: v for k, v in sent["Labels"].items() if k in expected["Labels"]}}
    assert {key: sent.get(key) for key in expected} == expected


def test_hosts_lines_become_name_ip():
    assert extra_hosts(["10.0.0.1 a", "::1 b c", "  10.0.0.2\tspaced  ", ""]) == [
        "a:10.0.0.1",
        "b:::1",
        "spaced:10.0.0.2",
    ]


def test_the_swarms_default_log_driver_applies_unless_the_spec_has_one() -> None:
    default = Driver(name="json-file", options={"max-size": "2m"})
    task = make_task({}, {}).replace(log_driver=default)
    assert plan_container(task, "node1", {}).host_config["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "2m"},
    }
    own = make_task({}, {"LogDriver": {"Name": "none"}}).replace(log_driver=default)
    assert plan_container(own, "node1", {}).host_config["LogConfig"] == {
        "Type": "none",
        "Config": {},
    }
