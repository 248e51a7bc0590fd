"""`swarmctl service create|inspect|ls|update|scale|rm`.

swarmctl layer; registered by `swarmctl.cli`. Updates (update, scale) are read-modify-write:
the service is read, its spec changed by the flags, and written back with the version it was
read at, so a concurrent change is refused by the manager as out of sequence instead of being
silently overwritten.
"""

from __future__ import annotations

import argparse
from typing import Any

from swarmctl import flags, resolve, specdiff
from swarmctl.client import Client
from swarmctl.command import Parser, add_group, add_list_options, add_verb
from swarmctl.commands import serviceflags
from swarmctl.output import Column, render_json, render_list
from swarmctl.protojson import to_dict
from swarmd import errors
from swarmd.api import control_pb2, objects_pb2, specs_pb2

LS_COLUMNS = (
    Column("ID", "ID"),
    Column("NAME", "Name"),
    Column("MODE", "Mode"),
    Column("REPLICAS", "Replicas"),
    Column("IMAGE", "Image"),
)


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """Add `service` and its verbs to the top-level subparsers."""
    verbs = add_group(sub, "service", "manage services")
    p = add_verb(verbs, "create", create, "create a service")
    p.add_argument("--name", required=True, help="service name")
    p.add_argument(
        "--mode", choices=("replicated", "global"), default="replicated", help="service mode"
    )
    serviceflags.add_spec_flags(p, update=False)
    p = add_verb(verbs, "inspect", inspect, "show a service as JSON")
    p.add_argument("service", help="name, id or id prefix")
    p = add_verb(verbs, "ls", ls, "list services")
    add_list_options(p)
    p = add_verb(verbs, "update", update, "change a service")
    p.add_argument("service", help="name, id or id prefix")
    serviceflags.add_spec_flags(p, update=True)
    p.add_argument("--force", action="store_true", help="redeploy the tasks even if unchanged")
    p.add_argument("--rollback", action="store_true", help="go back to the previous spec")
    pause = p.add_mutually_exclusive_group()
    pause.add_argument("--pause", action="store_true", help="pause the update in progress")
    pause.add_argument("--resume", action="store_true", help="resume a paused update")
    p = add_verb(verbs, "rollback", rollback, "go back to the previous (or a given) revision")
    p.add_argument("service", help="name, id or id prefix")
    p.add_argument(
        "--to", type=flags.parse_revision, default=0, metavar="REVISION", help="revision to restore"
    )
    p = add_verb(verbs, "history", history, "list a service's kept revisions and their changes")
    p.add_argument("service", help="name, id or id prefix")
    add_list_options(p)
    p = add_verb(verbs, "scale", scale, "set the replica count of services")
    p.add_argument(
        "scales", nargs="+", type=flags.parse_scale, metavar="SERVICE=REPLICAS", help="e.g. web=5"
    )
    p = add_verb(verbs, "rm", rm, "remove services")
    p.add_argument("services", nargs="+", metavar="SERVICE", help="name, id or id prefix")


async def create(client: Client, ns: argparse.Namespace) -> str:
    """Create a service from the flags; prints its id."""
    if not ns.image:
        raise errors.InvalidArgument("--image is required")
    spec = specs_pb2.ServiceSpec()
    spec.annotations.name = ns.name
    if ns.mode == "global":
        if ns.replicas is not None:
            raise errors.InvalidArgument("--replicas cannot be used with --mode global")
        getattr(spec, "global").SetInParent()  # `global` is a Python keyword
    else:
        spec.replicated.replicas = 1
    serviceflags.apply(ns, spec)
    resp = await client.control.CreateService(
        control_pb2.CreateServiceRequest(spec=spec), timeout=client.timeout
    )
    return f"{resp.service.id}\n"


def service_document(service: objects_pb2.Service) -> dict[str, Any]:
    """The service as JSON; a replicated spec always shows its replica count, even 0."""
    doc: dict[str, Any] = to_dict(service)
    specs = [doc.get("Spec"), doc.get("PreviousSpec")]
    specs += [revision.get("Spec") for revision in doc.get("History", ())]
    for spec in specs:
        if spec is not None and "Replicated" in spec:
            spec["Replicated"].setdefault("Replicas", 0)
    return doc


async def inspect(client: Client, ns: argparse.Namespace) -> str:
    """The service as JSON."""
    service = await resolve.resolve(client, resolve.SERVICE, ns.service)
    return render_json(service_document(service))


def mode_of(spec: specs_pb2.ServiceSpec) -> str:
    """`replicated` or `global`."""
    return "global" if spec.WhichOneof("mode") == "global" else "replicated"


async def ls(client: Client, ns: argparse.Namespace) -> str:
    """The services table: ID NAME MODE REPLICAS (running/desired) IMAGE."""
    services = await resolve.list_all(client, resolve.SERVICE)
    statuses = await client.control.ListServiceStatuses(
        control_pb2.ListServiceStatusesRequest(services=[s.id for s in services]),
        timeout=client.timeout,
    )
    by_id = {s.service_id: s for s in statuses.statuses}
    rows = []
    for s in sorted(services, key=lambda s: s.spec.annotations.name):
        status = by_id.get(s.id)
        running = status.running_tasks if status else 0
        if s.spec.WhichOneof("mode") == "global":
            desired = status.desired_tasks if status else 0
        else:
            desired = s.spec.replicated.replicas
        rows.append(
            {
                "ID": s.id,
                "Name": s.spec.annotations.name,
                "Mode": mode_of(s.spec),
                "Replicas": f"{running}/{desired}",
                "Image": s.spec.task.container.image,
            }
        )
    return render_list(LS_COLUMNS, rows, ns.format, ns.quiet)


