"""Turning what the user typed (a name, a full id or a unique id prefix) into one object.

swarmctl layer; the commands call `resolve` before any Get/Update/Remove, because the Control
API addresses objects by exact id only. Order, as in the docker CLI: an exact id wins, then an
exact name (case-insensitive, as the store compares names), then a unique id prefix. A prefix
shared by several objects is an error naming the candidates; nothing found is
`<kind> <ref> not found`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from swarmctl.client import Client
from swarmd import errors
from swarmd.api import control_pb2, objects_pb2

_SHOWN_CANDIDATES = 5


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_HasId)
Lister = Callable[[Client, control_pb2.ListFilters], Awaitable[Sequence[T]]]


@dataclass(frozen=True, slots=True)
class Kind(Generic[T]):
    """One kind of object: its noun for messages and how to list it with filters."""

    noun: str
    list: Lister[T]


async def resolve(client: Client, kind: Kind[T], ref: str) -> T:
    """The one object of `kind` that `ref` names.

    Raises:
        errors.NotFound: nothing has that id, name or id prefix.
        errors.InvalidArgument: an empty reference, or an id prefix matching several objects.
    """
    if not ref:
        raise errors.InvalidArgument(f"a {kind.noun} name or id is required")
    by_id = await kind.list(client, control_pb2.ListFilters(id_prefixes=[ref]))
    exact = [obj for obj in by_id if obj.id == ref]
    if exact:
        return exact[0]
    by_name = await kind.list(client, control_pb2.ListFilters(names=[ref]))
    if len(by_name) == 1:
        return by_name[0]
    if len(by_id) == 1:
        return by_id[0]
    if len(by_id) > 1:
        ids = ", ".join(obj.id for obj in by_id[:_SHOWN_CANDIDATES])
        more = ", ..." if len(by_id) > _SHOWN_CANDIDATES else ""
        raise errors.InvalidArgument(
            f"{kind.noun} id prefix {ref} is ambiguous: it matches {len(by_id)} "
            f"{kind.noun}s ({ids}{more}); give more of the id or the name"
        )
    raise errors.NotFound(kind.noun, ref)


async def resolve_all(client: Client, kind: Kind[T], refs: Sequence[str]) -> list[T]:
    """`resolve` for each of `refs`, all before the caller changes anything.

    A command given several objects (`secret rm a b c`) fails on a typo before removing any.
    """
    return [await resolve(client, kind, ref) for ref in refs]


async def _services(c: Client, f: control_pb2.ListFilters) -> Sequence[objects_pb2.Service]:
    resp = await c.control.ListServices(
        control_pb2.ListServicesRequest(filters=f), timeout=c.timeout
    )
    return resp.services


async def _tasks(c: Client, f: control_pb2.ListFilters) -> Sequence[objects_pb2.Task]:
    resp = await c.control.ListTasks(control_pb2.ListTasksRequest(filters=f), timeout=c.timeout)
    return resp.tasks


async def _nodes(c: Client, f: control_pb2.ListFilters) -> Sequence[objects_pb2.Node]:
    resp = await c.control.ListNodes(control_pb2.ListNodesRequest(filters=f), timeout=c.timeout)
    return resp.nodes


async def _clusters(c: Client, f: control_pb2.ListFilters) -> Sequence[objects_pb2.Cluster]:
    resp = await c.control.ListClusters(
        control_pb2.ListClustersRequest(filters=f), timeout=c.timeout
    )
    return resp.clusters


async def _secrets(c: Client, f: control_pb2.ListFilters) -> Sequence[objects_pb2.Secret]:
    resp = await c.control.ListSecrets(control_pb2.ListSecretsRequest(filters=f), timeout=c.timeout)
    return resp.secrets


async def _configs(c: Client, f: control_pb2.ListFilters) -> Sequence[objects_pb2.Config]:
    resp = await c.control.ListConfigs(control_pb2.ListConfigsRequest(filters=f), timeout=c.timeout)
    return resp.configs


SERVICE: Kind[objects_pb2.Service] = Kind("service", _services)
TASK: Kind[objects_pb2.Task] = Kind("task", _tasks)
NODE: Kind[objects_pb2.Node] = Kind("node", _nodes)
CLUSTER: Kind[objects_pb2.Cluster] = Kind("cluster", _clusters)
SECRET: Kind[objects_pb2.Secret] = Kind("secret", _secrets)
CONFIG: Kind[objects_pb2.Config] = Kind("config", _configs)


async def list_all(client: Client, kind: Kind[T]) -> Sequence[T]:
    """Every object of `kind`."""
    return await kind.list(client, control_pb2.ListFilters())


__all__ = [
    "CLUSTER",
    "CONFIG",
    "NODE",
    "SECRET",
    "SERVICE",
    "TASK",
    "Kind",
    "list_all",
    "resolve",
    "resolve_all",
]
