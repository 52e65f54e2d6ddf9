"""Issue #12, point 6: ports published in `mode=host` on the 3-host lab, with the stock CLI.
Each host answers on the port with its own task and no other; the scheduler keeps the port to
one task per host, and a task that finds it taken everywhere waits with Swarm's words."""

from __future__ import annotations

from tests.e2e.conftest import Cli, eventually

IMAGE = "swarmlet-test/busybox:latest"
HOSTS = ("node1", "node2", "node3")
# Each task serves its own container ID (its hostname), so an answer names the task.
SERVE = ("sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www")


def answer(cli: Cli, hostname: str) -> str:
    """What the host's own 127.0.0.1:8082 answers ('' if nothing does)."""
    argv = ("timeout", "3", "busybox", "wget", "-qO-", "http://127.0.0.1:8082/")
    return cli.lab.exec(hostname, argv).stdout.strip()


def containers_by_host(cli: Cli, service: str) -> dict[str, str]:
    """The running tasks' container IDs (12 characters, their hostnames) by host."""
    tasks = cli.inspect_tasks(service, "desired-state=running")
    names = {cli.node_id(h): h for h in HOSTS}
    return {
        names[t["NodeID"]]: t["Status"]["ContainerStatus"]["ContainerID"][:12]
        for t in tasks
        if t["Status"]["State"] == "running"
    }


def test_a_host_mode_port_answers_on_each_task_s_host_only(cli: Cli) -> None:
    cli.ok("network", "create", "--driver", "overlay", "hp")
    try:
        cli.create("hostport", "--stop-grace-period", "1s", "--network", "hp", "--replicas", "3",
                   "--publish", "mode=host,published=8082,target=80", IMAGE, *SERVE)  # fmt: skip
        cli.running("hostport", 3)
        rows = cli.tasks("hostport", running_only=True)
        assert sorted(r["Node"] for r in rows) == list(HOSTS)  # one per host
        assert {r["Ports"] for r in rows} == {"*:8082->80/tcp"}
        by_host = containers_by_host(cli, "hostport")
        for hostname in HOSTS:
            eventually(
                lambda h=hostname: answer(cli, h) == by_host[h],  # type: ignore[misc]
                what=f"{hostname}:8082 answered by its own task",
            )

        # The port is taken on every host: a second service's task waits.
        cli.create("second", "--stop-grace-period", "1s", "--network", "hp",
                   "--publish", "mode=host,published=8082,target=80", IMAGE, *SERVE)  # fmt: skip
        eventually(
            lambda: (
                [r["Error"] for r in cli.tasks("second")]
                == ['"no suitable node (host-mode port already in use on 3 nodes)"']
            ),
            what="the second service pending",
        )
        assert cli.tasks("second")[0]["CurrentState"].startswith("Pending")

        # A host freed of the first service's task no longer answers with it, and the waiting
        # task goes there.
        cli.ok("service", "scale", "--detach=true", "hostport=2")
        cli.running("hostport", 2)
        kept = containers_by_host(cli, "hostport")
        [freed] = [h for h in HOSTS if h not in kept]
        cli.running("second", 1)
        [second] = containers_by_host(cli, "second").items()
        assert second[0] == freed
        eventually(lambda: answer(cli, freed) == second[1], what="the freed host's new task")
        for hostname, container in kept.items():
            assert answer(cli, hostname) == container
    finally:
        cli.cleanup()
        cli.services.clear()
        cli("network", "rm", "hp")
