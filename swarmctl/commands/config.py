"""`swarmctl config create|ls|inspect|rm`.

swarmctl layer; registered by `swarmctl.cli`. Configs are not secret: `inspect` shows the data
(as text when it is UTF-8, else base64). A config used by a service cannot be removed (the
manager refuses and names the services).
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
from swarmd.api import control_pb2, specs_pb2

LS_COLUMNS = (
    Column("ID", "ID"),
    Column("NAME", "Name"),
    Column("CREATED", "Created"),
    Column("UPDATED", "Updated"),
)


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """Add `config` and its verbs to the top-level subparsers."""
    verbs = add_group(sub, "config", "manage configs")
    p = add_verb(verbs, "create", create, "create a config from stdin or a file")
    p.add_argument("name", help="config name")
    p.add_argument("-f", "--file", help="read the value from FILE ('-' or none: stdin)")
    p.add_argument("--label", action="append", type=flags.parse_key_value, metavar="KEY=VALUE")
    p = add_verb(verbs, "ls", ls, "list configs")
    add_list_options(p)
    p = add_verb(verbs, "inspect", inspect, "show a config as JSON")
    p.add_argument("config", help="name, id or id prefix")
    p = add_verb(verbs, "rm", rm, "remove configs")
    p.add_argument("configs", nargs="+", metavar="CONFIG", help="name, id or id prefix")


async def create(client: Client, ns: argparse.Namespace) -> str:
    """Create a config; prints its id."""
    spec = specs_pb2.ConfigSpec(data=read_payload("config", ns.name, ns.file))
    spec.annotations.name = ns.name
    for key, value in ns.label or ():
        spec.annotations.labels[key] = value
    resp = await client.control.CreateConfig(
        control_pb2.CreateConfigRequest(spec=spec), timeout=client.timeout
    )
    return f"{resp.config.id}\n"


async def ls(client: Client, ns: argparse.Namespace) -> str:
    """The configs table, ordered by name."""
    now = datetime.now(UTC)
    configs = await resolve.list_all(client, resolve.CONFIG)
    rows = [
        {
            "ID": s.id,
            "Name": s.spec.annotations.name,
            "Created": ago(s.meta.created_at, now),
            "Updated": ago(s.meta.updated_at, now),
        }
        for s in sorted(configs, key=lambda s: s.spec.annotations.name)
    ]
    return render_list(LS_COLUMNS, rows, ns.format, ns.quiet)


async def inspect(client: Client, ns: argparse.Namespace) -> str:
    """The config as JSON."""
    config = await resolve.resolve(client, resolve.CONFIG, ns.config)
    return render_json(to_dict(config))


async def rm(client: Client, ns: argparse.Namespace) -> str:
    """Remove configs no service uses; prints each as given."""
    out = []
    found = await resolve.resolve_all(client, resolve.CONFIG, ns.configs)
    for ref, obj in zip(ns.configs, found, strict=True):
        await client.control.RemoveConfig(
            control_pb2.RemoveConfigRequest(config_id=obj.id), timeout=client.timeout
        )
        out.append(f"{ref}\n")
    return "".join(out)


__all__ = ["LS_COLUMNS", "create", "inspect", "ls", "register", "rm"]
