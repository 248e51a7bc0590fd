"""Node eligibility for the orchestrators: unavailable nodes, paused nodes, placement constraints.

Manager layer, pure. The replicated orchestrator replaces tasks on unavailable nodes (DOWN or
drained, swarmkit orchestrator.InvalidNode); the global orchestrator runs one task on every
available node that matches the service's constraints and adds none on paused nodes; the
constraint enforcer rejects tasks whose node stopped matching. Constraints are parsed by the
control API's grammar (`key==value`, `key!=value`); values compare case-insensitively and all
constraints must hold (swarmkit manager/constraint).
"""

from __future__ import annotations

from collections.abc import Sequence

from swarmd.api import objects_pb2, specs_pb2, types_pb2
from swarmd.manager.controlapi.validation import Constraint, parse_constraint

_DOWN = objects_pb2.NodeStatus.STATE_DOWN
_DRAIN = specs_pb2.NodeSpec.AVAILABILITY_DRAIN
_PAUSE = specs_pb2.NodeSpec.AVAILABILITY_PAUSE
_ROLE_NAMES = {types_pb2.NODE_ROLE_MANAGER: "manager", types_pb2.NODE_ROLE_WORKER: "worker"}


def is_unavailable(node: objects_pb2.Node | None) -> bool:
    """Whether tasks on this node must be moved: it is gone, DOWN or drained."""
    return node is None or node.status.state == _DOWN or node.spec.availability == _DRAIN


def is_paused(node: objects_pb2.Node) -> bool:
    """Whether the node keeps its tasks but takes no new ones."""
    return node.spec.availability == _PAUSE


def parse_constraints(exprs: Sequence[str]) -> list[Constraint] | None:
    """The parsed constraints, or None when one does not parse (nothing can match it)."""
    try:
        return [parse_constraint(e) for e in exprs]
    except ValueError:
        return None


def _values(node: objects_pb2.Node, key: str) -> str | None:
    """The node's value for a constraint key (None: a label the node does not have)."""
    if key == "node.id":
        return node.id
    if key == "node.hostname":
        return node.description.hostname
    if key == "node.role":
        return _ROLE_NAMES.get(node.role, "")
    if key == "node.platform.os":
        return node.description.platform.os
    if key == "node.platform.arch":
        return node.description.platform.architecture
    if key.startswith("node.labels."):
        return node.spec.annotations.labels.get(key[len("node.labels.") :])
    if key.startswith("engine.labels."):
        return node.description.engine.labels.get(key[len("engine.labels.") :])
    return None


def matches(constraints: Sequence[Constraint], node: objects_pb2.Node) -> bool:
    """Whether the node satisfies every constraint (a missing label equals no value)."""
    for c in constraints:
        value = _values(node, c.key)
        same = value is not None and value.lower() == c.value.lower()
        if same != c.equal:
            return False
    return True


def service_matches(service: objects_pb2.Service, node: objects_pb2.Node) -> bool:
    """Whether the node satisfies the placement constraints of the service's current spec."""
    exprs = service.spec.task.placement.constraints
    if not exprs:
        return True
    parsed = parse_constraints(exprs)
    return parsed is not None and matches(parsed, node)


__all__ = ["is_paused", "is_unavailable", "matches", "parse_constraints", "service_matches"]
