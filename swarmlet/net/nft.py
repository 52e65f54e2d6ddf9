"""nftables in its JSON form (libnftables-json): the pieces the VIP and mesh rulesets are built
from, and the thin driver that applies a ruleset: in a task's namespace through libnftables
in this process (``libnft``) where it loads, otherwise (and in the host's own namespace)
``nft -j -f -``.

A ruleset is plain data — ``{"nftables": [command, ...]}`` — made by pure functions
(``vip.vip_ruleset``, ``mesh.mesh_ruleset``) and applied in one transaction: nft commits a
whole document or nothing, so a table is always replaced atomically, never seen half-made.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from swarmlet.errors import SwarmletError
from swarmlet.net import libnft
from swarmlet.net.netlink import in_netns

Json = dict[str, Any]

FAMILY = "ip"
COMMENT_MAX = 128  # nft's limit on a rule's comment, in bytes

# Base chain priorities (nft's names: dstnat, filter, srcnat).
DSTNAT = -100
FILTER = 0
SRCNAT = 100


class NftError(SwarmletError):
    """nft refused a ruleset (its message is kept) or could not be run at all."""


# --- commands -------------------------------------------------------------------------------


def ruleset(commands: Iterable[Json]) -> Json:
    return {"nftables": list(commands)}


def replace_table(name: str) -> list[Json]:
    """The commands that leave an empty table ``name``, whether or not it existed: adding an
    existing table is no error, so add, delete, add again — in the same transaction as the
    table's new content, so the old content is replaced atomically."""
    table = {"family": FAMILY, "name": name}
    return [{"add": {"table": table}}, {"delete": {"table": table}}, {"add": {"table": table}}]


def delete_table(name: str) -> Json:
    """A ruleset that removes table ``name`` and does not fail when it is absent."""
    return ruleset(replace_table(name)[:2])


def base_chain(table: str, name: str, kind: str, hook: str, prio: int) -> Json:
    return {
        "add": {
            "chain": {
                "family": FAMILY,
                "table": table,
                "name": name,
                "type": kind,
                "hook": hook,
                "prio": prio,
                "policy": "accept",
            }
        }
    }


def regular_chain(table: str, name: str) -> Json:
    return {"add": {"chain": {"family": FAMILY, "table": table, "name": name}}}


def rule(table: str, chain: str, expr: Sequence[Json], comment: str = "") -> Json:
    body: Json = {"family": FAMILY, "table": table, "chain": chain, "expr": list(expr)}
    if comment:
        body["comment"] = comment.encode()[:COMMENT_MAX].decode(errors="ignore")
    return {"add": {"rule": body}}


# --- expressions and statements -------------------------------------------------------------


def match(left: Json, right: Any, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def payload(protocol: str, field: str) -> Json:
    return {"payload": {"protocol": protocol, "field": field}}


def meta(key: str) -> Json:
    return {"meta": {"key": key}}


def ct(key: str) -> Json:
    return {"ct": {"key": key}}


def prefix(cidr: str) -> Json:
    network = ipaddress.IPv4Network(cidr, strict=False)
    return {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}


def one_or_set(values: Sequence[Any]) -> Any:
    """A single value as itself, several as an anonymous set (``{ a, b }``)."""
    return values[0] if len(values) == 1 else {"set": list(values)}


def is_local_destination() -> Json:
    """``fib daddr type local``: the packet is addressed to one of this host's addresses."""
    return match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")


def dnat_spread(addresses: Sequence[str], port: int | None = None) -> Json:
    """``dnat to`` one of ``addresses``, chosen at random per connection (the numgen map that
    IPVS's round robin stands for); the destination port is kept unless ``port`` is given."""
    if len(addresses) == 1:
        target: Any = addresses[0]
    else:
        spread = {"numgen": {"mode": "random", "mod": len(addresses), "offset": 0}}
        pairs = [[index, address] for index, address in enumerate(addresses)]
        target = {"map": {"key": spread, "data": {"set": pairs}}}
    statement: Json = {"addr": target}
    if port is not None:
        statement["port"] = port
    return {"dnat": statement}


def refuse(protocol: str) -> Json:
    """The fastest failure a client can get: a TCP reset, an ICMP port unreachable for
    anything else."""
    if protocol == "tcp":
        return {"reject": {"type": "tcp reset"}}
    return {"reject": {"type": "icmp", "expr": "port-unreachable"}}


def masquerade() -> Json:
    return {"masquerade": None}


def sorted_addresses(addresses: Iterable[str]) -> list[str]:
    """Unique, in numeric order: the same backends always make the same ruleset."""
    return sorted(set(addresses), key=ipaddress.IPv4Address)


# --- the driver -----------------------------------------------------------------------------


# Whether a task namespace's rulesets go through libnftables in this process when it loads;
# the command otherwise (the tests run the driver both ways).
IN_PROCESS = True


async def apply(document: Json) -> None:
    """Apply a ruleset in this process's network namespace: the host's mesh and published
    ports, written when the swarm's ports change. Always by the command: the library, loaded,
    is 3 to 5 MiB of a daemon's resident memory, which an idle worker (held to 60 MB) would
    otherwise carry from the first network state it is sent."""
    await _nft(("nft",), document)


async def apply_in_netns(pid: int, document: Json) -> None:
    """Apply a ruleset in the network namespace of process ``pid`` (a task's)."""
    await apply_in_netns_path(f"/proc/{pid}/ns/net", document)


async def apply_in_netns_path(path: str, document: Json) -> None:
    """Apply a ruleset in the network namespace bound at ``path`` (``/run/netns/NAME``): in
    process through libnftables, on a thread in that namespace, where it loads (a task's VIP
    table is written at its start and again whenever its networks' services change: hundreds
    of times while 50 replicas start); else by the command."""
    library = libnft.library() if IN_PROCESS else None
    if library is None:
        await _nft(("nsenter", f"--net={path}", "nft"), document)
        return
    text = json.dumps(document).encode()

    def work() -> libnft.Refused | None:
        return library.apply(text)

    try:
        refused = await asyncio.to_thread(in_netns, path, work)
    except OSError as exc:
        raise NftError(f"cannot enter the network namespace {path}: {exc}") from exc
    if refused is not None:
        # The exit status nft gives a ruleset it refuses, and its words.
        raise NftError(f"nft failed (1): {refused.message}")


async def _nft(command: Sequence[str], document: Json) -> None:
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            "-j",
            "-f",
            "-",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise NftError(f"cannot run {command[0]}: {exc}") from exc
    out, err = await process.communicate(json.dumps(document).encode())
    if process.returncode != 0:
        message = (err or out).decode(errors="replace").strip()
        raise NftError(f"nft failed ({process.returncode}): {message}")


def set_sysctls(values: Mapping[str, str]) -> None:
    """Write sysctls (``net/ipv4/ip_forward``: paths under /proc/sys) in the calling thread's
    network namespace. Synchronous: each is one small write to procfs."""
    for key, value in values.items():
        path = Path("/proc/sys", key)
        try:
            path.write_text(f"{value}\n")
        except OSError as exc:
            raise NftError(f"cannot set {key}={value}: {exc}") from exc
