"""What a lab of N hosts is made of: names, addresses, paths, argv — decided without I/O.

Every function here is pure: it takes a ``LabConfig`` and returns plain data (a ``LabPlan``, or
the commands that build or tear down the network). ``swarmlet.lab.lab`` executes them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EngineMode = Literal["shared", "per-node"]
Role = Literal["manager", "worker"]
Command = tuple[str, ...]

MAX_NODES = 50  # addresses .11 .. .60 of the lab's /24
# What a per-node engine gets from the machine's (`docker save | docker load`: there is no
# registry to pull from); scripts/bootstrap.sh builds them all.
TEST_IMAGES = (
    "swarmlet-test/busybox:latest",
    "swarmlet-test/busybox:v2",
    "registry:2",
    "registry:latest",
    # The dockercoins tutorial's `docker service create --name redis redis` (docs/dockercoins.md).
    "redis:latest",
)


def _default_swarmletd() -> tuple[str, ...]:
    # The daemon of the virtualenv that runs this code, so a lab always runs the code it came with.
    return (str(Path(sys.prefix) / "bin" / "swarmletd"),)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LabConfig(_Frozen):
    """Where a lab lives. The default is the one `swarmlet lab` and `make run` drive."""

    name: str = Field(default="swl", pattern=r"^[a-z][a-z0-9]{0,7}$")
    subnet: str = Field(default="192.168.254", pattern=r"^\d{1,3}\.\d{1,3}\.\d{1,3}$")
    run_dir: Path = Path("/run/swarmlet-lab")
    state_root: Path = Path("/var/lib/swarmlet-lab")
    log_dir: Path = Path("/var/log/swarmlet")
    log_prefix: str = "lab"
    swarmletd: tuple[str, ...] = Field(default_factory=_default_swarmletd)
    shared_engine: str = "unix:///var/run/docker.sock"
    images: tuple[str, ...] = TEST_IMAGES

    @classmethod
    def named(cls, name: str, subnet: str, **overrides: object) -> LabConfig:
        """A lab beside the default one, every kernel object, path and label apart from it."""
        fields: dict[str, object] = {
            "name": name,
            "subnet": subnet,
            "run_dir": Path(f"/run/swarmlet-lab-{name}"),
            "state_root": Path(f"/var/lib/swarmlet-lab-{name}"),
            "log_prefix": f"lab-{name}",
        }
        return cls.model_validate(fields | overrides)

    @property
    def bridge(self) -> str:
        return f"{self.name}-lab0"

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    @property
    def container_label(self) -> str:
        """The label swarmletd puts on every container it starts, so `down` finds them all."""
        return f"com.swarmlet.lab={self.name}"

    @property
    def nft_table(self) -> str:
        return f"{self.name}-lab"

    @property
    def cut_table(self) -> str:
        """The nftables table (family ip) that cuts a host off, in that host's namespace."""
        return f"{self.name}-cut"

    @property
    def cidr(self) -> str:
        return f"{self.subnet}.0/24"

    @property
    def lab_file(self) -> Path:
        return self.run_dir / "lab.json"

    @property
    def lock_file(self) -> Path:
        # Beside run_dir, not in it: `down` removes run_dir while the lock is held.
        return self.run_dir.with_name(self.run_dir.name + ".lock")


class EnginePlan(_Frozen):
    """A host's own dockerd (``--engine per-node``)."""

    socket: Path
    pid_file: Path
    log_file: Path
    data_root: Path
    exec_root: Path
    command: tuple[str, ...]

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"


