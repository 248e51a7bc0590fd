"""`swarmctl events`: the cluster's changes as they are committed, one line per change.

swarmctl layer. Streams the manager's Watch API (swarmd.manager.watchapi): every create, update
and remove of a service, task, node, secret, config, network or cluster, with the store version
that made it. Filters narrow the stream: `--kind` (repeatable), `--action create|update|remove`
(repeatable), `--service NAME|ID`, `--node NAME|ID`, `--label KEY[=VALUE]`. `--since VERSION`
resumes after the last version a client saw, so a consumer that reconnects misses nothing; the
manager refuses when those changes are no longer held, and the error says so. Each line:

    <version> <kind> <action> <id> <name> [key=value ...]

or one JSON object per line with `--format json`. Like `logs`, the handler prints as events
arrive (it runs until interrupted, or until `--count` events were printed) and returns "".
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from swarmctl import flags, resolve
from swarmctl.client import Client, open_channel
from swarmctl.command import Parser
from swarmctl.protojson import pascal_case, to_dict
from swarmd.api import objects_pb2, store_pb2, types_pb2, watch_pb2, watch_pb2_grpc

KINDS = ("service", "task", "node", "secret", "config", "network", "cluster")
ACTIONS = {"create": 1, "update": 2, "remove": 4}
_ACTION_NAMES = {
    store_pb2.STORE_ACTION_KIND_CREATE: "create",
    store_pb2.STORE_ACTION_KIND_UPDATE: "update",
    store_pb2.STORE_ACTION_KIND_REMOVE: "remove",
}


def _object(ev: watch_pb2.WatchEvent) -> tuple[str, Any]:
    kind = ev.object.WhichOneof("object") or ""
    return kind, getattr(ev.object, kind) if kind else objects_pb2.Node()


def _name(kind: str, obj: object) -> str:
    if isinstance(obj, objects_pb2.Task):
        return obj.annotations.name or f"{obj.service_annotations.name}.{obj.slot or obj.node_id}"
    if isinstance(obj, objects_pb2.Node):
        return obj.spec.annotations.name or obj.description.hostname
    spec = getattr(obj, "spec", None)
    return spec.annotations.name if spec is not None else ""


def _details(obj: object) -> list[str]:
    """The few attributes an operator scans for, as key=value."""
    if isinstance(obj, objects_pb2.Task):
        state = types_pb2.TaskState.Name(obj.status.state).removeprefix("TASK_STATE_").lower()
        desired = types_pb2.TaskState.Name(obj.desired_state).removeprefix("TASK_STATE_").lower()
        out = [f"state={state}", f"desired={desired}"]
        if obj.node_id:
            out.append(f"node={obj.node_id}")
        if obj.status.err:
            out.append(f"error={json.dumps(obj.status.err)}")
        return out
    if isinstance(obj, objects_pb2.Service) and obj.spec.HasField("replicated"):
        return [f"replicas={obj.spec.replicated.replicas}"]
    if isinstance(obj, objects_pb2.Node):
        state = objects_pb2.NodeStatus.State.Name(obj.status.state).removeprefix("STATE_")
        return [f"status={state.lower()}"]
    return []


def format_event(version: int, ev: watch_pb2.WatchEvent) -> str:
    """One text line for one change."""
    kind, obj = _object(ev)
    parts = [str(version), kind, _ACTION_NAMES.get(ev.action, "?"), obj.id, _name(kind, obj)]
    return " ".join(p for p in [*parts, *_details(obj)] if p) + "\n"


def event_json(version: int, ev: watch_pb2.WatchEvent) -> str:
    """One JSON document (one line) for one change; secret data is never included."""
    kind, obj = _object(ev)
    body = to_dict(obj)  # the manager already removed secret data and the CA key
    doc = {
        "Version": version,
        "Kind": kind,
        "Action": _ACTION_NAMES.get(ev.action, "?"),
        "ID": obj.id,
        "Name": _name(kind, obj),
        pascal_case(kind): body,
    }
    return json.dumps(doc, sort_keys=False) + "\n"


async def _entries(client: Client, ns: argparse.Namespace) -> list[watch_pb2.WatchEntry]:
    actions = 0
    for name in ns.action or []:
        actions |= ACTIONS[name]
    filters: list[watch_pb2.SelectBy] = []
    if ns.service:
        svc = await resolve.resolve(client, resolve.SERVICE, ns.service)
        filters.append(watch_pb2.SelectBy(service_id=svc.id))
    if ns.node:
        node = await resolve.resolve(client, resolve.NODE, ns.node)
        filters.append(watch_pb2.SelectBy(node_id=node.id))
    if ns.label:
        filters.append(watch_pb2.SelectBy(label=ns.label))
    kinds = ns.kind or ([] if not filters else _kinds_for(ns))
    if not kinds:
        return [watch_pb2.WatchEntry(action=actions, filters=filters)] if actions else []
    return [watch_pb2.WatchEntry(kind=k, action=actions, filters=filters) for k in kinds]


def _kinds_for(ns: argparse.Namespace) -> list[str]:
    # A service filter matches the service and its tasks; a node filter the node and its tasks.
    if ns.service and ns.node:
        return ["task"]
    if ns.service:
        return ["service", "task"]
    if ns.node:
        return ["node", "task"]
    return []


async def events(client: Client, ns: argparse.Namespace, out: TextIO | None = None) -> str:
    """Stream changes until interrupted (or `--count` changes were printed)."""
    out = out or sys.stdout
    req = watch_pb2.WatchRequest(entries=await _entries(client, ns))
    if ns.since:
        req.resume_from.index = ns.since
    channel = open_channel(client.target)
    printed = 0
    try:
        call = watch_pb2_grpc.WatchStub(channel).Watch(req)
        async for msg in call:
            for ev in msg.events:
                line = (event_json if ns.format == "json" else format_event)(msg.version.index, ev)
                out.write(line)
                printed += 1
                if ns.count and printed >= ns.count:
                    out.flush()
                    call.cancel()
                    return ""
            out.flush()
    finally:
        await channel.close()
    return ""


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """Add `swarmctl events`."""
    help_text = "stream the cluster's changes (services, tasks, nodes, secrets, configs)"
    parser = sub.add_parser("events", help=help_text, description=help_text)
    parser.set_defaults(handler=events)
    parser.add_argument("--kind", action="append", choices=KINDS, help="only this kind")
    parser.add_argument("--action", action="append", choices=sorted(ACTIONS), help="only this")
    parser.add_argument("--service", default="", help="a service (name, id or prefix)")
    parser.add_argument("--node", default="", help="a node (name, id or prefix)")
    parser.add_argument("--label", default="", help="objects with label KEY or KEY=VALUE")
    parser.add_argument(
        "--since",
        type=flags.parse_non_negative_int,
        default=0,
        help="resume after this store version",
    )
    parser.add_argument(
        "--count",
        type=flags.parse_non_negative_int,
        default=0,
        help="stop after N events (0: never)",
    )
    parser.add_argument("--format", choices=["table", "json"], default="table", help="output")


__all__ = ["event_json", "events", "format_event", "register"]
