"""Issue 3: overlay networks, service discovery and the routing mesh, with the stock CLI on a
3-host lab."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator

import pytest

from swarmlet.lab.lab import Lab
from tests.e2e.conftest import Cli, eventually

IMAGE = "swarmlet-test/busybox:latest"
QUICK = ["--stop-grace-period", "1s"]
# A web server answering with the name of the task it runs in (its sandbox's hostname).
WEB = ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
IDLE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]


def container_of(cli: Cli, service: str) -> str:
    """The ID of a running container of the service (through the API's pass-through)."""
    ids = cli.ok("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}")
    assert ids.split(), f"no running container of {service}"
    return ids.split()[0]


# busybox's own `wget -T` crashes (Debian's 1.35): bound it with `timeout` instead.
def fetch_from(cli: Cli, container: str, url: str) -> str:
    done = cli("exec", container, "timeout", "3", "wget", "-qO-", url)
    return done.stdout.strip() if done.returncode == 0 else ""


def fetch_on_host(lab: Lab, hostname: str, url: str) -> str:
    argv = ["/bin/busybox", "timeout", "3", "/bin/busybox", "wget", "-qO-", url]
    done = lab.exec(hostname, argv)
    return done.stdout.strip() if done.returncode == 0 else ""


def lab_links(lab: Lab) -> dict[str, list[str]]:
    """Every host's swarmlet interfaces (bridges, VXLAN devices, veths)."""
    found = {}
    for hostname in ("node1", "node2", "node3"):
        out = lab.exec(hostname, ["ip", "-o", "link", "show"], check=True).stdout
        found[hostname] = sorted(
            name
            for name in re.findall(r"^\d+: ([^:@]+)", out, re.MULTILINE)
            if name.startswith("swl")
        )
    return found


def lab_routes(lab: Lab) -> dict[str, str]:
    return {
        hostname: lab.exec(hostname, ["ip", "route", "show", "table", "all"], check=True).stdout
        for hostname in ("node1", "node2", "node3")
    }


def vxlan_received(lab: Lab, hostname: str, network: str) -> int:
    """Bytes the host's VXLAN device of the network has received."""
    vni = json.loads(lab.docker("network", "inspect", network, check=True).stdout)[0]["Options"][
        "com.docker.network.driver.overlay.vxlanid_list"
    ]
    out = lab.exec(hostname, ["ip", "-j", "-s", "link", "show", f"swlvx{vni}"], check=True).stdout
    return int(json.loads(out)[0]["stats64"]["rx"]["bytes"])


def lab_rules(lab: Lab) -> dict[str, str]:
    return {
        hostname: lab.exec(hostname, ["nft", "list", "ruleset"], check=True).stdout
        for hostname in ("node1", "node2", "node3")
    }


@pytest.fixture
def network(cli: Cli) -> Iterator[str]:
    cli.ok("network", "create", "--driver", "overlay", "dockercoins")
    yield "dockercoins"
    cli.cleanup()
    cli.services.clear()
    cli("network", "rm", "dockercoins")


def test_an_overlay_network_is_listed_beside_ingress(cli: Cli, network: str) -> None:
    rows = cli.ok("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}").splitlines()
    assert "dockercoins overlay swarm" in rows
    assert "ingress overlay swarm" in rows
    inspected = cli.inspect("network", network)
    assert inspected["Driver"] == "overlay"
    assert inspected["Scope"] == "swarm"
    assert inspected["IPAM"]["Config"][0]["Subnet"].startswith("10.")


def test_services_find_each_other_by_name_across_hosts(cli: Cli, network: str) -> None:
    cli.create(
        "kv", *QUICK, "--network", network, "--constraint", "node.hostname == node2", IMAGE, *WEB
    )
    cli.create(
        "client",
        *QUICK,
        "--network",
        network,
        "--constraint",
        "node.hostname == node3",
        IMAGE,
        *IDLE,
    )
    cli.running("kv", 1)
    cli.running("client", 1)
    client = container_of(cli, "client")
    kv_task = cli.tasks("kv", running_only=True)[0]
    assert kv_task["Node"] == "node2"
    received = vxlan_received(cli.lab, "node2", network)
    answer = eventually(lambda: fetch_from(cli, client, "http://kv/"), what="kv by name")
    assert eventually(lambda: fetch_from(cli, client, "http://tasks.kv/")) == answer
    # The requests came from node3 to node2 through the VXLAN tunnel.
    assert vxlan_received(cli.lab, "node2", network) > received
    # The name resolves to the service's VIP; tasks.kv to the task's own address.
    vip = cli.inspect("service", "kv")["Endpoint"]["VirtualIPs"]
    assert [v["Addr"].split("/")[0] for v in vip]
    nslookup = cli("exec", client, "nslookup", "kv").stdout
    assert vip[-1]["Addr"].split("/")[0] in nslookup


def test_a_published_port_answers_on_every_host_and_spreads(
    cli: Cli, lab: Lab, network: str
) -> None:
    cli.create("webui", *QUICK, "--network", network, "--replicas", "3", IMAGE, *WEB)
    cli.running("webui", 3)
    cli.ok("service", "update", "webui", "--publish-add", "8000:80", "--detach=false", timeout=180)
    cli.running("webui", 3)
    for hostname in ("node1", "node2", "node3"):
        address = lab.host(hostname).address
        for url in (f"http://{address}:8000/", "http://127.0.0.1:8000/"):
            assert eventually(lambda url=url, h=hostname: fetch_on_host(lab, h, url)), url
    seen = Counter(
        fetch_on_host(lab, "node1", f"http://{lab.host('node2').address}:8000/") for _ in range(30)
    )
    assert len([name for name in seen if name]) == 3, seen


def test_nothing_is_left_after_service_and_network_removal(cli: Cli, lab: Lab) -> None:
    before_links, before_rules, before_routes = lab_links(lab), lab_rules(lab), lab_routes(lab)
    cli.ok("network", "create", "--driver", "overlay", "transient")
    cli.create(
        "brief", *QUICK, "--network", "transient", "--replicas", "3", "-p", "8001:80", IMAGE, *WEB
    )
    cli.running("brief", 3)
    assert lab_links(lab) != before_links
    cli.ok("service", "rm", "brief")
    cli.services.clear()
    eventually(lambda: cli.ok("node", "ps", "-q", "node1", "node2", "node3") == "")
    cli.ok("network", "rm", "transient")
    eventually(lambda: lab_links(lab) == before_links, what="interfaces gone")
    eventually(lambda: lab_rules(lab) == before_rules, what="rules gone")
    eventually(lambda: lab_routes(lab) == before_routes, what="routes gone")


def test_bad_network_input_is_refused(cli: Cli, network: str) -> None:
    subnet = cli.inspect("network", network)["IPAM"]["Config"][0]["Subnet"]
    assert (
        "overlap"
        in cli.fails(
            "network", "create", "--driver", "overlay", "--subnet", subnet, "clash"
        ).lower()
    )
    assert "not found" in cli.fails("network", "create", "--driver", "nonesuch", "odd")
    cli.create("user", *QUICK, "--network", network, IMAGE, *IDLE)
    assert "in use" in cli.fails("network", "rm", network)
    cli.create("first", *QUICK, "-p", "8002:80", IMAGE, *WEB)
    error = cli.fails("service", "create", "--detach", "--name", "second", "-p", "8002:80", IMAGE)
    assert "8002" in error
    names = cli.ok("network", "ls", "--format", "{{.Name}}").split()
    assert "clash" not in names
    assert "odd" not in names
    assert "second" not in cli.ok("service", "ls", "--format", "{{.Name}}").split()


def hostnames_through_mesh(lab: Lab, count: int) -> Counter[str]:
    """``count`` requests from node1 to node2's published port, in one shell inside node1
    (one process per request would take longer than the 2 s the checks allow); a failed
    request counts as ''."""
    url = f"http://{lab.host('node2').address}:8000/"
    loop = (
        f"for i in $(seq {count}); do"
        f" /bin/busybox timeout 3 /bin/busybox wget -qO- {url} || echo; done"
    )
    out = lab.exec("node1", ["/bin/busybox", "sh", "-c", loop]).stdout
    answers = out.splitlines()
    assert len(answers) == count, out
    return Counter(answer.strip() for answer in answers)


def resolved(cli: Cli, client: str, name: str) -> set[str]:
    out = cli("exec", client, "nslookup", name).stdout
    return set(re.findall(r"Address: (10\.\S+)", out))


def test_scaling_draining_and_killing_update_dns_vips_and_the_mesh(
    cli: Cli, lab: Lab, network: str
) -> None:
    cli.create(
        "webui", *QUICK, "--network", network, "--replicas", "3", "-p", "8000:80", IMAGE, *WEB
    )
    cli.create("client", *QUICK, "--network", network, IMAGE, *IDLE)
    cli.running("webui", 3)
    cli.running("client", 1)
    client = container_of(cli, "client")
    eventually(lambda: len(resolved(cli, client, "tasks.webui")) == 3)
    names = set(
        eventually(
            lambda: (
                (seen := hostnames_through_mesh(lab, 30))
                and len(seen) == 3
                and "" not in seen
                and seen
            )
        )
    )

    def only(expected: int) -> set[str]:
        """Within 2 s of the change: DNS, the VIP and the mesh show `expected` tasks."""
        tasks = eventually(
            lambda: len(found := resolved(cli, client, "tasks.webui")) == expected and found,
            timeout=2,
            what=f"DNS with {expected} tasks",
        )
        seen = eventually(
            lambda: (
                len(found := hostnames_through_mesh(lab, 20)) <= expected
                and "" not in found
                and found
            ),
            timeout=2,
            what=f"the mesh with {expected} tasks",
        )
        via_vip = {fetch_from(cli, client, "http://webui/") for _ in range(10)}
        assert "" not in via_vip
        assert via_vip <= set(seen)
        return set(seen) | set(tasks)

    # Scaling down: the removed task gets no more connections.
    cli.ok("service", "update", "--detach", "--replicas", "2", "webui")
    remaining = only(2)
    assert len(remaining & names) == 2

    # Killing a task: it is gone from DNS, the VIP and the mesh until its replacement runs.
    victim = cli.tasks("webui", running_only=True)[0]["ID"]
    container = cli.ok("ps", "-q", "--filter", f"label=com.docker.swarm.task.id={victim}")
    cli.ok("kill", container.strip())
    only(1)
    cli.running("webui", 2)

    # Draining a host: within 2 s its task is out of DNS and gets no connection.
    drained = cli.tasks("webui", running_only=True)[0]
    task = json.loads(cli.ok("inspect", drained["ID"]))[0]
    (address,) = [
        a["Addresses"][0].split("/")[0]
        for a in task["NetworksAttachments"]
        if a["Network"]["Spec"]["Name"] == network
    ]
    name = eventually(lambda: fetch_from(cli, client, f"http://{address}/"))
    cli.ok("node", "update", "--availability", "drain", drained["Node"])
    try:
        eventually(
            lambda: address not in resolved(cli, client, "tasks.webui"),
            timeout=2,
            what="the drained task out of DNS",
        )
        eventually(
            lambda: name not in hostnames_through_mesh(lab, 20),
            timeout=2,
            what="no connection to the drained task",
        )
        cli.running("webui", 2)
        assert all(r["Node"] != drained["Node"] for r in cli.tasks("webui", running_only=True))
        # The replacement is RUNNING as soon as its agent says so; the other hosts' data planes
        # take it in when its network state reaches them: within the same 2 s, every
        # connection is answered, and in no attempt by the drained task.
        attempts: list[Counter[str]] = []

        def all_answered() -> bool:
            attempts.append(hostnames_through_mesh(lab, 20))
            return "" not in attempts[-1]

        eventually(all_answered, timeout=2, what="every connection answered")
        assert all(name not in seen for seen in attempts)
    finally:
        cli.ok("node", "update", "--availability", "active", drained["Node"])
