"""`swarmctl task ls|inspect`.

swarmctl layer; registered by `swarmctl.cli`. Tasks are written by the managers, so users only
read them. `task ls` names each task `<service>.<slot>` (`<service>.<node id>` for global tasks)
and its node by hostname, as `docker service ps` does.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime

from swarmctl import resolve
from swarmctl.client import Client
from swarmctl.command import Parser, add_group, add_list_options, add_verb
from swarmctl.output import Column, ago, render_json, render_list
from swarmctl.protojson import enum_name, to_dict
from swarmd.api import control_pb2, objects_pb2, types_pb2

LS_COLUMNS = (
    Column("ID", "ID"),
    Column("NAME", "Name"),
    Column("IMAGE", "Image"),
    Column("NODE", "Node"),
    Column("DESIRED STATE", "DesiredState"),
    Column("CURRENT STATE", "CurrentState"),
    Column("HEALTH", "Health"),
    Column("ERROR", "Error"),
)
_STATES = {enum_name(types_pb2.TaskState.DESCRIPTOR, v): v for v in types_pb2.TaskState.values()}


def _health(task: objects_pb2.Task) -> str:
    """healthy / unhealthy / starting for a task with a healthcheck; empty without one."""
    if task.status.health == types_pb2.HEALTH_STATE_NONE:
        return ""
    return enum_name(types_pb2.HealthState.DESCRIPTOR, task.status.health)


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """Add `task` and its verbs to the top-level subparsers."""
    verbs = add_group(sub, "task", "inspect tasks")
    p = add_verb(verbs, "ls", ls, "list tasks")
    p.add_argument("--service", action="append", help="only tasks of this service (repeatable)")
    p.add_argument("--node", action="append", help="only tasks on this node (repeatable)")
    p.add_argument(
        "--desired-state",
        action="append",
        choices=sorted(_STATES, key=_STATES.__getitem__),
        help="only tasks with this desired state (repeatable)",
    )
    add_list_options(p)
    p = add_verb(verbs, "inspect", inspect, "show a task as JSON")
    p.add_argument("task", help="id or id prefix")


def state_name(state: int) -> str:
    """`TASK_STATE_RUNNING` -> `RUNNING`, as in the task table."""
    return enum_name(types_pb2.TaskState.DESCRIPTOR, state).upper()


def task_display_name(task: objects_pb2.Task, service_name: str) -> str:
    """`web.1` for a replicated task, `web.<node id>` for a global one."""
    if task.annotations.name:
        return task.annotations.name
    where = str(task.slot) if task.slot else task.node_id
    return f"{service_name}.{where}"


def task_rows(
    tasks: Sequence[objects_pb2.Task],
    service_names: dict[str, str],
    node_names: dict[str, str],
    now: datetime,
) -> list[dict[str, str]]:
    """Table rows for tasks, ordered by service name, slot and newest first."""
    ordered = sorted(
        tasks,
        key=lambda t: (
            service_names.get(t.service_id, t.service_annotations.name),
            t.slot,
            t.node_id,
            -t.meta.created_at.seconds,
        ),
    )
    rows = []
    for t in ordered:
        service_name = service_names.get(t.service_id) or t.service_annotations.name
        since = ago(t.status.timestamp, now)
        rows.append(
            {
                "ID": t.id,
                "Name": task_display_name(t, service_name or t.service_id),
                "Image": t.spec.container.image,
                "Node": node_names.get(t.node_id, t.node_id),
                "DesiredState": state_name(t.desired_state),
                "CurrentState": f"{state_name(t.status.state)} {since}".strip(),
                "Health": _health(t),
                "Error": t.status.err,
            }
        )
    return rows


async def ls(client: Client, ns: argparse.Namespace) -> str:
    """The tasks table, optionally narrowed to services, nodes and desired states."""
    req = control_pb2.ListTasksRequest()
    for ref in ns.service or ():
        req.service_ids.append((await resolve.resolve(client, resolve.SERVICE, ref)).id)
    for ref in ns.node or ():
        req.node_ids.append((await resolve.resolve(client, resolve.NODE, ref)).id)
    req.desired_states.extend(_STATES[s] for s in ns.desired_state or ())
    tasks = (await client.control.ListTasks(req, timeout=client.timeout)).tasks
    services = await resolve.list_all(client, resolve.SERVICE)
    nodes = await resolve.list_all(client, resolve.NODE)
    rows = task_rows(
        tasks,
        {s.id: s.spec.annotations.name for s in services},
        {n.id: n.description.hostname or n.id for n in nodes},
        datetime.now(UTC),
    )
    return render_list(LS_COLUMNS, rows, ns.format, ns.quiet)


async def inspect(client: Client, ns: argparse.Namespace) -> str:
    """The task as JSON."""
    task = await resolve.resolve(client, resolve.TASK, ns.task)
    return render_json(to_dict(task))


__all__ = [
    "LS_COLUMNS",
    "inspect",
    "ls",
    "register",
    "state_name",
    "task_display_name",
    "task_rows",
]
