"""Node eligibility for the orchestrators: unavailable nodes, paused nodes, placement constraints.

Manager layer, pure. The replicated orchestrator replaces tasks on unavailable nodes (DOWN or
drained, swarmkit orchestrator.InvalidNode); the global orchestrator runs one task on every
available node that matches the service's constraints and adds none on paused nodes; the
constraint enforcer rejects tasks whose node stopped matching. Constraints are parsed and
matched by `swarmd.manager.constraint`, the grammar the control API and scheduler use.
"""

from __future__ import annotations

from swarmd.api import objects_pb2, specs_pb2
from swarmd.manager import constraint

_DOWN = objects_pb2.NodeStatus.STATE_DOWN
_DRAIN = specs_pb2.NodeSpec.AVAILABILITY_DRAIN
_PAUSE = specs_pb2.NodeSpec.AVAILABILITY_PAUSE


def is_unavailable(node: objects_pb2.Node | None) -> bool:
    """Whether tasks on this node must be moved: it is gone, DOWN or drained."""
    return node is None or node.status.state == _DOWN or node.spec.availability == _DRAIN


def is_paused(node: objects_pb2.Node) -> bool:
    """Whether the node keeps its tasks but takes no new ones."""
    return node.spec.availability == _PAUSE


def service_matches(service: objects_pb2.Service, node: objects_pb2.Node) -> bool:
    """Whether the node satisfies the placement constraints of the service's current spec.

    A constraint that does not parse (the control API rejects those) matches no node.
    """
    exprs = service.spec.task.placement.constraints
    if not exprs:
        return True
    try:
        parsed = constraint.parse_constraints(exprs)
    except constraint.ConstraintError:
        return False
    return constraint.node_matches(parsed, node)


__all__ = ["is_paused", "is_unavailable", "service_matches"]
