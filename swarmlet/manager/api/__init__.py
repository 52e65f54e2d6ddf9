"""The Engine API: swarm endpoints served from the store, everything else passed to the engine."""
