"""The manager: the store, the Engine API's swarm endpoints and the controllers."""
