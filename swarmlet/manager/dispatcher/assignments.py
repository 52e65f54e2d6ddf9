"""The dispatcher's assignment pusher: what every connected agent must know, sent whenever
the store changes it.

A node is sent the full set of its tasks when its session opens, and then what changed in it
whenever one of them changes (except by its own report), each time with exactly the secrets
and configs they use; its network state and what it must trust (and whether to renew its
certificate) whenever they differ from what it was last sent; the swarm's managers when it
connects and whenever they change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol

from swarmlet.clock import Clock
from swarmlet.manager.ca.rotation import certificate_update
from swarmlet.manager.controller import Controller
from swarmlet.manager.dispatcher import decide, networks
from swarmlet.manager.store import Action, Event, Store
from swarmlet.models import (
    Cluster,
    Config,
    Network,
    Node,
    Secret,
    Service,
    StoredObject,
    Task,
)
from swarmlet.net.names import VXLAN_PORT
from swarmlet.protocol import (
    AssignmentChanges,
    Assignments,
    Certificates,
    Managers,
    Message,
    NetworkState,
)


class AgentConnection(Protocol):
    def send(self, message: Message) -> None:
        """Queue a message to the agent without waiting for it to be written."""
        ...

    def close(self, reason: str = "node removed from the swarm") -> None:
        """End the session (its node was removed, or the manager's term ended)."""
        ...


class AssignmentPusher(Controller):
    """Follows the store: ``mark`` notes the nodes whose tasks (or their secrets and configs)
    changed, the nodes that may need to renew, whether some host's network state may have
    changed, whether the managers may have changed, and the nodes removed; ``act`` pushes. It
    writes nothing.

    ``reports`` is the controller whose commits are the agents' own status reports (passed
    over); ``removed`` ends the session of a node removed from the swarm."""

    sees_own_commits = True  # it makes none

    def __init__(
        self,
        store: Store,
        clock: Clock,
        reports: Controller,
        removed: Callable[[str], None],
    ) -> None:
        super().__init__(store, clock)
        self._reports = reports
        self._removed = removed
        self.connections: dict[str, AgentConnection] = {}
        self._sent_networks: dict[str, NetworkState] = {}
        # The version of each task, secret and config the node's session was sent, by ID
        # (none: the session is sent its whole set next).
        self._sent_tasks: dict[str, _Sent] = {}
        self._sent_certificates: dict[str, Certificates] = {}
        # What the next pass pushes.
        self._dirty: set[str] = set()
        self._renewing: set[str] = set()
        self._networks_changed = False
        self._gone: set[str] = set()
        # The swarm's managers as the agents were last told (None: not read yet).
        self._managers: list[str] | None = None
        self._managers_changed = False

    # Sessions

    def connect(self, node_id: str, connection: AgentConnection) -> None:
        """Start pushing to a node's agent (replacing an older session): everything now."""
        self.connections[node_id] = connection
        self._forget(node_id)
        # The network first: a task's attachment needs the host's bridge to exist.
        self._push_networks([node_id])
        self._push(node_id)
        self._push_certificates([node_id])
        if managers := self._current_managers():
            connection.send(Managers(addrs=managers))

    def disconnect(self, node_id: str, connection: AgentConnection) -> bool:
        """Stop pushing to the session, if it is the node's current one (a reconnect may have
        replaced it); whether it was."""
        if self.connections.get(node_id) is not connection:
            return False
        del self.connections[node_id]
        self._forget(node_id)
        return True

    def end(self, node_id: str) -> AgentConnection | None:
        """Forget the node's session (its node was removed): the connection to close."""
        self._forget(node_id)
        return self.connections.pop(node_id, None)

    def end_all(self) -> dict[str, AgentConnection]:
        """Forget every session (the manager's term ended): the connections to close."""
        connections, self.connections = self.connections, {}
        self._sent_networks.clear()
        self._sent_tasks.clear()
        self._sent_certificates.clear()
        return connections

    def _forget(self, node_id: str) -> None:
        self._sent_networks.pop(node_id, None)
        self._sent_tasks.pop(node_id, None)
        self._sent_certificates.pop(node_id, None)

    # The loop

    def start(self) -> None:
        # Whatever changed before the snapshot (a new term: the sessions outlived the last
        # one) is pushed: assignments again, the rest where it differs.
        self._dirty.update(self.connections)
        self._renewing.update(self.connections)
        self._networks_changed = True
        self._managers_changed = True
        self._gone.update(n for n in self.connections if self._store.find(Node, n) is None)

    def mark(self, event: Event) -> None:
        obj = event.obj
        if isinstance(obj, Task):
            # A node's own report tells it nothing new, unless it releases secrets or
            # configs: sending back all its tasks for every report was most of the agents'
            # work with thousands of tasks. An attachment is never assigned: it changes only
            # the network state.
            if (
                obj.node_id
                and not obj.is_attachment
                and (not self._reports.made(event.revision) or decide.releases_dependencies(obj))
            ):
                self._dirty.add(obj.node_id)
        elif isinstance(obj, Secret | Config):
            # Sent again to the nodes it went to (only its labels can change).
            self._dirty |= decide.nodes_using(obj.id, self._store.all(Task))
        elif isinstance(obj, Node) and event.action is Action.DELETE:
            self._gone.add(obj.id)
            self._managers_changed = True
        elif isinstance(obj, Node):
            self._renewing.add(obj.id)
            self._managers_changed = True
        elif isinstance(obj, Cluster):
            self._renewing.update(self.connections)
        if _touches_networks(obj):
            self._networks_changed = True

    async def act(self) -> None:
        gone, self._gone = self._gone, set()
        for node_id in gone:
            self._removed(node_id)
        renewing, self._renewing = self._renewing, set()
        self._push_certificates(renewing)
        if self._networks_changed:
            self._networks_changed = False
            self._push_networks(list(self.connections))
        dirty, self._dirty = self._dirty, set()
        for node_id in dirty:
            self._push(node_id)
        if self._managers_changed:
            self._managers_changed = False
            self._push_managers()

    # What is sent

    def _push(self, node_id: str) -> None:
        """Send the node its tasks (what changed in them, after the first time), with exactly
        the secrets and configs they use."""
        connection = self.connections.get(node_id)
        if connection is not None:
            store = self._store
            tasks = decide.assignments(store.tasks_of_node(node_id))
            secrets, configs = decide.dependencies(
                tasks,
                {secret.id: secret for secret in store.all(Secret)},
                {config.id: config for config in store.all(Config)},
            )
            sent = self._sent_tasks.get(node_id)
            now = _Sent(_versions(tasks), _versions([*secrets, *configs]))
            message: Message
            if sent is None:
                message = Assignments(tasks=tasks, secrets=secrets, configs=configs)
            elif sent == now:
                return  # (a new term's first pass: the session has it all)
            else:
                changed, removed = decide.changes(sent.tasks, tasks)
                message = AssignmentChanges(
                    tasks=changed, removed=removed, secrets=secrets, configs=configs
                )
            connection.send(message)
            self._sent_tasks[node_id] = now

    def _current_managers(self) -> list[str]:
        if self._managers is None:
            self._managers = decide.manager_addrs(self._store.all(Node))
        return self._managers

    def _push_managers(self) -> None:
        """Tell every connected agent the swarm's managers, when they changed."""
        managers = decide.manager_addrs(self._store.all(Node))
        if managers == self._managers:
            return
        self._managers = managers
        if managers:
            for connection in self.connections.values():
                connection.send(Managers(addrs=managers))

    def _push_certificates(self, node_ids: Iterable[str]) -> None:
        """Tell connected nodes what to trust and whether to renew, once per change."""
        cluster = self._store.cluster()
        if cluster is None or not cluster.root_ca.ca_cert:
            return
        for node_id in node_ids:
            connection = self.connections.get(node_id)
            node = self._store.find(Node, node_id)
            if connection is None or node is None:
                continue
            update = certificate_update(node, cluster.root_ca)
            if update is None:
                self._sent_certificates.pop(node_id, None)
            elif self._sent_certificates.get(node_id) != update:
                self._sent_certificates[node_id] = update
                connection.send(update)

    def _push_networks(self, node_ids: Iterable[str]) -> None:
        """Send each node its network state, when it differs from what it was last sent."""
        store = self._store
        cluster = networks.Cluster(
            nodes={node.id: node for node in store.all(Node)},
            networks={network.id: network for network in store.all(Network)},
            services={service.id: service for service in store.all(Service)},
            # Filtered once here rather than once per connected node.
            tasks=[t for t in store.all(Task) if t.networks_attachments and networks.is_present(t)],
            data_path_port=swarm.data_path_port if (swarm := store.cluster()) else VXLAN_PORT,
        )
        for node_id in node_ids:
            connection = self.connections.get(node_id)
            if connection is None:
                continue
            state = networks.network_state(node_id, cluster)
            if self._sent_networks.get(node_id) != state:
                self._sent_networks[node_id] = state
                connection.send(state)


class _Sent(NamedTuple):
    tasks: dict[str, int]
    dependencies: dict[str, int]


def _versions(objects: Iterable[StoredObject]) -> dict[str, int]:
    return {obj.id: obj.version.index for obj in objects}


def _touches_networks(obj: StoredObject) -> bool:
    """Whether a change may change some host's network state (most task changes do not)."""
    if isinstance(obj, Task):
        return bool(obj.networks_attachments)
    # A node's change may take its addresses away (the event shows only the new object).
    return isinstance(obj, Network | Service | Node)
