"""Issue 11, point 5: `docker stack deploy` with the stock CLI on the 3-host lab.

A compose file that uses networks (overlay, attachable, external), ports (ingress and host),
`deploy` (replicas, global mode, placement constraints and preferences, resources, update and
rollback configs with a subset of their keys, a restart policy, labels, both endpoint modes),
secrets and configs from files, a healthcheck and a volume: it converges, `stack ls`,
`services` and `ps` show it, a changed file updates the services in place, and `stack rm`
leaves none of its objects. Then the smallest file of the issue's bug: `update_config:
{parallelism: 1, delay: 1s}`, which the CLI sends with an empty `Order`.

Swarmlet does not honour a healthcheck or a port published in host mode yet (other issues):
they are accepted here, and the test checks only that they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cli, eventually

pytestmark = pytest.mark.lab

IMAGE = "swarmlet-test/busybox:latest"
IMAGE_V2 = "swarmlet-test/busybox:v2"
STACK = "swlst"
EXTERNAL = "swlst-outside"
SECOND = 1_000_000_000
TOKEN = "s3cret-token\n"
SETTINGS = "colour = blue\n"

STACK_FILE = """\
version: "3.8"

x-idle: &idle
  command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
  stop_grace_period: 1s

services:
  front:
    <<: *idle
    image: {front_image}
    labels:
      role: web
    networks: [back, shared, outside]
    ports:
      - "18080:80"
      - target: 81
        published: 18081
        protocol: tcp
        mode: host
    healthcheck:
      test: ["CMD", "true"]
      interval: 5s
      timeout: 2s
      retries: 3
      start_period: 1s
    secrets:
      - source: token
        target: token
        mode: 0400
    configs:
      - source: settings
        target: /etc/settings.conf
    volumes:
      - data:/data
    deploy:
      replicas: {front_replicas}
      endpoint_mode: vip
      labels:
        tier: front
      placement:
        constraints: ["node.platform.os == linux"]
        preferences:
          - spread: node.labels.zone
      resources:
        limits:
          cpus: "0.5"
          memory: 64M
        reservations:
          cpus: "0.1"
          memory: 16M
      update_config:
        parallelism: 1
        delay: 1s
        order: start-first
      rollback_config:
        parallelism: 2
        failure_action: continue
      restart_policy:
        condition: on-failure
        delay: 1s
        max_attempts: 3
        window: 30s

  agent:
    <<: *idle
    image: {image}
    networks: [back]
    deploy:
      mode: global
      endpoint_mode: dnsrr
      update_config:
        failure_action: continue
        monitor: 2s
        max_failure_ratio: 0.5
      rollback_config:
        order: stop-first

  edge:
    <<: *idle
    image: {image}
    deploy:
      replicas: 2
      placement:
        constraints: ["node.role == worker"]
        max_replicas_per_node: 1

networks:
  back:
    driver: overlay
  shared:
    driver: overlay
    attachable: true
  outside:
    external: true
    name: {external}

secrets:
  token:
    file: ./token.txt

configs:
  settings:
    file: ./settings.conf

volumes:
  data:
"""

UPDATE_ONLY_FILE = """\
version: "3.8"
services:
  app:
    image: {image}
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    stop_grace_period: 1s
    deploy:
      replicas: 2
      update_config:
        parallelism: 1
        delay: 1s
"""


def write_stack(folder: Path, *, front_image: str = IMAGE, front_replicas: int = 2) -> Path:
    (folder / "token.txt").write_text(TOKEN)
    (folder / "settings.conf").write_text(SETTINGS)
    path = folder / "stack.yml"
    text = STACK_FILE.replace("{front_image}", front_image)
    text = text.replace("{front_replicas}", str(front_replicas))
    path.write_text(text.replace("{image}", IMAGE).replace("{external}", EXTERNAL))
    return path


def lines(cli: Cli, *args: str) -> list[str]:
    return [line for line in cli.ok(*args).splitlines() if line.strip()]


def stack_objects(cli: Cli, stack: str) -> dict[str, list[str]]:
    """Every service, network, secret and config labelled as the stack's."""
    label = f"label=com.docker.stack.namespace={stack}"
    return {
        kind: lines(cli, kind, "ls", "--filter", label, "--format", "{{.Name}}")
        for kind in ("service", "network", "secret", "config")
    }


