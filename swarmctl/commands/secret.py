"""`swarmctl secret create|ls|inspect|rm`.

swarmctl layer; registered by `swarmctl.cli`. Secret data is sent once, on create, and never
printed: the manager returns secrets without data, and `inspect` clears the field again before
rendering so that no server could make swarmctl print one. A secret used by a service cannot be
removed (the manager refuses and names the services).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from swarmctl import flags, resolve
from swarmctl.client import Client
from swarmctl.command import Parser, add_group, add_list_options, add_verb
from swarmctl.commands.payload import read_payload
from swarmctl.output import Column, ago, render_json, render_list
from swarmctl.protojson import to_dict
from swarmd.api import control_pb2, objects_pb2, specs_pb2

LS_COLUMNS = (
    Column("ID", "ID"),
    Column("NAME", "Name"),
    Column("CREATED", "Created"),
    Column("UPDATED", "Updated"),
)


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """Add `secret` and its verbs to the top-level subparsers."""
    verbs = add_group(sub, "secret", "manage secrets")
    p = add_verb(verbs, "create", create, "create a secret from stdin or a file")
    p.add_argument("name", help="secret name")
    p.add_argument("-f", "--file", help="read the value from FILE ('-' or none: stdin)")
    p.add_argument("--label", action="append", type=flags.parse_key_value, metavar="KEY=VALUE")
    p = add_verb(verbs, "ls", ls, "list secrets")
    add_list_options(p)
    p = add_verb(verbs, "inspect", inspect, "show a secret as JSON (never its data)")
    p.add_argument("secret", help="name, id or id prefix")
    p = add_verb(verbs, "rm", rm, "remove secrets")
    p.add_argument("secrets", nargs="+", metavar="SECRET", help="name, id or id prefix")


async def create(client: Client, ns: argparse.Namespace) -> str:
    """Create a secret; prints its id."""
    spec = specs_pb2.SecretSpec(data=read_payload("secret", ns.name, ns.file))
    spec.annotations.name = ns.name
    for key, value in ns.label or ():
        spec.annotations.labels[key] = value
    resp = await client.control.CreateSecret(
        control_pb2.CreateSecretRequest(spec=spec), timeout=client.timeout
    )
    return f"{resp.secret.id}\n"


def redacted(secret: objects_pb2.Secret) -> objects_pb2.Secret:
    """A copy without data."""
    out = objects_pb2.Secret()
    out.CopyFrom(secret)
    out.spec.ClearField("data")
    return out


async def ls(client: Client, ns: argparse.Namespace) -> str:
    """The secrets table, ordered by name."""
    now = datetime.now(UTC)
    secrets = await resolve.list_all(client, resolve.SECRET)
    rows = [
        {
            "ID": s.id,
            "Name": s.spec.annotations.name,
            "Created": ago(s.meta.created_at, now),
            "Updated": ago(s.meta.updated_at, now),
        }
        for s in sorted(secrets, key=lambda s: s.spec.annotations.name)
    ]
    return render_list(LS_COLUMNS, rows, ns.format, ns.quiet)


async def inspect(client: Client, ns: argparse.Namespace) -> str:
    """The secret as JSON, without data."""
    secret = await resolve.resolve(client, resolve.SECRET, ns.secret)
    return render_json(to_dict(redacted(secret)))


async def rm(client: Client, ns: argparse.Namespace) -> str:
    """Remove secrets no service uses; prints each as given."""
    out = []
    found = await resolve.resolve_all(client, resolve.SECRET, ns.secrets)
    for ref, obj in zip(ns.secrets, found, strict=True):
        await client.control.RemoveSecret(
            control_pb2.RemoveSecretRequest(secret_id=obj.id), timeout=client.timeout
        )
        out.append(f"{ref}\n")
    return "".join(out)


__all__ = ["LS_COLUMNS", "create", "inspect", "ls", "redacted", "register", "rm"]
