"""The one error hierarchy of swarmlet.

    SwarmletError
    ├── NotFound          an object, a node, an image that does not exist
    ├── Conflict          a request at odds with the current state (unlocking an unlocked swarm)
    │   ├── NameConflict  a name already taken by another object of the same kind
    │   └── VersionConflict  an update made against a stale Version.Index
    ├── InvalidSpec       input that can never be valid (a malformed spec, a bad filter)
    ├── Unavailable       the node cannot serve the request now (not a manager, not in a swarm)
    │   └── Locked        the manager's store is sealed until its unlock key is given
    ├── Unauthorized      a key that does not open what it guards (a wrong unlock key)
    ├── CannotDecrypt     sealed data that does not open: altered, or sealed under another key
    ├── Forbidden         the caller is known and may not do this (a removed node's certificate)
    └── EngineError       the container engine refused or failed an operation

Errors from aiohttp, SQLite or the engine are translated where they enter
(``raise X(...) from exc``); HTTP status codes are chosen only in the API layer.
"""


class SwarmletError(Exception):
    """Base of every error swarmlet raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(SwarmletError):
    pass


class Conflict(SwarmletError):
    pass


class NameConflict(Conflict):
    pass


class VersionConflict(Conflict):
    pass


class InvalidSpec(SwarmletError):
    pass


class Unavailable(SwarmletError):
    pass


class Locked(Unavailable):
    pass


# moby's daemon/cluster errNoLeader: what a manager answers when it cannot reach a leader
# (SwarmKit's lostQuorumMessage).
NO_LEADER = (
    "The swarm does not have a leader. It's possible that too few managers are online."
    " Make sure more than half of the managers are online."
)


class Unauthorized(SwarmletError):
    pass


class CannotDecrypt(SwarmletError):
    pass


class Forbidden(SwarmletError):
    pass


class EngineError(SwarmletError):
    """The engine answered with an error; ``status`` is its HTTP status (0 when unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status
