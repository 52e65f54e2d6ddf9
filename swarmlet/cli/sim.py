"""`swarmlet sim`: simulated nodes for benchmarks. Never used by default.

    swarmlet sim nodes --manager 192.168.254.11:2377 --token SWMTKN-1-... --count 300 \\
        --start-latency 0.05 --failure-rate 0

runs 300 agents in this process, each joined with the token and holding its own session to the
manager, whose tasks "run" on a simulated engine (see docs/simulation.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from swarmlet import collector
from swarmlet.clock import Clock, SystemClock
from swarmlet.daemon.addresses import split_addr
from swarmlet.errors import SwarmletError
from swarmlet.pki import JoinToken
from swarmlet.sim.engine import Behaviour
from swarmlet.sim.nodes import DEFAULT_JOIN_CONCURRENCY, Fleet, SimulatedCluster


@click.group()
def sim() -> None:
    """Simulated nodes for benchmarks: agents without containers, many to a process."""


@sim.command()
@click.option(
    "--manager",
    "managers",
    multiple=True,
    required=True,
    help="A manager's address, host[:port] (2377 by default); repeat for several.",
)
@click.option(
    "--token", envvar="SWARMLET_SIM_TOKEN", required=True, help="The swarm's worker join token."
)
@click.option("--count", default=10, show_default=True, type=click.IntRange(1, 65000))
@click.option(
    "--first", default=1, show_default=True, type=click.IntRange(1), help="The first node's number."
)
@click.option(
    "--start-latency", default=0.0, show_default=True, type=float, help="Seconds a start takes."
)
@click.option(
    "--jitter", default=0.0, show_default=True, type=float, help="Spread of the latency (0-1)."
)
@click.option(
    "--failure-rate",
    default=0.0,
    show_default=True,
    type=float,
    help="Fraction of starts whose process exits at once, non-zero (0-1).",
)
@click.option("--exit-code", default=1, show_default=True, type=int)
@click.option("--seed", type=int, help="Seed the randomness, to replay a run.")
@click.option(
    "--zones",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Spread the nodes over N zones (engine label sim.zone=zone-K).",
)
@click.option("--cpus", default=4, show_default=True, type=click.IntRange(1))
@click.option("--memory-mib", default=8192, show_default=True, type=click.IntRange(1))
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the nodes' identities here, to run the same nodes again (a temporary"
    " directory, removed at exit, by default).",
)
@click.option(
    "--join-concurrency",
    default=DEFAULT_JOIN_CONCURRENCY,
    show_default=True,
    type=click.IntRange(1),
)
@click.option(
    "--report-every",
    default=10.0,
    show_default=True,
    type=float,
    help="Seconds between status lines (0: none).",
)
@click.option("--log-level", default="warning", show_default=True)
def nodes(
    managers: tuple[str, ...],
    token: str,
    count: int,
    first: int,
    start_latency: float,
    jitter: float,
    failure_rate: float,
    exit_code: int,
    seed: int | None,
    zones: int,
    cpus: int,
    memory_mib: int,
    state_dir: Path | None,
    join_concurrency: int,
    report_every: float,
    log_level: str,
) -> None:
    """Run COUNT simulated nodes against the managers until interrupted (Ctrl-C)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    try:
        JoinToken.parse(token)
        addrs = [f"{host}:{port}" for host, port in map(split_addr, managers)]
        behaviour = Behaviour(
            start_latency=start_latency,
            jitter=jitter,
            failure_rate=failure_rate,
            exit_code=exit_code,
        )
        fleet = Fleet(
            count=count,
            behaviour=behaviour,
            seed=seed,
            zones=zones,
            first=first,
            cpus=cpus,
            memory=memory_mib * 1024**2,
        )
    except SwarmletError as exc:
        raise click.BadParameter(exc.message) from exc
    with contextlib.ExitStack() as stack:
        if state_dir is None:
            state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="swl-sim-")))
        cluster = SimulatedCluster(
            addrs, token, state_dir, fleet, join_concurrency=join_concurrency
        )
        try:
            asyncio.run(serve(cluster, SystemClock(), report_every, click.echo))
        except KeyboardInterrupt:
            click.echo(f"stopped: {cluster.stats()}", err=True)
        except BaseExceptionGroup as group:
            # A node that could not join (a refused token, no manager): say why, once.
            errors = _leaves(group)
            if not all(isinstance(exc, SwarmletError) for exc in errors):
                raise
            messages = sorted({str(exc) for exc in errors})
            raise click.ClickException("; ".join(messages)) from group


async def serve(
    cluster: SimulatedCluster, clock: Clock, report_every: float, echo: Callable[[str], None]
) -> None:
    """Run the cluster until cancelled, saying when every node has joined and, every
    ``report_every`` seconds (0: never), how it is doing."""

    async def announce() -> None:
        await cluster.joined.wait()
        collector.tune_for_a_long_lived_store()  # the nodes' sessions and workers
        echo(f"{cluster.fleet.count} simulated nodes joined: {cluster.stats()}")

    async def report() -> None:
        while True:
            await clock.sleep(report_every)
            echo(str(cluster.stats()))

    async with asyncio.TaskGroup() as group:
        group.create_task(cluster.run(), name="simulated-nodes")
        group.create_task(announce(), name="sim-announce")
        if report_every > 0:
            group.create_task(report(), name="sim-report")


def _leaves(group: BaseExceptionGroup[BaseException]) -> Sequence[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(_leaves(exc))
        else:
            found.append(exc)
    return found
