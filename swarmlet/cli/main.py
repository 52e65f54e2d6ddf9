"""`swarmlet`: the command line of swarmlet's own tools (the daemon is `swarmletd`)."""

from __future__ import annotations

import click

from swarmlet.cli.lab import lab
from swarmlet.cli.sim import sim


@click.group()
def cli() -> None:
    """swarmlet: Docker Swarm mode, in Python. Drive the cluster itself with the docker CLI."""


cli.add_command(lab)
cli.add_command(sim)


def main() -> None:
    cli()
