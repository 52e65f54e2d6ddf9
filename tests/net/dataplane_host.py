"""Plays a host's swarmletd for the data plane tests: run inside a host's network namespace
(``nsenter --net=/run/netns/X python dataplane_host.py COMMAND JSON``), it calls the data
plane's async API the way the agent does and prints a JSON answer on stdout.

- ``program {"views": [...], "host_addr": "..."}`` → ``{"ops": [...]}``
- ``attach {"task": {...}, "pid": N, "local_addresses": {...}}`` → ``{"thread_namespaces": [...]}``
  (the namespace of every thread of this process after attaching: the host's, all of them):
  what the network plugin and the engine do for a task's first network — the plugin's veth
  (``swarmlet.net.endpoint``), its other end made in the namespace of process N, then, as the
  engine would, named eth0 there, given the address and the default route via the host
- ``detach {"task": {...}}`` → ``{}``
- ``state {}`` → ``{}``

Every answer also has ``"links"``: the name of every link of the namespace, after the command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from typing import Any

from swarmlet.models import Task
from swarmlet.net.driver import host_side
from swarmlet.net.endpoint import Veth, delete_veths, make_veth
from swarmlet.net.names import bridge_name, ip_of, mac_for
from swarmlet.net.netlink import program_host
from swarmlet.protocol import NetworkView


def thread_namespaces() -> list[str]:
    namespaces = []
    for thread in os.listdir("/proc/self/task"):
        with contextlib.suppress(FileNotFoundError):  # it ended meanwhile
            namespaces.append(os.readlink(f"/proc/self/task/{thread}/ns/net"))
    return namespaces


def links() -> list[str]:
    # Read by iproute2, not by the code under test.
    shown = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True)
    return [str(link["ifname"]) for link in json.loads(shown.stdout)]


async def main(command: str, args: dict[str, Any]) -> dict[str, Any]:
    if command == "program":
        views = [NetworkView.model_validate(v) for v in args["views"]]
        ops = await program_host(views, args["host_addr"])
        return {"ops": [f"{type(op).__name__} {op.__dict__}" for op in ops]}
    if command == "attach":
        task = Task.model_validate(args["task"])
        attachment = task.networks_attachments[0]
        address = attachment.addresses[0]
        veth = Veth(
            host_side(task.id), bridge_name(attachment.network.vni), "eth0", mac_for(address)
        )
        await make_veth(veth, args["pid"])
        gateway = ip_of(args["local_addresses"][attachment.network.id])
        engine = ["nsenter", f"--net=/proc/{args['pid']}/ns/net", "ip"]
        for step in (
            ["link", "set", "lo", "up"],
            ["address", "add", address, "dev", "eth0"],
            ["link", "set", "eth0", "up"],
            ["route", "replace", "default", "via", gateway],
        ):
            await asyncio.to_thread(subprocess.run, [*engine, *step], check=True)
        # No thread may have stayed in the task's namespace; the kernel may take a moment to
        # forget one that ended.
        for _ in range(100):
            namespaces = thread_namespaces()
            if len(set(namespaces)) == 1:
                break
            await asyncio.sleep(0.01)
        return {"thread_namespaces": namespaces}
    if command == "detach":
        await delete_veths([host_side(Task.model_validate(args["task"]).id)])
        return {}
    if command == "state":
        return {}
    raise SystemExit(f"unknown command {command}")


async def answer(command: str, args: dict[str, Any]) -> dict[str, Any]:
    return {**await main(command, args), "links": await asyncio.to_thread(links)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(answer(sys.argv[1], json.loads(sys.argv[2])))))