class HostPlan(_Frozen):
    index: int
    hostname: str
    netns: str
    veth: str  # the root-namespace end; the other end is `eth0` inside the host
    address: str
    run_dir: Path
    state_dir: Path
    api_socket: Path
    pid_file: Path
    log_file: Path
    command: tuple[str, ...]  # swarmletd, run inside the namespace by `argv`
    engine: EnginePlan | None = None
    role: Role = "worker"  # what the host joins as (node1 inits the swarm: a manager)

    @model_validator(mode="before")
    @classmethod
    def _node1_manages(cls, data: object) -> object:
        # A lab.json written before hosts had roles: node1 was its one manager.
        if isinstance(data, dict) and "role" not in data and data.get("index") == 1:
            return {**data, "role": "manager"}
        return data

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns

    @property
    def docker_host(self) -> str:
        return f"unix://{self.api_socket}"

    @property
    def listen_addr(self) -> str:
        return f"{self.address}:2377"

    def in_netns(self, command: tuple[str, ...]) -> Command:
        # nsenter, not `ip netns exec`: the latter remounts /sys, and dockerd then fails on cgroups.
        return ("nsenter", f"--net={self.netns_path}", *command)

    @property
    def argv(self) -> Command:
        return self.in_netns(self.command)


class LabPlan(_Frozen):
    config: LabConfig
    engine: EngineMode
    hosts: tuple[HostPlan, ...]

    @property
    def manager(self) -> HostPlan:
        """node1: it inits the swarm, and DOCKER_HOST names it."""
        return self.hosts[0]

    @property
    def managers(self) -> tuple[HostPlan, ...]:
        return tuple(host for host in self.hosts if host.role == "manager")

    @property
    def workers(self) -> tuple[HostPlan, ...]:
        return tuple(host for host in self.hosts if host.role == "worker")

    @property
    def docker_host(self) -> str:
        return self.manager.docker_host

    def host(self, node: str) -> HostPlan:
        """A host by its hostname (`node2`), its namespace (`swl-node2`) or its number (`2`)."""
        for host in self.hosts:
            if node in (host.hostname, host.netns, str(host.index)):
                return host
        known = ", ".join(h.hostname for h in self.hosts)
        raise KeyError(f"no host {node!r} in the lab (hosts: {known})")


def plan_lab(
    config: LabConfig, nodes: int, engine: EngineMode = "shared", managers: int = 1
) -> LabPlan:
    """The lab of ``nodes`` hosts; node1 .. node<managers> are its managers."""
    if not 1 <= nodes <= MAX_NODES:
        raise ValueError(f"a lab has 1 to {MAX_NODES} nodes, not {nodes}")
    if not 1 <= managers <= nodes:
        raise ValueError(f"a lab of {nodes} nodes has 1 to {nodes} managers, not {managers}")
    hosts = tuple(
        plan_host(config, i, engine, "manager" if i <= managers else "worker")
        for i in range(1, nodes + 1)
    )
    return LabPlan(config=config, engine=engine, hosts=hosts)


def plan_host(config: LabConfig, index: int, engine: EngineMode, role: Role = "worker") -> HostPlan:
    hostname = f"node{index}"
    netns = f"{config.name}-{hostname}"
    run_dir = config.run_dir / hostname
    state_dir = config.state_root / hostname
    engine_plan = plan_engine(config, index) if engine == "per-node" else None
    docker_host = engine_plan.docker_host if engine_plan else config.shared_engine
    api_socket = run_dir / "docker.sock"
    command = (
        *config.swarmletd,
        "--state-dir", str(state_dir),
        "--host", f"unix://{api_socket}",
        "--docker-host", docker_host,
        "--hostname", hostname,
        "--container-label", config.container_label,
        # Every host's engine reads the one plugin directory: each needs a name of its own.
        "--network-plugin", netns,
        *(() if engine_plan else ("--shared-engine",)),
    )  # fmt: skip
    return HostPlan(
        index=index,
        hostname=hostname,
        netns=netns,
        veth=f"{config.name}-v{index}",
        address=f"{config.subnet}.{10 + index}",
        run_dir=run_dir,
        state_dir=state_dir,
        api_socket=api_socket,
        pid_file=run_dir / "swarmletd.pid",
        log_file=config.log_dir / f"{config.log_prefix}-{hostname}.log",
        command=command,
        engine=engine_plan,
        role=role,
    )


