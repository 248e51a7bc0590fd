"""Validation of a TaskSpec outside the container: resources, restart policy, placement, networks.

Manager layer, pure. `parse_constraint` is the grammar of placement constraints
(swarmkit manager/constraint): `<key> == <value>` or `<key> != <value>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from swarmd.api import specs_pb2, types_pb2
from swarmd.manager.controlapi import defaults
from swarmd.manager.controlapi.validation.common import (
    check_enum,
    check_non_negative_duration,
    check_unique,
    invalid,
)
from swarmd.manager.controlapi.validation.container import validate_container

FIXED_CONSTRAINT_KEYS = frozenset(
    {"node.id", "node.hostname", "node.role", "node.platform.os", "node.platform.arch"}
)
LABEL_CONSTRAINT_PREFIXES = ("node.labels.", "engine.labels.")
_ROLES = ("manager", "worker")
# swarmkit constraint.go valuePattern: no '=' or '!' inside a value.
_VALUE = re.compile(r"[a-zA-Z0-9:\-_\s.*()?+\[\]\\^$|/]+")
_KEY_RULE = (
    "key must be node.id, node.hostname, node.role, node.platform.os, node.platform.arch, "
    "node.labels.<label> or engine.labels.<label>"
)


@dataclass(frozen=True, slots=True)
class Constraint:
    """One parsed placement constraint; `key` is lowercased unless it names a label."""

    key: str
    equal: bool
    value: str


def _check_key(key: str) -> str:
    """The canonical key (fixed keys fold case as swarmkit does; label names keep theirs)."""
    folded = key.lower()
    if folded in FIXED_CONSTRAINT_KEYS:
        return folded
    for prefix in LABEL_CONSTRAINT_PREFIXES:
        if folded.startswith(prefix) and len(key) > len(prefix):
            return prefix + key[len(prefix) :]
    raise ValueError(_KEY_RULE)


def parse_constraint(expr: str) -> Constraint:
    """Parse `key==value` / `key!=value`; raises ValueError with the rule broken."""
    positions = [(expr.find(op), op) for op in ("==", "!=") if op in expr]
    if not positions:
        raise ValueError("must be <key>==<value> or <key>!=<value>")
    at, op = min(positions)
    key = _check_key(expr[:at].strip())
    value = expr[at + 2 :].strip()
    if not value or not _VALUE.fullmatch(value):
        raise ValueError(
            "value must be non-empty letters, digits, spaces and : - _ . * ( ) ? + [ ] \\ ^ $ | /"
        )
    if key == "node.role" and value.lower() not in _ROLES:
        raise ValueError("node.role is manager or worker")
    return Constraint(key=key, equal=op == "==", value=value)


def validate_task(t: specs_pb2.TaskSpec) -> None:
    """Check a service's task spec; raises InvalidArgument naming the first bad field."""
    validate_container(t.container)
    _validate_resources(t.resources)
    if t.HasField("restart"):
        _validate_restart(t.restart)
    _validate_placement(t.placement)
    for i, net in enumerate(t.networks):
        if not net.target:
            raise invalid(f"task.networks[{i}].target", "", "a network id or name is required")
    check_unique("task.networks.target", (n.target for n in t.networks), "network attachment")


def _validate_resources(r: types_pb2.ResourceRequirements) -> None:
    for kind in ("limits", "reservations"):
        res: types_pb2.Resources = getattr(r, kind)
        field = f"task.resources.{kind}"
        if res.nano_cpus < 0 or 0 < res.nano_cpus < defaults.MIN_NANO_CPUS:
            raise invalid(f"{field}.nano_cpus", res.nano_cpus, "must be 0 or at least 1000000")
        if res.memory_bytes < 0 or 0 < res.memory_bytes < defaults.MIN_MEMORY_BYTES:
            raise invalid(f"{field}.memory_bytes", res.memory_bytes, "must be 0 or at least 4MiB")
    lim, res = r.limits, r.reservations
    if lim.nano_cpus and res.nano_cpus > lim.nano_cpus:
        raise invalid(
            "task.resources.reservations.nano_cpus",
            res.nano_cpus,
            f"must not exceed the limit {lim.nano_cpus}",
        )
    if lim.memory_bytes and res.memory_bytes > lim.memory_bytes:
        raise invalid(
            "task.resources.reservations.memory_bytes",
            res.memory_bytes,
            f"must not exceed the limit {lim.memory_bytes}",
        )


def _validate_restart(p: types_pb2.RestartPolicy) -> None:
    check_enum("task.restart.condition", p.condition, types_pb2.RestartPolicy.RestartCondition)
    check_non_negative_duration("task.restart.delay", p.delay)
    check_non_negative_duration("task.restart.window", p.window)


def _validate_placement(p: types_pb2.Placement) -> None:
    for i, expr in enumerate(p.constraints):
        try:
            parse_constraint(expr)
        except ValueError as err:
            raise invalid(f"task.placement.constraints[{i}]", expr, str(err)) from err
    for i, pref in enumerate(p.preferences):
        field = f"task.placement.preferences[{i}].spread.spread_descriptor"
        descriptor = pref.spread.spread_descriptor
        try:
            _check_key(descriptor)
        except ValueError as err:
            raise invalid(field, descriptor, "spread " + str(err)) from err
    if p.max_replicas > defaults.MAX_REPLICAS:
        raise invalid(
            "task.placement.max_replicas",
            p.max_replicas,
            f"must be at most {defaults.MAX_REPLICAS}",
        )


__all__ = [
    "FIXED_CONSTRAINT_KEYS",
    "LABEL_CONSTRAINT_PREFIXES",
    "Constraint",
    "parse_constraint",
    "validate_task",
]