def converged(
    cli: Cli, stack: str, expected: dict[str, int], image: str = "", only: str = ""
) -> bool:
    """Every service of the stack runs its expected number of tasks (those of the service
    ``only``, or of every one, on ``image`` if given), as `stack services` and `stack ps` show
    it. Raises AssertionError with both tables (``eventually`` shows the last one) if not."""
    # Replicas as `2/2`, or `2/2 (max 1 per node)` under a placement's MaxReplicas.
    services = [
        " ".join(line.split()[:2])
        for line in lines(cli, "stack", "services", stack, "--format", "{{.Name}} {{.Replicas}}")
    ]
    wanted = [f"{stack}_{name} {count}/{count}" for name, count in expected.items()]
    ps = lines(
        cli, "stack", "ps", stack, "--filter", "desired-state=running", "--format", "{{json .}}"
    )
    rows = [json.loads(line) for line in ps]
    shown = [f"{r['Name']} {r['Image']} {r['Node']} {r['CurrentState']} {r['Error']}" for r in rows]
    assert sorted(services) == sorted(wanted), f"services: {services}; tasks: {shown}"
    assert len(rows) == sum(expected.values()), f"tasks: {shown}"
    assert all(row["CurrentState"].startswith("Running") for row in rows), f"tasks: {shown}"
    if image:
        mine = [r for r in rows if not only or r["Name"].startswith(f"{only}.")]
        assert all(row["Image"] == image for row in mine), f"tasks: {shown}"
    return True


def remove_stack(cli: Cli, stack: str) -> None:
    cli("stack", "rm", stack)
    eventually(
        lambda: not any(stack_objects(cli, stack).values()),
        timeout=60,
        what=f"nothing of stack {stack} left",
    )


@pytest.fixture
def external(cli: Cli) -> Iterator[str]:
    cli.ok("network", "create", "-d", "overlay", EXTERNAL)
    yield EXTERNAL
    cli("stack", "rm", STACK)
    # Its tasks and their containers gone before the network and the volume go.
    cli.cleanup()
    eventually(lambda: cli("network", "rm", EXTERNAL).returncode == 0 or not network_exists(cli))
    eventually(
        lambda: (
            cli("volume", "rm", f"{STACK}_data").returncode == 0
            or not lines(cli, "volume", "ls", "-q", "--filter", f"name={STACK}_data")
        ),
        what=f"the volume {STACK}_data removed",
    )


def network_exists(cli: Cli) -> bool:
    return EXTERNAL in lines(cli, "network", "ls", "--format", "{{.Name}}")


def container_of(cli: Cli, service: str) -> str:
    ids = cli.ok("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}")
    assert ids.split(), f"no running container of {service}"
    return ids.split()[0]


def without(config: dict[str, Any], key: str) -> dict[str, Any]:
    """An update config without a key where swarmlet's answer differs from Swarm's only in
    form: Swarm omits a zero Delay or Monitor (Go's omitempty); swarmlet shows the zero Delay,
    and the default monitor period it applies to a zero Monitor (SwarmKit's too)."""
    return {name: value for name, value in config.items() if name != key}


def by_name(cli: Cli, kind: str, names: list[str]) -> dict[str, dict[str, Any]]:
    found = json.loads(cli.ok(kind, "inspect", *names))
    return {item["Spec"]["Name"] if "Spec" in item else item["Name"]: item for item in found}


