"""`swarmctl node ls|inspect|update|activate|pause|drain|promote|demote|rm`.

swarmctl layer; registered by `swarmctl.cli`. Every change is a read-modify-write of the node's
spec against the version it was read at. The manager enforces the rules (the last manager cannot
be demoted, a manager must be demoted before removal, an up node needs --force); swarmctl shows
its refusal as the one-line error.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from swarmctl import flags, resolve
from swarmctl.client import Client
from swarmctl.command import Handler, Parser, add_group, add_list_options, add_verb
from swarmctl.output import Column, render_json, render_list
from swarmctl.protojson import enum_name, to_dict
from swarmd.api import control_pb2, objects_pb2, specs_pb2, types_pb2

LS_COLUMNS = (
    Column("ID", "ID"),
    Column("HOSTNAME", "Hostname"),
    Column("STATUS", "Status"),
    Column("AVAILABILITY", "Availability"),
    Column("ROLE", "Role"),
    Column("MANAGER STATUS", "ManagerStatus"),
)
_Spec = specs_pb2.NodeSpec
AVAILABILITIES = {
    "active": _Spec.AVAILABILITY_ACTIVE,
    "pause": _Spec.AVAILABILITY_PAUSE,
    "drain": _Spec.AVAILABILITY_DRAIN,
}
ROLES = {"worker": types_pb2.NODE_ROLE_WORKER, "manager": types_pb2.NODE_ROLE_MANAGER}
_Reach = types_pb2.ManagerStatus


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """Add `node` and its verbs to the top-level subparsers."""
    verbs = add_group(sub, "node", "manage nodes")
    p = add_verb(verbs, "ls", ls, "list nodes")
    add_list_options(p)
    p = add_verb(verbs, "inspect", inspect, "show a node as JSON")
    p.add_argument("node", help="hostname, id or id prefix")
    p = add_verb(verbs, "update", update, "change a node")
    p.add_argument("node", help="hostname, id or id prefix")
    p.add_argument(
        "--availability", type=flags.choice("availability", AVAILABILITIES), default=None
    )
    p.add_argument("--role", type=flags.choice("role", ROLES), default=None)
    p.add_argument("--label-add", action="append", type=flags.parse_key_value, metavar="KEY=VALUE")
    p.add_argument("--label-rm", action="append", metavar="KEY")
    for verb, what in (
        ("activate", "make nodes available for tasks"),
        ("pause", "stop scheduling new tasks on nodes"),
        ("drain", "move the tasks away from nodes"),
        ("promote", "make nodes managers"),
        ("demote", "make nodes workers"),
    ):
        p = add_verb(verbs, verb, _shortcut(verb), what)
        p.add_argument("nodes", nargs="+", metavar="NODE", help="hostname, id or id prefix")
    p = add_verb(verbs, "rm", rm, "remove nodes from the cluster")
    p.add_argument("nodes", nargs="+", metavar="NODE", help="hostname, id or id prefix")
    p.add_argument("-f", "--force", action="store_true", help="remove a node that is not down")


def status_name(node: objects_pb2.Node) -> str:
    """`READY`, `DOWN`, `DISCONNECTED` or `UNKNOWN`."""
    return enum_name(objects_pb2.NodeStatus.State.DESCRIPTOR, node.status.state).upper()


def manager_status(node: objects_pb2.Node) -> str:
    """`LEADER`, `REACHABLE`, `UNREACHABLE` or `UNKNOWN` for managers, empty for workers."""
    if not node.HasField("manager_status"):
        return ""
    if node.manager_status.leader:
        return "LEADER"
    return enum_name(_Reach.Reachability.DESCRIPTOR, node.manager_status.reachability).upper()


def node_row(node: objects_pb2.Node) -> dict[str, str]:
    """One row of `node ls`."""
    return {
        "ID": node.id,
        "Hostname": node.description.hostname or node.spec.annotations.name,
        "Status": status_name(node),
        "Availability": enum_name(_Spec.Availability.DESCRIPTOR, node.spec.availability).upper(),
        "Role": enum_name(types_pb2.NodeRole.DESCRIPTOR, node.role),
        "ManagerStatus": manager_status(node),
    }


async def ls(client: Client, ns: argparse.Namespace) -> str:
    """The nodes table, ordered by hostname."""
    nodes = await resolve.list_all(client, resolve.NODE)
    rows = sorted((node_row(n) for n in nodes), key=lambda r: (r["Hostname"], r["ID"]))
    return render_list(LS_COLUMNS, rows, ns.format, ns.quiet)


async def inspect(client: Client, ns: argparse.Namespace) -> str:
    """The node as JSON."""
    return render_json(to_dict(await resolve.resolve(client, resolve.NODE, ns.node)))


async def _change(
    client: Client, node: objects_pb2.Node, edit: Callable[[specs_pb2.NodeSpec], None]
) -> objects_pb2.Node:
    """UpdateNode with `edit` applied to a copy of the spec, against the version read."""
    spec = specs_pb2.NodeSpec()
    spec.CopyFrom(node.spec)
    edit(spec)
    resp = await client.control.UpdateNode(
        control_pb2.UpdateNodeRequest(node_id=node.id, node_version=node.meta.version, spec=spec),
        timeout=client.timeout,
    )
    return resp.node


async def update(client: Client, ns: argparse.Namespace) -> str:
    """Change availability, role and labels of one node; prints its id."""

    def edit(spec: specs_pb2.NodeSpec) -> None:
        if ns.availability is not None:
            spec.availability = ns.availability
        if ns.role is not None:
            spec.desired_role = ns.role
        for key, value in ns.label_add or ():
            spec.annotations.labels[key] = value
        for key in ns.label_rm or ():
            spec.annotations.labels.pop(key, None)

    node = await _change(client, await resolve.resolve(client, resolve.NODE, ns.node), edit)
    return f"{node.id}\n"


_SHORTCUTS: dict[str, tuple[str, int]] = {
    "activate": ("availability", _Spec.AVAILABILITY_ACTIVE),
    "pause": ("availability", _Spec.AVAILABILITY_PAUSE),
    "drain": ("availability", _Spec.AVAILABILITY_DRAIN),
    "promote": ("desired_role", types_pb2.NODE_ROLE_MANAGER),
    "demote": ("desired_role", types_pb2.NODE_ROLE_WORKER),
}


def _shortcut(verb: str) -> Handler:
    field, value = _SHORTCUTS[verb]

    async def handler(client: Client, ns: argparse.Namespace) -> str:
        out = []
        for node in await resolve.resolve_all(client, resolve.NODE, ns.nodes):
            updated = await _change(client, node, lambda spec: setattr(spec, field, value))
            out.append(f"{updated.id}\n")
        return "".join(out)

    handler.__doc__ = f"`node {verb}`: set {field} on each node."
    return handler


async def rm(client: Client, ns: argparse.Namespace) -> str:
    """Remove nodes; prints each as given."""
    out = []
    found = await resolve.resolve_all(client, resolve.NODE, ns.nodes)
    for ref, node in zip(ns.nodes, found, strict=True):
        await client.control.RemoveNode(
            control_pb2.RemoveNodeRequest(node_id=node.id, force=ns.force), timeout=client.timeout
        )
        out.append(f"{ref}\n")
    return "".join(out)


__all__ = [
    "AVAILABILITIES",
    "LS_COLUMNS",
    "ROLES",
    "inspect",
    "ls",
    "manager_status",
    "node_row",
    "register",
    "rm",
    "status_name",
    "update",
]
