"""A change in the store as the swarm event a Docker manager emits for it.

After moby's ``daemon/events.go`` (``generateClusterEvent`` and the ``log*Event`` functions
beside it), which turns every change SwarmKit's store watch reports (``IncludeOldObject``)
into one ``events.Message``:

- services, nodes, networks, secrets and configs; create, update and remove (the store's
  delete); scope ``swarm``; the actor is the object's ID with its ``name``;
- time: the object's ``CreatedAt`` for a create, its ``UpdatedAt`` for an update, now for a
  remove (the store gives no time for a delete);
- an update says what changed, comparing the old object with the new:
  a service's ``image.old/new``, ``replicas.old/new`` (replicated to replicated), and
  ``updatestate.new`` (a first update status) or ``updatestate.old/new``; a node's
  ``availability``, ``role`` (its observed role: the certificate's), ``state``, and, while a
  manager, ``leader`` and ``reachability``, each as ``.old/.new``.

Every store write of such an object is an event, as every raft write is one in Swarm: an
update that changed none of these attributes is an event with its ``name`` alone.
"""

from __future__ import annotations

from datetime import datetime

from swarmlet.manager.events.message import EventMessage, unix_nano
from swarmlet.manager.store import Action
from swarmlet.models import Config, Network, Node, Secret, Service, StoredObject

# The kinds that have events, by their event type.
EVENT_TYPES: dict[type[StoredObject], str] = {
    Service: "service",
    Node: "node",
    Network: "network",
    Secret: "secret",
    Config: "config",
}
_ACTIONS = {Action.CREATE: "create", Action.UPDATE: "update", Action.DELETE: "remove"}


def swarm_event(
    action: Action, obj: StoredObject, old: StoredObject | None, now: datetime
) -> EventMessage | None:
    """The event of one store change (``old``: the object before an update, if known), or
    None for a kind that has none (tasks, the cluster)."""
    event_type = EVENT_TYPES.get(type(obj))
    if event_type is None:
        return None
    attributes = {"name": _name(obj)}
    if action is Action.UPDATE and old is not None and type(old) is type(obj):
        if isinstance(obj, Service):
            assert isinstance(old, Service)
            attributes.update(service_changes(old, obj))
        elif isinstance(obj, Node):
            assert isinstance(old, Node)
            attributes.update(node_changes(old, obj))
    return EventMessage.make(
        event_type, _ACTIONS[action], obj.id, unix_nano(_time(action, obj, now)), attributes
    )


def _time(action: Action, obj: StoredObject, now: datetime) -> datetime:
    stamp = obj.created_at if action is Action.CREATE else obj.updated_at
    if action is Action.DELETE or stamp is None:
        return now
    return stamp


def _name(obj: StoredObject) -> str:
    if isinstance(obj, Node):
        return obj.spec.name or obj.description.hostname
    if isinstance(obj, Network):
        return obj.name
    if isinstance(obj, Service | Secret | Config):
        return obj.spec.name
    return ""


def _changed(attributes: dict[str, str], key: str, old: str, new: str) -> None:
    if old != new:
        attributes[f"{key}.old"] = old
        attributes[f"{key}.new"] = new


def service_changes(old: Service, new: Service) -> dict[str, str]:
    attributes: dict[str, str] = {}
    _changed(
        attributes,
        "image",
        old.spec.task_template.container_spec.image,
        new.spec.task_template.container_spec.image,
    )
    replicated, was_replicated = new.spec.mode.replicated, old.spec.mode.replicated
    if replicated is not None and was_replicated is not None:
        _changed(attributes, "replicas", str(was_replicated.replicas), str(replicated.replicas))
    status, old_status = new.update_status, old.update_status
    if status is not None:
        if old_status is None:
            attributes["updatestate.new"] = str(status.state)
        else:
            _changed(attributes, "updatestate", str(old_status.state), str(status.state))
    return attributes


def _role(node: Node) -> str:
    """The node's observed role: the one its last certificate was issued for."""
    return str(node.certificate.role if node.certificate is not None else node.spec.role)


def node_changes(old: Node, new: Node) -> dict[str, str]:
    attributes: dict[str, str] = {}
    _changed(attributes, "availability", str(old.spec.availability), str(new.spec.availability))
    _changed(attributes, "role", _role(old), _role(new))
    _changed(attributes, "state", str(old.status.state), str(new.status.state))
    manager, was_manager = new.manager_status, old.manager_status
    if manager is not None and was_manager is not None:
        _changed(attributes, "leader", _bool(was_manager.leader), _bool(manager.leader))
        _changed(
            attributes,
            "reachability",
            str(was_manager.reachability).lower(),
            str(manager.reachability).lower(),
        )
    return attributes


def _bool(value: bool) -> str:
    return "true" if value else "false"
