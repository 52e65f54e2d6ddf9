"""The Engine API server: swarm endpoints over the store, everything else to the engine."""

from swarmlet.manager.api.app import make_app

__all__ = ["make_app"]
