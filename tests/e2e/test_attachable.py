"""Issue 11, point 2: plain containers on an attachable overlay network, on any host of a
3-host lab whose hosts each run their own engine (the containers are the hosts' own).

`docker run --network dc` on a worker reaches a service by name and `tasks.<name>`; a service's
task reaches a `docker run -d --network dc --name probe` container by name and by alias;
`network connect`/`disconnect` work; a network without `--attachable` refuses with Swarm's
message and nothing is made; a removed container's address is free again.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import eventually

if TYPE_CHECKING:  # at run time the module is a plugin, imported by pytest alone
    from tests.e2e.per_node import PerNodeCli

pytestmark = pytest.mark.lab
pytest_plugins = ["tests.e2e.per_node"]

IMAGE = "swarmlet-test/busybox:latest"
QUICK = ["--stop-grace-period", "1s"]


def web(text: str) -> list[str]:
    """A web server answering ``text``."""
    return [
        "sh",
        "-c",
        f"mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www",
    ]


# busybox's own `wget -T` crashes (Debian's 1.35): bound it with `timeout` instead.
def fetch(url: str) -> list[str]:
    return ["timeout", "3", "wget", "-qO-", url]


def address_on(cli: PerNodeCli, hostname: str, container: str, network: str) -> str:
    shown = cli.on_ok(hostname, "container", "inspect", container)
    networks = json.loads(shown)[0]["NetworkSettings"]["Networks"]
    return str(networks[network]["IPAddress"])


def test_plain_containers_join_an_attachable_overlay_on_any_host(
    per_node_cli: PerNodeCli,
) -> None:
    cli = per_node_cli
    cli.ok("network", "create", "--driver", "overlay", "--attachable", "dc")
    cli.ok("network", "create", "--driver", "overlay", "closed")
    cli.ok("network", "create", "--driver", "overlay", "--attachable", "other")
    try:
        cli.create("web", "--network", "dc", "--constraint", "node.hostname == node1", *QUICK,
                   IMAGE, *web("web"))  # fmt: skip
        cli.running("web", 1)

        # On node3, where nothing of dc ran: the container's address comes from the manager.
        for name in ("web", "tasks.web"):
            got = cli.on_ok(
                "node3", "run", "--rm", "--network", "dc", IMAGE, *fetch(f"http://{name}/")
            )
            assert got.strip() == "web", name

        # A task reaches a plain container on another host, by its name and its alias.
        cli.on_ok("node3", "run", "-d", "--name", "probe", "--network", "dc",
                  "--network-alias", "prb", IMAGE, *web("probe"))  # fmt: skip
        task = cli.on_ok("node1", "ps", "-q", "--filter", "label=com.docker.swarm.service.name=web")
        for name in ("probe", "prb"):
            got = eventually(
                lambda name=name: cli.on(
                    "node1", "exec", task.split()[0], *fetch(f"http://{name}/")
                ).stdout.strip(),
                what=f"web's task reaching {name}",
            )
            assert got == "probe"
        # `docker network inspect` on the container's host lists it, as Swarm's daemon does.
        inspected = json.loads(cli.on_ok("node3", "network", "inspect", "dc"))[0]
        probe_id = cli.on_ok("node3", "inspect", "--format", "{{.Id}}", "probe").strip()
        assert probe_id in inspected["Containers"]

        # connect and disconnect, on node2, for a container made on another attachable
        # network. Its resolver answers for the network its address asks from (its first):
        # on dc, it reaches the service by its VIP.
        vip = next(
            v["Addr"].partition("/")[0]
            for v in cli.inspect("service", "web")["Endpoint"]["VirtualIPs"]
            if v["NetworkID"] == cli.inspect("network", "dc")["Id"]
        )
        cli.on_ok("node2", "create", "--name", "late", "--network", "other", IMAGE, "sleep", "100")
        cli.on_ok("node2", "network", "connect", "dc", "late")
        cli.on_ok("node2", "start", "late")
        got = cli.on_ok("node2", "exec", "late", *fetch(f"http://{vip}/"))
        assert got.strip() == "web"
        on_dc = address_on(cli, "node2", "late", "dc")
        assert f" {on_dc}/" in cli.on_ok("node2", "exec", "late", "ip", "-o", "-4", "addr")
        cli.on_ok("node2", "network", "disconnect", "dc", "late")
        assert f" {on_dc}/" not in cli.on_ok("node2", "exec", "late", "ip", "-o", "-4", "addr")

        # A network that is not attachable: Swarm's words, and no container.
        refused = cli.on("node3", "run", "--name", "nope", "--network", "closed", IMAGE, "true")
        assert refused.returncode != 0
        assert (
            "Could not attach to network closed: rpc error: code = PermissionDenied "
            "desc = network closed not manually attachable"
        ) in refused.stderr
        assert cli.on_ok("node3", "ps", "-aq", "--filter", "name=^nope$") == ""

        # A removed container's address goes back to the swarm: the next one gets it.
        held = address_on(cli, "node3", "probe", "dc")
        cli.on_ok("node3", "rm", "-f", "probe")

        def reused() -> bool:
            shown = cli.on_ok(
                "node3",
                "run",
                "--rm",
                "--network",
                "dc",
                IMAGE,
                "ip",
                "-o",
                "-4",
                "addr",
                "show",
                "eth0",
            )
            return f" {held}/" in shown

        eventually(reused, what=f"{held} free again")
    finally:
        for hostname, container in (("node3", "probe"), ("node2", "late"), ("node3", "nope")):
            cli.on(hostname, "rm", "-f", container)
        cli.cleanup()
        for network in ("dc", "closed", "other"):
            eventually(lambda network=network: cli("network", "rm", network).returncode == 0
                       or network not in cli.ok("network", "ls", "--format", "{{.Name}}").split(),
                       what=f"{network} removed")  # fmt: skip
