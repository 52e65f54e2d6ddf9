"""What swarmlet changes in the host's own namespace besides its own links and nftables
tables, and how leaving the swarm puts it back.

Two things:

- **sysctls**: IPv4 forwarding (tasks reach each other and the outside through their host) and
  ``route_localnet`` (the routing mesh answers on 127.0.0.1).
- **Docker's firewall.** On a host whose ``dockerd`` manages iptables, the FORWARD chain's
  policy is DROP, and ``br_netfilter`` hands every frame crossing *any* bridge to that chain:
  two tasks on one overlay bridge could not reach each other, nor tasks the outside, nor the
  mesh a task. A table of our own cannot help: a packet one table accepts is still dropped by
  another's. So swarmlet adds its own chain, ``SWARMLET-FORWARD``, jumped to first from
  FORWARD, accepting what comes from an overlay bridge and what goes to one as part of a
  connection already allowed or translated by the mesh (``ctstate RELATED,ESTABLISHED,DNAT``):
  nothing from outside reaches a task but through a published port. It is written with the
  ``iptables`` command, the one Docker itself uses, so it lands in whichever backend (nf_tables
  or legacy) holds Docker's chain; and only where the FORWARD chain is managed (a DROP policy or
  any rule): a namespace nobody firewalls (a lab host) gets nothing.

The values found before the first change are kept in a file in the node's state directory, so
``docker swarm leave`` puts back exactly what was there, across restarts of the daemon.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from swarmlet.net.mesh import MESH_SYSCTLS, OVERLAY_INTERFACES
from swarmlet.net.netlink import read_sysctl, write_sysctl
from swarmlet.net.overlay import IP_FORWARD

log = logging.getLogger(__name__)

HOST_FILE = "host.json"
CHAIN = "SWARMLET-FORWARD"
# iptables spells an interface wildcard with '+', nft with '*'.
_BRIDGES = OVERLAY_INTERFACES.replace("*", "+")
# One word: iptables -S prints it back unquoted, as given.
_COMMENT = ("-m", "comment", "--comment", "swarmlet-overlay")
SYSCTLS: Mapping[str, str] = {IP_FORWARD: "1", **MESH_SYSCTLS}

# The rules of SWARMLET-FORWARD, in order.
FORWARD_RULES: tuple[tuple[str, ...], ...] = (
    ("-i", _BRIDGES, *_COMMENT, "-j", "ACCEPT"),
    (
        "-o",
        _BRIDGES,
        "-m",
        "conntrack",
        "--ctstate",
        "RELATED,ESTABLISHED,DNAT",
        *_COMMENT,
        "-j",
        "ACCEPT",
    ),
)
JUMP = ("-j", CHAIN)

Argv = tuple[str, ...]


# -- plans (pure) ---------------------------------------------------------------------------


def is_managed(forward: str) -> bool:
    """Whether someone firewalls this namespace's FORWARD chain (``iptables -S FORWARD``):
    a policy other than ACCEPT, or any rule."""
    for line in forward.splitlines():
        words = line.split()
        if words[:1] == ["-A"] or (words[:1] == ["-P"] and words[-1:] != ["ACCEPT"]):
            return True
    return False


def _spec(line: str) -> Argv:
    """A rule of ``iptables -S CHAIN`` as the arguments after its chain's name."""
    return tuple(line.split()[2:])


def _rules(listing: str, chain: str) -> list[Argv]:
    return [_spec(line) for line in listing.splitlines() if line.split()[:2] == ["-A", chain]]


def plan_open(forward: str, chain: str | None) -> list[Argv]:
    """The iptables commands that open the overlay bridges in a managed FORWARD chain.

    ``forward`` is ``iptables -S FORWARD``; ``chain`` is ``iptables -S SWARMLET-FORWARD``, or
    None when the chain does not exist. Nothing when the chain is as wanted and FORWARD jumps
    to it first."""
    commands: list[Argv] = []
    if chain is None:
        commands.append(("-N", CHAIN))
    if chain is None or _rules(chain, CHAIN) != list(FORWARD_RULES):
        if chain is not None:
            commands.append(("-F", CHAIN))
        commands += [("-A", CHAIN, *rule) for rule in FORWARD_RULES]
    jumps = _rules(forward, "FORWARD")
    if not jumps or jumps[0] != JUMP:
        # Docker inserts its own jumps at the top when it restarts: ours goes first again.
        commands += [("-D", "FORWARD", *JUMP)] * jumps.count(JUMP)
        commands.append(("-I", "FORWARD", "1", *JUMP))
    return commands


def plan_close(forward: str, chain: str | None) -> list[Argv]:
    """The iptables commands that remove every trace of ``plan_open``."""
    commands: list[Argv] = [("-D", "FORWARD", *JUMP)] * _rules(forward, "FORWARD").count(JUMP)
    if chain is not None:
        commands += [("-F", CHAIN), ("-X", CHAIN)]
    return commands


# -- the host -------------------------------------------------------------------------------


class HostChanges:
    """The host's sysctls and Docker's FORWARD chain, changed for the swarm and put back when
    it leaves. Blocking (procfs writes, the iptables command): call it on a worker thread."""

    def __init__(self, state_dir: Path, iptables: str | None = None) -> None:
        self._file = state_dir / HOST_FILE
        self._iptables = iptables if iptables is not None else shutil.which("iptables")

    def apply(self) -> None:
        """Set what the swarm needs; the first time, remember what was there."""
        if not self._file.exists():
            found = {key: read_sysctl(key) for key in SYSCTLS}
            self._save({key: value for key, value in found.items() if value is not None})
        for key, value in SYSCTLS.items():
            if read_sysctl(key) not in (None, value):
                write_sysctl(key, value)
        if self._iptables is not None:
            forward = self._list("FORWARD") or ""
            if is_managed(forward):
                self._run(plan_open(forward, self._list(CHAIN)))

    def restore(self) -> None:
        """Put back what ``apply`` found, and remove swarmlet's chain."""
        if self._iptables is not None:
            self._run(plan_close(self._list("FORWARD") or "", self._list(CHAIN)))
        for key, value in self._load().items():
            if read_sysctl(key) not in (None, value):
                write_sysctl(key, value)
        self._file.unlink(missing_ok=True)

    def _load(self) -> dict[str, str]:
        try:
            saved = json.loads(self._file.read_text())
        except FileNotFoundError:
            return {}
        return {str(key): str(value) for key, value in saved.get("sysctls", {}).items()}

    def _save(self, sysctls: Mapping[str, str]) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"sysctls": dict(sysctls)}, indent=2))
        temporary.replace(self._file)

    def _list(self, chain: str) -> str | None:
        """``iptables -S CHAIN``, or None when the chain does not exist."""
        done = self._iptables_run(("-S", chain))
        return done.stdout if done.returncode == 0 else None

    def _run(self, commands: Sequence[Argv]) -> None:
        for argv in commands:
            done = self._iptables_run(argv)
            if done.returncode != 0:
                log.warning("iptables %s: %s", " ".join(argv), done.stderr.strip())

    def _iptables_run(self, argv: Argv) -> subprocess.CompletedProcess[str]:
        assert self._iptables is not None
        return subprocess.run(
            [self._iptables, "-w", *argv], capture_output=True, text=True, check=False
        )