def plan_engine(config: LabConfig, index: int) -> EnginePlan:
    hostname = f"node{index}"
    run_dir = config.run_dir / hostname
    data_root = config.state_root / hostname / "docker"
    exec_root = run_dir / "engine"
    socket = run_dir / "engine.sock"
    pid_file = run_dir / "engine.pid"
    namespace = f"{config.name}-{hostname}"
    command = (
        "dockerd",
        "--data-root", str(data_root),
        "--exec-root", str(exec_root),
        "--pidfile", str(pid_file),
        "-H", f"unix://{socket}",
        # Its own containerd namespaces, so it never sees (or cleans up) another engine's
        # containers should it share a system containerd with the machine's engine.
        "--containerd-namespace", namespace,
        "--containerd-plugins-namespace", f"{namespace}-plugins",
        # No iptables rules and no docker0 in the host: swarmlet programs the host's network
        # itself, and a shared-engine host has neither, so both modes look the same to it.
        "--iptables=false",
        "--bridge=none",
        "--log-level=warn",
    )  # fmt: skip
    return EnginePlan(
        socket=socket,
        pid_file=pid_file,
        log_file=config.log_dir / f"{config.log_prefix}-{hostname}-engine.log",
        data_root=data_root,
        exec_root=exec_root,
        command=command,
    )


def network_up(plan: LabPlan, *, iptables: bool) -> list[Command]:
    """The commands that build the bridge, the hosts and the firewall, in order."""
    config = plan.config
    bridge = config.bridge
    commands: list[Command] = [
        ("ip", "link", "add", bridge, "type", "bridge"),
        ("ip", "addr", "add", f"{config.gateway}/24", "dev", bridge),
        ("ip", "link", "set", bridge, "up"),
    ]
    for host in plan.hosts:
        ns = host.netns
        commands += [
            ("ip", "netns", "add", ns),
            ("ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", ns),
            ("ip", "link", "set", host.veth, "master", bridge, "up"),
            ("ip", "-n", ns, "addr", "add", f"{host.address}/24", "dev", "eth0"),
            ("ip", "-n", ns, "link", "set", "eth0", "up"),
            ("ip", "-n", ns, "link", "set", "lo", "up"),
        ]
    return commands + firewall_up(config, iptables=iptables)


def firewall_up(config: LabConfig, *, iptables: bool) -> list[Command]:
    bridge, table = config.bridge, config.nft_table
    # Nothing is routed between the lab and the rest of the machine, whatever a host's routes say.
    commands: list[Command] = [
        ("nft", "add", "table", "inet", table),
        ("nft", "add", "chain", "inet", table, "forward",
         "{ type filter hook forward priority filter - 10 ; policy accept ; }"),
        ("nft", "add", "rule", "inet", table, "forward",
         "iifname", bridge, "oifname", "!=", bridge, "drop"),
        ("nft", "add", "rule", "inet", table, "forward",
         "oifname", bridge, "iifname", "!=", bridge, "drop"),
    ]  # fmt: skip
    if iptables:
        # Docker loads br_netfilter, which hands frames crossing any bridge to iptables' FORWARD
        # chain, whose policy Docker sets to DROP: host-to-host traffic needs this accept.
        commands.append(("iptables", "-I", "FORWARD", "1", *iptables_accept_rule(config)))
    return commands


def iptables_accept_rule(config: LabConfig) -> Command:
    bridge = config.bridge
    comment = f"swarmlet lab {config.name}"
    return ("-i", bridge, "-o", bridge, "-m", "comment", "--comment", comment, "-j", "ACCEPT")


def network_down(plan: LabPlan, *, iptables: bool) -> list[Command]:
    """The commands that remove what `network_up` made; each may fail if it is already gone."""
    config = plan.config
    commands: list[Command] = []
    for host in plan.hosts:
        commands += [("ip", "netns", "delete", host.netns), ("ip", "link", "delete", host.veth)]
    commands += [
        ("ip", "link", "delete", config.bridge),
        ("nft", "delete", "table", "inet", config.nft_table),
    ]
    if iptables:
        commands.append(("iptables", "-D", "FORWARD", *iptables_accept_rule(config)))
    return commands
