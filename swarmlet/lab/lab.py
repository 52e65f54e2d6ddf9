"""A cluster of N hosts on this machine: build it, drive it, tear it down.

The lab's state is `lab.json` in its run directory (the plan it was built from, argv included)
plus one PID file per daemon, so every `swarmlet lab` command, and every test process, drives
the same lab.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from swarmlet.agent.plugin_server import socket_path, teardown_plugins
from swarmlet.lab import api
from swarmlet.lab.cut import cut_ruleset, heal_ruleset
from swarmlet.lab.plan import (
    MAX_NODES,
    EngineMode,
    HostPlan,
    LabConfig,
    LabPlan,
    iptables_accept_rule,
    network_down,
    network_up,
    plan_host,
    plan_lab,
)
from swarmlet.lab.system import (
    LabError,
    kill,
    mount_points_under,
    pipe,
    process_alive,
    process_running,
    processes_mentioning,
    read_pid,
    run,
    spawn,
    unmount_all_under,
)
from swarmlet.net.nft import Json, NftError, apply_in_netns_path

# How long the lab waits, in seconds. Generous: two cores may be busy with a test run.
ENGINE_START_S = 60
DAEMON_START_S = 30
SWARM_CALL_S = 60
NODES_READY_S = 60


@dataclass(frozen=True)
class HostStatus:
    host: HostPlan
    pid: int | None  # swarmletd's, when it runs
    engine_running: bool | None  # None: the host uses the shared engine
    cut: bool = False  # cut off the other hosts (`Lab.cut`)


class Lab:
    def __init__(self, config: LabConfig | None = None) -> None:
        self.config = config or LabConfig()
        self._spawned: dict[Path, int] = {}  # PID file -> PID, of daemons started by this object

    # --- reading the lab -------------------------------------------------------------------

    def is_up(self) -> bool:
        return self.config.lab_file.exists()

    @property
    def plan(self) -> LabPlan:
        try:
            return LabPlan.model_validate_json(self.config.lab_file.read_text())
        except FileNotFoundError:
            raise LabError("no lab is up (start one with `swarmlet lab up`)") from None

    @property
    def docker_host(self) -> str:
        """DOCKER_HOST for the lab: node1's swarmletd, the manager."""
        return self.plan.docker_host

    def env_line(self) -> str:
        return f"export DOCKER_HOST={self.docker_host}"

    def host(self, node: str) -> HostPlan:
        try:
            return self.plan.host(node)
        except KeyError as exc:
            raise LabError(str(exc.args[0])) from None

    def status(self) -> list[HostStatus]:
        return [
            HostStatus(
                host=host,
                pid=self._daemon_pid(host),
                engine_running=None if host.engine is None else self._engine_pid(host) is not None,
                cut=self._is_cut(host),
            )
            for host in self.plan.hosts
        ]

    def _engine_pid(self, host: HostPlan) -> int | None:
        if host.engine is None:
            return None
        return self._running_pid(host.engine.pid_file, host.engine.command)

    # --- building and tearing down ---------------------------------------------------------

    def up(
        self,
        nodes: int = 3,
        engine: EngineMode = "shared",
        form_swarm: bool = True,
        managers: int = 1,
    ) -> LabPlan:
        """Build the network, start the daemons, form the swarm (unless told not to: the
        hosts are then up and in no swarm) with node1..node<managers> its managers; on
        failure, leave nothing."""
        try:
            plan = plan_lab(self.config, nodes, engine, managers)
        except ValueError as exc:
            raise LabError(str(exc)) from None
        _require_root()
        found = self.leftovers()
        if found:
            raise LabError(
                f"a lab {self.config.name!r} is up, or was left half-made "
                f"(run `swarmlet lab down` first): {'; '.join(found)}"
            )
        try:
            self._build(plan, form_swarm)
        except BaseException as exc:
            try:
                self._tear_down(plan)
            except Exception as cleanup:
                exc.add_note(f"tearing the half-made lab down failed too: {cleanup}")
            raise
        return plan

    def down(self) -> None:
        """Remove everything of the lab, whether it is whole, half-made or already gone."""
        _require_root()
        self._tear_down(self._plan_to_remove())

    def _build(self, plan: LabPlan, form_swarm: bool) -> None:
        config = plan.config
        for host in plan.hosts:
            for directory in (host.run_dir, host.state_dir):
                directory.mkdir(parents=True, exist_ok=True)
        config.log_dir.mkdir(parents=True, exist_ok=True)
        # Written first, so that `down` finds everything even of a lab that failed half-way.
        config.lab_file.write_text(plan.model_dump_json(indent=2))
        for command in network_up(plan, iptables=_has_iptables()):
            run(command)
        if plan.engine == "per-node":
            self._start_engines(plan)
        started = [(host, self._spawn_daemon(host)) for host in plan.hosts]
        for host, pid in started:
            self._wait_daemon(host, pid)
        if form_swarm:
            api.run_sync(_form_swarm(plan))

    def _start_engines(self, plan: LabPlan) -> None:
        engines = [(host, host.engine) for host in plan.hosts if host.engine is not None]
        started = []
        for host, engine in engines:
            # dockerd writes its own PID file (and refuses to start if one names a live process).
            argv = host.in_netns(engine.command)
            started.append((host, engine, self._spawn(argv, engine.log_file, engine.pid_file)))
        for host, engine, pid in started:
            what = f"{host.hostname}'s dockerd"
            _wait_answer(engine.docker_host, pid, what, engine.log_file, ENGINE_START_S)
        docker = docker_cli()
        for _, engine in engines:
            pipe(
                [docker, "-H", plan.config.shared_engine, "save", *plan.config.images],
                [docker, "-H", engine.docker_host, "load", "--quiet"],
            )

    def _spawn(self, argv: Sequence[str], log_file: Path, pid_file: Path) -> int:
        pid = spawn(argv, log_file)
        # Remembered here too: a daemon caught in execve shows no argv to `process_running`.
        self._spawned[pid_file] = pid
        return pid

    def _running_pid(self, pid_file: Path, command: Sequence[str]) -> int | None:
        """The PID of the daemon behind `pid_file`, if it runs."""
        pid = self._spawned.get(pid_file)
        if pid is not None and process_alive(pid):
            return pid
        pid = read_pid(pid_file)
        return pid if pid is not None and process_running(pid, command) else None

    def _spawn_daemon(self, host: HostPlan, extra_args: Sequence[str] = ()) -> int:
        host.api_socket.unlink(missing_ok=True)  # a killed daemon's socket, answering nothing
        # Written before it starts, so that every process finds it by its whole argv.
        extras = _extra_args_file(host)
        if extra_args:
            extras.write_text(json.dumps(list(extra_args)))
        else:
            extras.unlink(missing_ok=True)
        argv = host.in_netns((*host.command, *extra_args))
        pid = self._spawn(argv, host.log_file, host.pid_file)
        host.pid_file.write_text(f"{pid}\n")
        return pid

    def _daemon_pid(self, host: HostPlan) -> int | None:
        """The PID of the host's swarmletd, if it runs (with the extra args it was given)."""
        return self._running_pid(host.pid_file, (*host.command, *_extra_args(host)))

    def _wait_daemon(self, host: HostPlan, pid: int) -> None:
        what = f"{host.hostname}'s swarmletd"
        _wait_answer(host.docker_host, pid, what, host.log_file, DAEMON_START_S)

    def _tear_down(self, plan: LabPlan) -> None:
        config = plan.config
        for host in plan.hosts:
            pid = self._daemon_pid(host)
            if pid is not None:
                kill(pid)
        # A manager's etcd member gets SIGTERM when its swarmletd dies, and takes a moment to
        # stop: waited for (killed after a grace), before its data is removed. Only the
        # members (their data directory in a host's state): a host's own engine, whose data is
        # there too, is still needed to remove its containers below.
        for found in processes_mentioning([f"--data-dir={config.state_root}/"]):
            kill(int(found.split()[0]), signal.SIGTERM, timeout=10)
        # The daemons are gone, so nothing restarts what is removed now.
        engines = [config.shared_engine] + [h.engine.docker_host for h in plan.hosts if h.engine]
        api.run_sync(_remove_from_engines(plan, engines))
        for host in plan.hosts:
            pid = self._engine_pid(host)
            if pid is not None:
                # SIGTERM: a dockerd killed outright leaves its mounts and containerd behind.
                kill(pid, signal.SIGTERM, timeout=30)
        unmount_all_under([config.run_dir, config.state_root])
        for command in network_down(plan, iptables=_has_iptables()):
            run(command, check=False)
        shutil.rmtree(config.run_dir, ignore_errors=True)
        shutil.rmtree(config.state_root, ignore_errors=True)

    def _plan_to_remove(self) -> LabPlan:
        if self.is_up():
            return self.plan
        # No lab.json: find what a crashed run left, assuming the most (an engine per host).
        indices = set(_numbered(self._namespaces(), f"{self.config.name}-node").values())
        if self.config.run_dir.is_dir():
            run_dirs = [entry.name for entry in self.config.run_dir.iterdir()]
            indices |= set(_numbered(run_dirs, "node").values())
        hosts = tuple(plan_host(self.config, i, "per-node") for i in sorted(indices))
        return LabPlan(config=self.config, engine="per-node", hosts=hosts)

    def leftovers(self) -> list[str]:
        """Everything of this lab that exists on the machine, one line each; [] when none."""
        config = self.config
        found = [f"namespace {ns}" for ns in self._namespaces()]
        links = [line.split(":")[1].strip().split("@")[0] for line in _lines(["ip", "-o", "link"])]
        found += [
            f"link {link}"
            for link in links
            if link == config.bridge or link.startswith(f"{config.name}-v")
        ]
        if _succeeds(["nft", "list", "table", "inet", config.nft_table]):
            found.append(f"nft table inet {config.nft_table}")
        rule = iptables_accept_rule(config)
        if _has_iptables() and _succeeds(["iptables", "-C", "FORWARD", *rule]):
            found.append(f"iptables FORWARD rule {' '.join(rule)}")
        roots = [config.run_dir, config.state_root]
        found += [f"directory {root}" for root in roots if root.exists()]
        mountinfo = Path("/proc/self/mountinfo").read_text()
        found += [f"mount {point}" for point in mount_points_under(roots, mountinfo)]
        found += [f"process {p}" for p in processes_mentioning([f"{root}/" for root in roots])]
        engine, label = config.shared_engine, config.container_label
        plugins = [plan_host(config, i, "shared").netns for i in range(1, MAX_NODES + 1)]
        sockets = [socket_path(name) for name in plugins]
        found += [f"plugin socket {path}" for path in sockets if path.exists()]
        if api.run_sync(api.ping(engine)):
            labelled = api.run_sync(api.labelled_containers(engine, label))
            found += [f"container {container_id}" for container_id in labelled]
        # Not the engine's copies of the lab's networks: `down` removes them, but the engine
        # may keep one it miscounted until it restarts (inert, and never in a new lab's way:
        # local_networks.local_names).
        return found

    def _namespaces(self) -> list[str]:
        listed = run(["ip", "netns", "list"]).stdout.split()
        return list(_numbered(listed, f"{self.config.name}-node"))

    # --- driving a running lab -------------------------------------------------------------

    def stop(self, node: str) -> bool:
        """Kill the host's swarmletd with SIGKILL, as in a crash; its containers stay."""
        host = self.host(node)
        pid = self._daemon_pid(host)
        if pid is None:
            return False
        kill(pid)
        return True

    def start(self, node: str, extra_args: Sequence[str] = ()) -> bool:
        """Start the host's swarmletd again with the same argv, and ``extra_args`` after it
        (flags a test gives one host, e.g. ``--node-generic-resource``; a later start
        without them puts the plain argv back); False if it already runs."""
        host = self.host(node)
        if self._daemon_pid(host) is not None:
            return False
        self._wait_daemon(host, self._spawn_daemon(host, extra_args))
        return True

    def cut(self, node: str) -> bool:
        """Cut the host off the other hosts (an nftables table in its namespace drops the
        lab's subnet); its swarmletd runs on, unreachable. False if it already was cut."""
        host = self.host(node)
        was_cut = self._is_cut(host)
        self._apply_in(host, cut_ruleset(self.config))
        return not was_cut

    def heal(self, node: str) -> bool:
        """Undo `cut` (remove the table); False if the host was not cut."""
        host = self.host(node)
        was_cut = self._is_cut(host)
        self._apply_in(host, heal_ruleset(self.config))
        return was_cut

    def _is_cut(self, host: HostPlan) -> bool:
        listing = ("nft", "list", "table", "ip", self.config.cut_table)
        return _succeeds(host.in_netns(listing))

    def _apply_in(self, host: HostPlan, document: Json) -> None:
        _require_root()
        try:
            api.run_sync(apply_in_netns_path(str(host.netns_path), document))
        except NftError as exc:
            raise LabError(f"{host.hostname}: {exc.message}") from exc

    def exec(
        self, node: str, argv: Sequence[str], *, check: bool = False, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the host's network namespace, its output captured."""
        return run(self.host(node).in_netns(tuple(argv)), check=check, timeout=timeout)

    def docker(
        self, *args: str, check: bool = False, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against the lab's manager."""
        env = {**os.environ, "DOCKER_HOST": self.docker_host}
        return run([docker_cli(), *args], check=check, env=env, timeout=timeout)


async def _form_swarm(plan: LabPlan) -> None:
    """`swarm init` on node1, then the other managers join with the manager token, then the
    workers with the worker token, each through node1."""
    manager = plan.manager
    initialising = api.swarm_init(manager.docker_host, manager.listen_addr, manager.address)
    await api.within(SWARM_CALL_S, f"{manager.hostname} did not init the swarm", initialising)
    tokens = {"worker": await api.join_token(manager.docker_host, "Worker")}
    if len(plan.managers) > 1:
        tokens["manager"] = await api.join_token(manager.docker_host, "Manager")
    for host in (*plan.managers[1:], *plan.workers):
        joining = api.swarm_join(
            host.docker_host, manager.listen_addr, tokens[host.role], host.listen_addr, host.address
        )
        try:
            await api.within(SWARM_CALL_S, f"{host.hostname} did not join the swarm", joining)
        except api.ApiError as exc:
            raise LabError(
                f"{host.hostname} could not join the swarm as a {host.role}: {exc.detail}"
            ) from exc
    count = len(plan.hosts)
    try:
        async with asyncio.timeout(NODES_READY_S):
            await api.wait_nodes_ready(manager.docker_host, count)
    except TimeoutError:
        states = await api.node_states(manager.docker_host)
        raise LabError(
            f"{count} nodes not ready within {NODES_READY_S} s; node states: {states}"
        ) from None


def docker_cli() -> str:
    # The newest CLI on PATH: /usr/local/bin/docker where one was installed by hand, else the
    # engine package's /usr/bin/docker.
    found = shutil.which("docker")
    if found is None:
        raise LabError("no docker CLI on PATH (run scripts/bootstrap.sh)")
    return found


def _wait_answer(docker_host: str, pid: int, what: str, log_file: Path, seconds: float) -> None:
    """Wait for a daemon just spawned to answer /_ping; if it dies or is late, show its log."""
    waiting = api.wait_ping(docker_host, alive=lambda: process_alive(pid), what=what)
    try:
        api.run_sync(api.within(seconds, f"{what} did not answer", waiting))
    except LabError as exc:
        raise LabError(f"{exc.message}\n{_tail(log_file)}") from exc


def _numbered(names: Iterable[str], prefix: str) -> dict[str, int]:
    """The names that are `prefix` then a number (`swl-node2`), with that number."""
    return {
        name: int(name[len(prefix) :])
        for name in names
        if name.startswith(prefix) and name[len(prefix) :].isdigit()
    }


def _lines(argv: Sequence[str]) -> list[str]:
    return run(argv).stdout.splitlines()


def _succeeds(argv: Sequence[str]) -> bool:
    return run(argv, check=False).returncode == 0


def _has_iptables() -> bool:
    return shutil.which("iptables") is not None


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, a bridge, daemons)")


def _extra_args_file(host: HostPlan) -> Path:
    return host.run_dir / "swarmletd.extra-args.json"


def _extra_args(host: HostPlan) -> tuple[str, ...]:
    """The extra args the host's swarmletd was last started with (``start``)."""
    try:
        return tuple(json.loads(_extra_args_file(host).read_text()))
    except FileNotFoundError:
        return ()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return f"last lines of {path}:\n" + "\n".join(text.splitlines()[-lines:])


async def _remove_from_engines(plan: LabPlan, engines: Sequence[str]) -> None:
    """Every container the lab's daemons started, and the engines' copies of their networks.
    The engines call each host's network plugin as they remove them: with the daemons gone,
    stand-ins answer on the plugins' sockets meanwhile, or each call would wait 30 s."""
    label = plan.config.container_label
    plugins = [host.netns for host in plan.hosts]
    async with teardown_plugins(plugins):
        for docker_host in engines:
            if await api.ping(docker_host):
                await api.remove_labelled_containers(docker_host, label)
        # A per-node engine goes with its data; the machine's engine keeps what is not removed.
        shared = plan.config.shared_engine
        if await api.ping(shared):
            await api.remove_networks_of(shared, plugins)
