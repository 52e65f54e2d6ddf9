"""`swarmlet lab`: a cluster of N hosts on this machine, for tests, benchmarks and trying out."""

from __future__ import annotations

import subprocess
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from swarmlet.lab.lab import Lab
from swarmlet.lab.plan import EngineMode
from swarmlet.lab.system import LabError


class _LabGroup(click.Group):
    """Turns the lab's errors into a one-line message and exit status 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LabError as exc:
            raise click.ClickException(exc.message) from exc


@click.group(cls=_LabGroup)
@click.pass_context
def lab(ctx: click.Context) -> None:
    """A cluster of network namespaces on an isolated bridge, one swarmletd in each."""
    if ctx.obj is None:  # tests hand in a Lab of their own
        ctx.obj = Lab()


@lab.command()
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 50))
@click.option(
    "--managers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 50),
    help="How many hosts are managers: node1 .. node<M>; the others are workers.",
)
@click.option(
    "--engine",
    type=click.Choice(["shared", "per-node"]),
    default="shared",
    show_default=True,
    help="Share this machine's Docker Engine, or give each host a dockerd of its own.",
)
@click.pass_obj
def up(the_lab: Lab, nodes: int, managers: int, engine: str) -> None:
    """Build the hosts, start their daemons and form a swarm (node1 inits it)."""
    if managers > nodes:
        raise click.BadParameter(
            f"{managers} managers in a lab of {nodes} nodes", param_hint="'--managers'"
        )
    mode: EngineMode = "per-node" if engine == "per-node" else "shared"
    roles = f"{managers} manager{'s' if managers > 1 else ''}"
    click.echo(f"building a lab of {nodes} hosts, {roles} ({mode} engine)...", err=True)
    the_lab.up(nodes, mode, managers=managers)
    click.echo(the_lab.env_line())


@lab.command()
@click.pass_obj
def down(the_lab: Lab) -> None:
    """Kill the lab's daemons, remove its containers, namespaces, links and directories."""
    the_lab.down()
    click.echo("lab down", err=True)


@lab.command()
@click.pass_obj
def env(the_lab: Lab) -> None:
    """Print the DOCKER_HOST line for the lab's manager: eval "$(swarmlet lab env)"."""
    click.echo(the_lab.env_line())


@lab.command(
    "exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_(the_lab: Lab, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND in NODE's network namespace: swarmlet lab exec node2 -- ip addr."""
    result = subprocess.run(the_lab.host(node).in_netns(command), check=False)
    raise SystemExit(result.returncode)


@lab.command()
@click.argument("node")
@click.pass_obj
def stop(the_lab: Lab, node: str) -> None:
    """Kill NODE's swarmletd with SIGKILL, as in a crash; its containers keep running."""
    killed = the_lab.stop(node)
    click.echo(f"{node}: swarmletd {'killed' if killed else 'was not running'}", err=True)


@lab.command()
@click.argument("node")
@click.pass_obj
def start(the_lab: Lab, node: str) -> None:
    """Start NODE's swarmletd again, as it was started first, and wait until it answers."""
    started = the_lab.start(node)
    click.echo(f"{node}: swarmletd {'started' if started else 'already runs'}", err=True)


@lab.command()
@click.argument("node")
@click.pass_obj
def cut(the_lab: Lab, node: str) -> None:
    """Cut NODE off the other hosts (nftables drop); its swarmletd runs on, unreachable."""
    done = the_lab.cut(node)
    hostname = the_lab.host(node).hostname
    click.echo(f"{hostname}: {'cut off' if done else 'was already cut off'}", err=True)


@lab.command()
@click.argument("node")
@click.pass_obj
def heal(the_lab: Lab, node: str) -> None:
    """Connect NODE to the other hosts again (undo `cut`)."""
    done = the_lab.heal(node)
    hostname = the_lab.host(node).hostname
    click.echo(f"{hostname}: {'healed' if done else 'was not cut off'}", err=True)


@lab.command()
@click.pass_obj
def status(the_lab: Lab) -> None:
    """List the hosts, their roles (as `up` made them), whether they are cut off, and whether
    their daemons run."""
    table = Table(
        "HOST", "ROLE", "NAMESPACE", "ADDRESS", "NETWORK", "SWARMLETD", "ENGINE", box=None
    )
    for host in the_lab.status():
        daemon = f"running (pid {host.pid})" if host.pid else "stopped"
        if host.engine_running is None:
            engine = "shared"
        else:
            engine = "running" if host.engine_running else "stopped"
        plan = host.host
        network = "cut off" if host.cut else "connected"
        table.add_row(plan.hostname, plan.role, plan.netns, plan.address, network, daemon, engine)
    Console().print(table)
    click.echo(the_lab.env_line())