async def _write(
    client: Client, service: objects_pb2.Service, spec: specs_pb2.ServiceSpec | None
) -> objects_pb2.Service:
    """UpdateService against the version `service` was read at (a rollback without spec)."""
    req = control_pb2.UpdateServiceRequest(
        service_id=service.id, service_version=service.meta.version
    )
    if spec is None:
        req.rollback = control_pb2.UpdateServiceRequest.ROLLBACK_PREVIOUS
    else:
        req.spec.CopyFrom(spec)
    resp = await client.control.UpdateService(req, timeout=client.timeout)
    return resp.service


async def update(client: Client, ns: argparse.Namespace) -> str:
    """Change a service by its flags (read-modify-write); prints its id."""
    service = await resolve.resolve(client, resolve.SERVICE, ns.service)
    spec = specs_pb2.ServiceSpec()
    spec.CopyFrom(service.spec)
    serviceflags.apply(ns, spec)
    if ns.force:
        spec.task.force_update += 1
    if ns.pause or ns.resume:
        if spec != service.spec or ns.rollback:
            raise errors.InvalidArgument("--pause and --resume cannot be combined with changes")
        action = control_pb2.UpdateServiceRequest.UpdateAction
        req = control_pb2.UpdateServiceRequest(
            service_id=service.id,
            service_version=service.meta.version,
            update_action=action.UPDATE_ACTION_PAUSE if ns.pause else action.UPDATE_ACTION_RESUME,
        )
        resp = await client.control.UpdateService(req, timeout=client.timeout)
        return f"{resp.service.id}\n"
    if ns.rollback:
        if spec != service.spec:
            raise errors.InvalidArgument("--rollback cannot be combined with other changes")
        updated = await _write(client, service, None)
    else:
        updated = await _write(client, service, spec)
    return f"{updated.id}\n"


async def rollback(client: Client, ns: argparse.Namespace) -> str:
    """Roll back to the previous spec, or to `--to REVISION`, per the rollback config."""
    service = await resolve.resolve(client, resolve.SERVICE, ns.service)
    req = control_pb2.UpdateServiceRequest(
        service_id=service.id,
        service_version=service.meta.version,
        rollback=control_pb2.UpdateServiceRequest.ROLLBACK_PREVIOUS,
        rollback_to_revision=ns.to,
    )
    resp = await client.control.UpdateService(req, timeout=client.timeout)
    return (
        f"{resp.service.spec.annotations.name} rolled back to revision {ns.to or 'previous'}"
        f" (now revision {resp.service.revision})\n"
    )


HISTORY_COLUMNS = (
    Column("REVISION", "Revision"),
    Column("CREATED", "Created"),
    Column("IMAGE", "Image"),
    Column("CHANGES", "Changes"),
)


async def history(client: Client, ns: argparse.Namespace) -> str:
    """The kept revisions, oldest first, each with what it changed from the one before."""
    service = await resolve.resolve(client, resolve.SERVICE, ns.service)
    rows = []
    previous: specs_pb2.ServiceSpec | None = None
    for rev in service.history:
        changes = ["created"] if previous is None else specdiff.diff(previous, rev.spec)
        current = "  (current)" if rev.revision == service.revision else ""
        rows.append(
            {
                "ID": str(rev.revision),
                "Revision": f"{rev.revision}{current}",
                "Created": rev.created_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
                "Image": rev.spec.task.container.image,
                "Changes": "; ".join(changes)
                if ns.format == "json"
                else specdiff.summarize(changes, 70),
            }
        )
        previous = rev.spec
    return render_list(HISTORY_COLUMNS, rows, ns.format, ns.quiet)


async def scale(client: Client, ns: argparse.Namespace) -> str:
    """Set the replicas of each SERVICE=N (read-modify-write per service)."""
    out = []
    services = await resolve.resolve_all(client, resolve.SERVICE, [ref for ref, _ in ns.scales])
    for service in services:
        if service.spec.WhichOneof("mode") == "global":
            raise errors.FailedPrecondition(
                f"service {service.spec.annotations.name} is global and cannot be scaled"
            )
    for service, (_, replicas) in zip(services, ns.scales, strict=True):
        spec = specs_pb2.ServiceSpec()
        spec.CopyFrom(service.spec)
        spec.replicated.replicas = replicas
        await _write(client, service, spec)
        out.append(f"{service.spec.annotations.name} scaled to {replicas}\n")
    return "".join(out)


async def rm(client: Client, ns: argparse.Namespace) -> str:
    """Remove services; prints each name as given."""
    out = []
    found = await resolve.resolve_all(client, resolve.SERVICE, ns.services)
    for ref, obj in zip(ns.services, found, strict=True):
        await client.control.RemoveService(
            control_pb2.RemoveServiceRequest(service_id=obj.id), timeout=client.timeout
        )
        out.append(f"{ref}\n")
    return "".join(out)


__all__ = [
    "LS_COLUMNS",
    "create",
    "history",
    "inspect",
    "ls",
    "mode_of",
    "register",
    "rm",
    "rollback",
    "scale",
    "service_document",
    "update",
]