def check_front(front: dict[str, Any], networks: dict[str, dict[str, Any]]) -> None:
    """The spec of the service that uses most of the file, as Swarm reads it back."""
    spec = front["Spec"]
    assert spec["Labels"] == {
        "com.docker.stack.image": IMAGE,
        "com.docker.stack.namespace": STACK,
        "tier": "front",
    }
    task = spec["TaskTemplate"]
    container = task["ContainerSpec"]
    assert container["Labels"] == {"com.docker.stack.namespace": STACK, "role": "web"}
    assert container["Healthcheck"]["Test"] == ["CMD", "true"]
    assert container["Isolation"] == "default"
    assert [(m["Type"], m["Source"]) for m in container["Mounts"]] == [("volume", f"{STACK}_data")]
    assert [s["SecretName"] for s in container["Secrets"]] == [f"{STACK}_token"]
    assert container["Secrets"][0]["File"]["Mode"] == 0o400
    assert [c["ConfigName"] for c in container["Configs"]] == [f"{STACK}_settings"]
    assert task["Runtime"] == "container"
    assert task["Resources"] == {
        "Limits": {"NanoCPUs": SECOND // 2, "MemoryBytes": 64 * 1024 * 1024},
        "Reservations": {"NanoCPUs": SECOND // 10, "MemoryBytes": 16 * 1024 * 1024},
    }
    assert task["RestartPolicy"] == {
        "Condition": "on-failure",
        "Delay": SECOND,
        "MaxAttempts": 3,
        "Window": 30 * SECOND,
    }
    assert task["Placement"]["Constraints"] == ["node.platform.os == linux"]
    assert task["Placement"]["Preferences"] == [
        {"Spread": {"SpreadDescriptor": "node.labels.zone"}}
    ]
    attached = {n["Target"] for n in task["Networks"]}
    assert attached == {
        networks[name]["Id"] for name in (f"{STACK}_back", f"{STACK}_shared", EXTERNAL)
    }
    # The keys the file leaves out take Swarm's defaults, as Swarm reads them back.
    assert without(spec["UpdateConfig"], "Monitor") == {
        "Parallelism": 1,
        "Delay": SECOND,
        "FailureAction": "pause",
        "MaxFailureRatio": 0,
        "Order": "start-first",
    }
    rollback = spec["RollbackConfig"]
    assert (rollback["Parallelism"], rollback["FailureAction"]) == (2, "continue")
    assert rollback["Order"] == "stop-first"
    assert spec["EndpointSpec"] == {
        "Mode": "vip",
        "Ports": [
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 18080, "PublishMode": "ingress"},
            {"Protocol": "tcp", "TargetPort": 81, "PublishedPort": 18081, "PublishMode": "host"},
        ],
    }


def check_agent_and_edge(cli: Cli, agent: dict[str, Any], edge: dict[str, Any]) -> None:
    assert agent["Spec"]["Mode"] == {"Global": {}}
    assert agent["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
    assert without(agent["Spec"]["UpdateConfig"], "Delay") == {
        "Parallelism": 1,
        "FailureAction": "continue",
        "Monitor": 2 * SECOND,
        "MaxFailureRatio": 0.5,
        "Order": "stop-first",
    }
    assert agent["Spec"]["RollbackConfig"]["Order"] == "stop-first"
    assert edge["Spec"]["TaskTemplate"]["Placement"]["MaxReplicas"] == 1
    edge_nodes = sorted(row["Node"] for row in cli.tasks(f"{STACK}_edge", running_only=True))
    assert edge_nodes == ["node2", "node3"]


def check_task_files(cli: Cli) -> None:
    """What a front task got: the secret and the config from their files, the volume."""
    task_container = container_of(cli, f"{STACK}_front")
    assert cli.ok("exec", task_container, "cat", "/run/secrets/token") == TOKEN
    assert cli.ok("exec", task_container, "cat", "/etc/settings.conf") == SETTINGS
    mounts = cli.inspect("container", task_container)["Mounts"]
    assert {(m["Type"], m.get("Name"), m["Destination"]) for m in mounts} >= {
        ("volume", f"{STACK}_data", "/data")
    }


def running_ids(cli: Cli, service: str) -> set[str]:
    return {row["ID"] for row in cli.tasks(service, running_only=True)}


def test_a_stack_deploys_converges_updates_in_place_and_is_removed(
    cli: Cli, external: str, tmp_path: Path
) -> None:
    out = cli.ok("stack", "deploy", "-c", str(write_stack(tmp_path)), STACK, timeout=180)
    for name in ("back", "shared", "default"):
        assert f"Creating network {STACK}_{name}" in out
    assert f"Creating secret {STACK}_token" in out
    assert f"Creating config {STACK}_settings" in out
    for name in ("front", "agent", "edge"):
        assert f"Creating service {STACK}_{name}" in out

    expected = {"front": 2, "agent": 3, "edge": 2}
    eventually(lambda: converged(cli, STACK, expected), timeout=120, what="the stack converged")
    assert f"{STACK} 3" in lines(cli, "stack", "ls", "--format", "{{.Name}} {{.Services}}")
    modes = lines(cli, "service", "ls", "--format", "{{.Name}} {{.Mode}} {{.Replicas}}")
    assert {f"{STACK}_front replicated 2/2", f"{STACK}_agent global 3/3"} <= set(modes)
    objects = stack_objects(cli, STACK)
    assert sorted(objects["network"]) == [f"{STACK}_back", f"{STACK}_default", f"{STACK}_shared"]
    assert objects["secret"] == [f"{STACK}_token"]
    assert objects["config"] == [f"{STACK}_settings"]

    # The networks: overlays of the stack, one attachable, the external one used as it is.
    names = [f"{STACK}_back", f"{STACK}_shared", f"{STACK}_default", EXTERNAL]
    networks = by_name(cli, "network", names)
    assert networks[f"{STACK}_shared"]["Attachable"] is True
    assert networks[f"{STACK}_back"]["Attachable"] is False
    assert networks[f"{STACK}_back"]["Labels"] == {"com.docker.stack.namespace": STACK}
    assert all(n["Scope"] == "swarm" and n["Driver"] == "overlay" for n in networks.values())

    services = by_name(cli, "service", [f"{STACK}_{name}" for name in expected])
    check_front(services[f"{STACK}_front"], networks)
    check_agent_and_edge(cli, services[f"{STACK}_agent"], services[f"{STACK}_edge"])
    check_task_files(cli)
    kept = {name: running_ids(cli, f"{STACK}_{name}") for name in ("agent", "edge")}

    # The file changed: another image, another replica count. Same services, new specs.
    # (Fewer replicas, not more: front updates start-first and binds a host-mode port, so a
    # new task needs a host where no task of it runs; with one on every host it would wait
    # for ever, in Swarm too.)
    changed = write_stack(tmp_path, front_image=IMAGE_V2, front_replicas=1)
    out = cli.ok("stack", "deploy", "-c", str(changed), STACK, timeout=180)
    for name, service in services.items():
        assert f"Updating service {name} (id: {service['ID']})" in out
    assert "Creating" not in out
    expected["front"] = 1
    eventually(
        lambda: converged(cli, STACK, expected, image=IMAGE_V2, only=f"{STACK}_front"),
        timeout=120,
        what="the stack updated",
    )
    front = cli.inspect("service", f"{STACK}_front")
    assert front["ID"] == services[f"{STACK}_front"]["ID"]
    assert front["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == IMAGE_V2
    assert front["Spec"]["Labels"]["com.docker.stack.image"] == IMAGE_V2
    assert front["Spec"]["Mode"] == {"Replicated": {"Replicas": 1}}
    assert front["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]["Image"] == IMAGE
    # The services whose part of the file did not change kept their tasks.
    assert {name: running_ids(cli, f"{STACK}_{name}") for name in kept} == kept

    remove_stack(cli, STACK)
    assert STACK not in cli.ok("stack", "ls")
    assert network_exists(cli), "the external network is not the stack's to remove"


def test_update_config_with_parallelism_and_delay_only(cli: Cli, tmp_path: Path) -> None:
    """The bug of issue 11: the CLI sends this update_config with `"Order": ""`."""
    stack = "swlupd"
    path = tmp_path / "stack.yml"
    path.write_text(UPDATE_ONLY_FILE.replace("{image}", IMAGE))
    try:
        cli.ok("stack", "deploy", "-c", str(path), stack, timeout=180)
        eventually(lambda: converged(cli, stack, {"app": 2}), timeout=90, what="app running")
        service = cli.inspect("service", f"{stack}_app")
        assert without(service["Spec"]["UpdateConfig"], "Monitor") == {
            "Parallelism": 1,
            "Delay": SECOND,
            "FailureAction": "pause",
            "MaxFailureRatio": 0,
            "Order": "stop-first",
        }
        # Deployed again with another image: the rolling update runs under that config.
        path.write_text(UPDATE_ONLY_FILE.replace("{image}", IMAGE_V2))
        out = cli.ok("stack", "deploy", "-c", str(path), stack, timeout=180)
        assert f"Updating service {stack}_app (id: {service['ID']})" in out
        eventually(
            lambda: converged(cli, stack, {"app": 2}, image=IMAGE_V2),
            timeout=90,
            what="app updated",
        )
        remove_stack(cli, stack)
    finally:
        cli("stack", "rm", stack)
        cli.cleanup()
