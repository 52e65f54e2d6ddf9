"""Issue 2, point 11: `make run` brings up a 3-host lab with a sample service on this machine
(`make test` itself is proven by CI running it on a fresh machine)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from swarmlet.lab.lab import Lab
from swarmlet.lab.testing import in_ci, require_lab

REPO = Path(__file__).resolve().parent.parent


def make(target: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": "unix:///var/run/docker.sock"}
    return subprocess.run(
        ["make", target],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_make_run_deploys_a_sample_service_on_a_three_host_lab() -> None:
    lab = Lab()  # the default lab, the one `make run` builds
    require_lab(lab.config)
    if lab.is_up() and not in_ci():
        pytest.skip("a `make run` lab is up here; this test would replace it")
    try:
        done = make("run")
        assert done.returncode == 0, done.stderr[-3000:]
        assert "export DOCKER_HOST=unix:///run/swarmlet-lab/node1/docker.sock" in done.stdout
        nodes = lab.docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}", check=True)
        assert sorted(nodes.stdout.splitlines()) == ["node1 Ready", "node2 Ready", "node3 Ready"]
        services = lab.docker("service", "ls", "--format", "{{.Name}} {{.Replicas}}", check=True)
        assert services.stdout == "hello 3/3\n"
    finally:
        down = make("down")
    assert down.returncode == 0, down.stderr
    assert lab.leftovers() == []
