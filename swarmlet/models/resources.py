"""Generic resources: what a node advertises beyond CPUs and memory (``dockerd
--node-generic-resource``), what a service reserves of them, and what a task is given.

A resource is discrete (``sgx=2``: a count) or named (``gpu=UUID1``, ``gpu=UUID2``: a set of
identifiers), in the Engine API's shape: a list of objects each holding one of
``DiscreteResourceSpec`` or ``NamedResourceSpec``.
"""

from __future__ import annotations

from swarmlet.models.base import Model


class NamedResourceSpec(Model):
    kind: str
    value: str


class DiscreteResourceSpec(Model):
    kind: str
    value: int


class GenericResource(Model):
    named_resource_spec: NamedResourceSpec | None = None
    discrete_resource_spec: DiscreteResourceSpec | None = None

    @property
    def kind(self) -> str:
        spec = self.named_resource_spec or self.discrete_resource_spec
        return spec.kind if spec is not None else ""
