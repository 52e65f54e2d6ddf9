"""`swarmlet sim nodes`: what it refuses before starting anything, and what it runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from swarmlet.cli.main import cli
from swarmlet.cli.sim import serve
from swarmlet.clock import SystemClock
from swarmlet.pki import JoinToken
from swarmlet.sim.manager import LocalManager
from swarmlet.sim.nodes import Fleet, SimulatedCluster
from tests.sim.harness import background, converge

TOKEN = str(JoinToken.new("0" * 50))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--failure-rate", "1.5"], "failure rate must be between 0 and 1"),
        (["--start-latency", "-1"], "start latency must not be negative"),
        (["--token", "SWMTKN-1-nonsense"], "invalid join token"),
        (["--manager", "10.0.0.1:port"], "the port must be a number"),
        (["--first", "65000", "--count", "1000"], "nodes are numbered 1 to 65535"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(args, message):
    base = {"--manager": "127.0.0.1:2377", "--token": TOKEN}
    for name, value in zip(args[::2], args[1::2], strict=True):
        base[name] = value
    command = ["sim", "nodes", *[part for item in base.items() for part in item]]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 2
    assert message in result.output


async def test_serve_says_when_every_node_has_joined_and_how_they_do(tmp_path: Path):
    manager = await LocalManager.found(tmp_path / "manager")
    cluster = SimulatedCluster(
        [manager.addr], manager.worker_token, tmp_path / "nodes", Fleet(count=2)
    )
    lines: list[str] = []
    async with (
        background(manager.run(), "manager"),
        background(serve(cluster, SystemClock(), 0.05, lines.append), "serve") as serving,
    ):

        def reported() -> list[str]:
            joined = [line for line in lines if line.startswith("2 simulated nodes joined")]
            connected = [line for line in lines if "2 connected" in line]
            return [] if joined and connected else [f"not yet: {lines[-3:]}"]

        await converge(reported, "the announcement and a status line", (serving,))
    await asyncio.sleep(0)
    assert "0 processes running; 0 started, 0 failed" in lines[-1]
