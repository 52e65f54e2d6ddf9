"""Issue 11, point 3: the tutorial's registry step, on a 3-host lab with per-node engines.

A `registry` service published on 5000; an image pushed from node1 to 127.0.0.1:5000 (node1's
engine runs in node1's namespace, where that is the routing mesh); a service from it pulled by
every host's own engine, its spec pinned to the pushed digest as Swarm's CLI pins it.
"""

from __future__ import annotations

import re
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest

from swarmlet.lab import api
from tests.e2e.conftest import eventually

if TYPE_CHECKING:  # at run time the module is a plugin, imported by pytest alone
    from tests.e2e.per_node import PerNodeCli

pytestmark = pytest.mark.lab
pytest_plugins = ["tests.e2e.per_node"]

REGISTRY = "127.0.0.1:5000"
# A port and two path components: the name the CLI puts in GET /distribution/{name}/json.
REPO = f"{REGISTRY}/swarmlet/busybox"
BUSYBOX = "swarmlet-test/busybox:latest"
SERVE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
# The CLI's words when no registry gives it the image's digest (SWARM-BEHAVIOUR-2.md, 10).
UNPINNED = (
    "image {0} could not be accessed on a registry to record\n"
    "its digest. Each node will access {0} independently,\n"
    "possibly leading to different nodes running different\n"
    "versions of the image.\n"
)


def registry_answers(cli: PerNodeCli, hostname: str) -> bool:
    """The registry's API root answers on 127.0.0.1:5000 in the host's namespace (the mesh)."""
    url = f"http://{REGISTRY}/v2/"
    return cli.exec(hostname, "busybox", "wget", "-q", "-O", "-", url).stdout.strip() == "{}"


def push(cli: PerNodeCli, tag: str) -> str:
    """`docker push REPO:TAG` on node1; the digest the push printed."""
    printed = cli.ok("push", f"{REPO}:{tag}", timeout=120)
    found = re.search(rf"^{tag}: digest: (sha256:[0-9a-f]{{64}}) size: \d+$", printed, re.M)
    assert found, printed
    return found.group(1)


def spec_image(cli: PerNodeCli, service: str) -> str:
    spec = cli.inspect("service", service)["Spec"]
    return spec["TaskTemplate"]["ContainerSpec"]["Image"]  # type: ignore[no-any-return]


def running_everywhere(cli: PerNodeCli, service: str, image: str) -> bool:
    """One running task of the service on each host, every one of them from ``image``."""
    rows = cli.tasks(service, running_only=True)
    running = [r for r in rows if r["CurrentState"].startswith("Running")]
    return (
        len(rows) == len(cli.hostnames)
        and sorted(r["Node"] for r in running) == sorted(cli.hostnames)
        and {r["Image"] for r in running} == {image}
    )


def digests_on(cli: PerNodeCli, hostname: str) -> set[str]:
    """The repository's images in the host's own engine, as NAME@DIGEST."""
    listed = cli.on_ok(hostname, "image", "ls", "--digests", "--format", "{{.Digest}}", REPO)
    return {f"{REPO}@{digest}" for digest in listed.split() if digest != "<none>"}


def references_on(cli: PerNodeCli, hostname: str) -> list[str]:
    """Every reference to the repository in the host's own engine: tags, then digests."""
    listed = cli.on_ok(
        hostname, "image", "ls", "--digests", "--format", "{{.Tag}} {{.Digest}}", REPO
    ).split("\n")
    rows = [line.split() for line in listed if line.strip()]
    tags = [f"{REPO}:{tag}" for tag, _ in rows if tag != "<none>"]
    return tags + [f"{REPO}@{digest}" for _, digest in rows if digest != "<none>"]


def distribution(cli: PerNodeCli, hostname: str, ref: str) -> Any:
    """What the CLI asks a daemon before it pins an image: GET /distribution/{name}/json."""
    docker_host = cli.lab.host(hostname).docker_host
    return api.run_sync(api.request(docker_host, "GET", f"/v1.47/distribution/{ref}/json"))


