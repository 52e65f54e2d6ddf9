"""The Engine API server every node runs: its own endpoints, the swarm's through the node's
cluster backend, everything else to the engine (docs/api.md)."""

from swarmlet.api.app import make_app

__all__ = ["make_app"]
