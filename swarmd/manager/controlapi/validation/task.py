"""Validation of a TaskSpec outside the container: resources, restart policy, placement, networks.

Manager layer, pure. Placement constraints are parsed by `swarmd.manager.constraint`, the one
grammar the scheduler and the orchestrators match with, so what is accepted here is what runs.
"""

from __future__ import annotations

from swarmd.api import specs_pb2, types_pb2
from swarmd.manager.constraint import ConstraintError, check_spread_descriptor, parse_constraint
from swarmd.manager.controlapi import defaults
from swarmd.manager.controlapi.validation.container import validate_container
from swarmd.manager.controlapi.validation.fieldrules import (
    check_enum,
    check_non_negative_duration,
    check_unique,
    invalid,
)


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
        except ConstraintError as err:
            raise invalid(f"task.placement.constraints[{i}]", expr, err.rule) from err
    for i, pref in enumerate(p.preferences):
        field = f"task.placement.preferences[{i}].spread.spread_descriptor"
        descriptor = pref.spread.spread_descriptor
        try:
            check_spread_descriptor(descriptor)
        except ConstraintError as err:
            raise invalid(field, descriptor, err.rule) from err
    if p.max_replicas > defaults.MAX_REPLICAS:
        raise invalid(
            "task.placement.max_replicas",
            p.max_replicas,
            f"must be at most {defaults.MAX_REPLICAS}",
        )


__all__ = ["validate_task"]