def test_an_image_pushed_to_the_registry_service_runs_on_every_host_pinned(
    per_node_cli: PerNodeCli,
) -> None:
    cli = per_node_cli
    # As the tutorial has it. No registry has `registry:latest` (the lab has no way out), so
    # the CLI warns and leaves it unpinned; each host's engine has the image already.
    cli.services.append("registry")
    created = cli("service", "create", "--name", "registry", "--publish", "5000:5000", "registry")
    assert created.returncode == 0, created.stderr
    assert UNPINNED.format("registry:latest") in created.stderr
    assert spec_image(cli, "registry") == "registry:latest"
    for hostname in cli.hostnames:
        eventually(
            partial(registry_answers, cli, hostname),
            what=f"the registry answering on {REGISTRY} in {hostname}",
        )

    cli.ok("tag", BUSYBOX, f"{REPO}:demo")
    digest = push(cli, "demo")
    for hostname in ("node2", "node3"):
        assert digests_on(cli, hostname) == set()
    # Every host's swarmletd passes the question to its own engine, which asks the registry.
    for hostname in cli.hostnames:
        descriptor = distribution(cli, hostname, f"{REPO}:demo")["Descriptor"]
        assert descriptor["digest"] == digest

    cli.services.append("pulled")
    created = cli(
        "service", "create", "--name", "pulled", "--detach=true", "--replicas", "3",
        "--replicas-max-per-node", "1", "--stop-grace-period", "1s", f"{REPO}:demo", *SERVE,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "could not be accessed" not in created.stderr
    pinned = f"{REPO}:demo@{digest}"
    assert spec_image(cli, "pulled") == pinned
    eventually(lambda: running_everywhere(cli, "pulled", pinned), what=f"3 tasks of {pinned}")
    # node2 and node3 had no such image: their engines pulled it through the mesh.
    for hostname in cli.hostnames:
        assert f"{REPO}@{digest}" in digests_on(cli, hostname)

    # A second image (another config, so another digest) under a second tag.
    container = cli.ok("create", BUSYBOX).strip()
    cli.ok("commit", "--change", "LABEL com.swarmlet.test=demo2", container, f"{REPO}:demo2")
    cli.ok("rm", container)
    digest2 = push(cli, "demo2")
    assert digest2 != digest
    cli.ok("service", "update", "--detach=true", "--image", f"{REPO}:demo2", "pulled")
    pinned2 = f"{REPO}:demo2@{digest2}"
    assert spec_image(cli, "pulled") == pinned2
    eventually(lambda: running_everywhere(cli, "pulled", pinned2), what=f"3 tasks of {pinned2}")
    for hostname in cli.hostnames:
        assert f"{REPO}@{digest2}" in digests_on(cli, hostname)

    # --no-resolve-image: the tag as given; each host pulls it by tag.
    updated = cli(
        "service", "update", "--detach=true", "--no-resolve-image", "--image", f"{REPO}:demo",
        "pulled",
    )  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    assert "could not be accessed" not in updated.stderr
    assert spec_image(cli, "pulled") == f"{REPO}:demo"
    eventually(lambda: running_everywhere(cli, "pulled", f"{REPO}:demo"), what="unpinned tasks")

    # A tag the registry does not have: the CLI's warning, the spec unpinned.
    cli.services.append("absent")
    created = cli(
        "service", "create", "--name", "absent", "--detach=true", "--replicas", "0",
        f"{REPO}:absent",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert UNPINNED.format(f"{REPO}:absent") in created.stderr
    assert spec_image(cli, "absent") == f"{REPO}:absent"

    # The lab stays up for the session: its hosts' engines lose what the test gave them. By
    # reference, not ID: a pulled image is the very image swarmlet-test/busybox is.
    cli.cleanup()
    for hostname in cli.hostnames:
        for ref in references_on(cli, hostname):
            cli.on(hostname, "image", "rm", ref)  # a tag's removal may take its digest along
        assert references_on(cli, hostname) == []
