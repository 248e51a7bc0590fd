"""Transactions of the store: ReadTx/Tx with their per-kind table facades, and Batch.

Manager layer. Callers get these only inside `MemoryStore.view()`, `update()` and `batch()`
callbacks (see docs/design/store-api.md); `MemoryStore` builds them and commits what a Tx recorded.

Every object handed out is a copy the caller may mutate; objects passed in are copied before being
stored. A Tx writes into copy-on-write `Layer`s (table.py), created on first use of each table, and
records one `Change` per create/update/delete in order: these become the proposed StoreActions.
The commit version is not known until the proposer returns, so objects written in a Tx carry the
predicted version (store version + 1) and copies handed out of them are remembered, to be
re-stamped in the rare case the real version differs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from google.protobuf import timestamp_pb2

from swarmd import errors
from swarmd.api import objects_pb2
from swarmd.manager.store.kinds import (
    BY_CONFIG,
    BY_DESIRED_STATE,
    BY_NAME,
    BY_NODE,
    BY_SECRET,
    BY_SERVICE,
    BY_SLOT,
    CLUSTERS,
    CONFIGS,
    NAME,
    NETWORKS,
    NODES,
    SECRETS,
    SERVICES,
    TASKS,
    AnyKind,
    Kind,
    ObjT,
    StoreObject,
)
from swarmd.manager.store.table import Layer, Reader
from swarmd.manager.store.watch import EventKind

R = TypeVar("R")
W = TypeVar("W")

# Table readers by kind name. Heterogeneous (one message type per entry), hence Any.
Readers = Mapping[str, Reader[Any]]

# A copy handed to a caller of an object written but not committed yet, and that stored
# instance: the copy takes the instance's version once it committed.
Handed = tuple[StoreObject, StoreObject]


@dataclass(slots=True)
class Change:
    """One recorded write: the stored instance after CREATE/UPDATE, or the removed one."""

    kind: AnyKind
    action: EventKind
    obj: StoreObject


class ReadTable(Generic[ObjT]):
    """Read access to one kind's objects (`tx.services`, `tx.nodes`, ...). Returns copies."""

    __slots__ = ("_kind", "_reader", "_tx")
    _kind: Kind[ObjT]
    _reader: Reader[ObjT]

    def __init__(self, kind: Kind[ObjT], reader: Reader[ObjT], tx: Tx | None = None) -> None:
        self._kind = kind
        self._reader = reader
        self._tx = tx

    def _out(self, obj: ObjT) -> ObjT:
        out = self._kind.copy(obj)
        tx = self._tx
        # Committed objects are at most the store version; only uncommitted writes (this tx's,
        # its batch's, or those waiting for their commit) carry a predicted version, which the
        # stored instance corrects once it committed.
        if tx is not None and obj.meta.version.index > tx.base_version:
            tx.handed.append((out, obj))
        return out

    def _many(self, ids: Iterable[str], *, ordered: bool = False) -> list[ObjT]:
        get = self._reader.get
        found = [get(i) for i in (ids if ordered else sorted(ids))]
        return [self._out(obj) for obj in found if obj is not None]

    def get(self, obj_id: str) -> ObjT | None:
        """The object with this id, or None."""
        obj = self._reader.get(obj_id)
        return None if obj is None else self._out(obj)

    def get_by_name(self, name: str) -> ObjT | None:
        """The object with this name (case-insensitive); for nodes and tasks, whose names are
        not unique, the match with the lowest id. None when there is none or name is empty."""
        if not name:
            return None
        ids = self._reader.ids(NAME, name.lower())
        if not ids:
            return None
        return self.get(min(ids))

    def find_by_id_prefix(self, prefix: str) -> list[ObjT]:
        """Objects whose id starts with prefix, sorted by id."""
        return self._many(self._reader.ids_with_prefix(prefix), ordered=True)

    def find_by_name_prefix(self, prefix: str) -> list[ObjT]:
        """Objects whose name starts with prefix (case-insensitive), sorted by id."""
        return self._many(self._reader.ids_with_name_prefix(prefix.lower()))

    def list(self) -> list[ObjT]:
        """Every object, sorted by id."""
        return self._many(self._reader.sorted_ids(), ordered=True)

    def count(self) -> int:
        """Number of objects."""
        return self._reader.count()


class TaskQueries(ReadTable[objects_pb2.Task]):
    """Task lookups by the task indexes; results sorted by id."""

    __slots__ = ()

    def find_by_service(self, service_id: str) -> list[objects_pb2.Task]:
        """Tasks of the service."""
        return self._many(self._reader.ids(BY_SERVICE, service_id))

    def find_by_node(self, node_id: str) -> list[objects_pb2.Task]:
        """Tasks assigned to the node ("" finds the unassigned ones)."""
        return self._many(self._reader.ids(BY_NODE, node_id))

    def find_by_slot(self, service_id: str, slot: int) -> list[objects_pb2.Task]:
        """Tasks of the service's slot (replicated services; global ones use slot 0)."""
        return self._many(self._reader.ids(BY_SLOT, (service_id, slot)))

    def find_by_desired_state(self, state: int) -> list[objects_pb2.Task]:
        """Tasks whose desired state is state (a types_pb2.TaskState value)."""
        return self._many(self._reader.ids(BY_DESIRED_STATE, int(state)))


class ServiceQueries(ReadTable[objects_pb2.Service]):
    """Service lookups by referenced secret/config; results sorted by id."""

    __slots__ = ()

    def find_services_by_secret(self, secret_id: str) -> list[objects_pb2.Service]:
        """Services whose container spec references the secret."""
        return self._many(self._reader.ids(BY_SECRET, secret_id))

    def find_services_by_config(self, config_id: str) -> list[objects_pb2.Service]:
        """Services whose container spec references the config."""
        return self._many(self._reader.ids(BY_CONFIG, config_id))


class WriteTable(ReadTable[ObjT]):
    """Read and write access to one kind's objects inside a Tx."""

    __slots__ = ("_layer",)
    _tx: Tx
    _layer: Layer[ObjT]

    def __init__(self, kind: Kind[ObjT], layer: Layer[ObjT], tx: Tx) -> None:
        # Not super().__init__: mypy cannot bind a constrained TypeVar through super() here.
        self._kind = kind
        self._reader = layer
        self._tx = tx
        self._layer = layer

    def create(self, obj: ObjT) -> ObjT:
        """Store a copy of a new object; returns the stored state (with meta set).

        Raises:
            errors.InvalidArgument: obj.id is empty.
            errors.AlreadyExists: an object of the kind has this id.
            errors.NameConflict: another object of the kind has this name (case-insensitive;
                nodes and tasks are exempt).
        """
        kind = self._kind
        if not obj.id:
            raise errors.InvalidArgument(f"{kind.name} id must not be empty")
        if self._layer.get(obj.id) is not None:
            raise errors.AlreadyExists(f"{kind.name} {obj.id} already exists")
        self._check_name(obj)
        stored = kind.copy(obj)
        tx = self._tx
        meta = stored.meta
        meta.version.index = tx.version
        meta.created_at.CopyFrom(tx.now)
        meta.updated_at.CopyFrom(tx.now)
        self._layer.put(stored)
        tx.changes.append(Change(kind, EventKind.CREATE, stored))
        return self._out(stored)

    def update(self, obj: ObjT) -> ObjT:
        """Replace an object with a copy of obj; returns the stored state.

        obj.meta.version must be the stored object's (optimistic concurrency); created_at is
        kept from the stored object, updated_at set.

        Raises:
            errors.NotFound: no object of the kind has obj.id.
            errors.SequenceConflict: obj was read at another version.
            errors.NameConflict: another object of the kind has the new name.
        """
        kind = self._kind
        cur = self._layer.get(obj.id)
        if cur is None:
            raise errors.NotFound(kind.name, obj.id)
        if cur.meta.version.index != obj.meta.version.index:
            raise errors.SequenceConflict(
                kind.name, obj.id, obj.meta.version.index, cur.meta.version.index
            )
        self._check_name(obj)
        stored = kind.copy(obj)
        tx = self._tx
        meta = stored.meta
        meta.version.index = tx.version
        meta.created_at.CopyFrom(cur.meta.created_at)
        meta.updated_at.CopyFrom(tx.now)
        self._layer.put(stored)
        tx.changes.append(Change(kind, EventKind.UPDATE, stored))
        return self._out(stored)

    def delete(self, obj_id: str) -> None:
        """Remove the object with this id.

        Raises:
            errors.NotFound: no object of the kind has this id.
        """
        cur = self._layer.get(obj_id)
        if cur is None:
            raise errors.NotFound(self._kind.name, obj_id)
        self._layer.remove(obj_id)
        self._tx.changes.append(Change(self._kind, EventKind.REMOVE, cur))

    def _check_name(self, obj: ObjT) -> None:
        kind = self._kind
        if not kind.unique_names:
            return
        name = kind.name_of(obj)
        if not name:
            return
        for other in self._layer.ids(NAME, name.lower()):
            if other != obj.id:
                raise errors.NameConflict(kind.name, name)


class TaskTable(WriteTable[objects_pb2.Task], TaskQueries):
    """`tx.tasks` in a write transaction."""

    __slots__ = ()


class ServiceTable(WriteTable[objects_pb2.Service], ServiceQueries):
    """`tx.services` in a write transaction."""

    __slots__ = ()


class ReadTx:
    """A read transaction: committed state, one table facade per kind.

    Attributes (properties): nodes, services, tasks, clusters, secrets, configs, networks.
    """

    __slots__ = ("_readers", "_tables")

    def __init__(self, readers: Readers) -> None:
        self._readers = readers
        self._tables: dict[str, Any] = {}

    def _read(self, kind: Kind[ObjT], factory: Callable[[Kind[ObjT], Reader[ObjT]], W]) -> W:
        table = self._tables.get(kind.name)
        if table is None:
            table = self._tables[kind.name] = factory(kind, self._readers[kind.name])
        return cast(W, table)

    @property
    def nodes(self) -> ReadTable[objects_pb2.Node]:
        """Nodes."""
        return self._read(NODES, ReadTable)

    @property
    def services(self) -> ServiceQueries:
        """Services."""
        return self._read(SERVICES, ServiceQueries)

    @property
    def tasks(self) -> TaskQueries:
        """Tasks."""
        return self._read(TASKS, TaskQueries)

    @property
    def clusters(self) -> ReadTable[objects_pb2.Cluster]:
        """Clusters."""
        return self._read(CLUSTERS, ReadTable)

    @property
    def secrets(self) -> ReadTable[objects_pb2.Secret]:
        """Secrets."""
        return self._read(SECRETS, ReadTable)

    @property
    def configs(self) -> ReadTable[objects_pb2.Config]:
        """Configs."""
        return self._read(CONFIGS, ReadTable)

    @property
    def networks(self) -> ReadTable[objects_pb2.Network]:
        """Networks."""
        return self._read(NETWORKS, ReadTable)


class Tx(ReadTx):
    """A write transaction: what ReadTx offers, plus create/update/delete on each table.

    Attributes:
        base_version: the committed store version it reads.
        version: the version its writes are stamped with (predicted: store version + 1).
        now: the timestamp its writes carry (taken from the store's Clock when it began).
        changes: the writes so far, in order.
        handed: copies given out of uncommitted objects, with those objects (re-stamped after
            commit).
    """

    __slots__ = ("base_version", "changes", "handed", "now", "version")

    def __init__(
        self,
        readers: Readers,
        version: int,
        now: timestamp_pb2.Timestamp,
        base_version: int | None = None,
    ) -> None:
        super().__init__(readers)
        self.base_version = version - 1 if base_version is None else base_version
        self.version = version
        self.now = now
        self.changes: list[Change] = []
        self.handed: list[Handed] = []

    def _write(self, kind: Kind[ObjT], factory: Callable[[Kind[ObjT], Layer[ObjT], Tx], W]) -> W:
        table = self._tables.get(kind.name)
        if table is None:
            layer = Layer(kind, self._readers[kind.name])
            table = self._tables[kind.name] = factory(kind, layer, self)
        return cast(W, table)

    @property
    def nodes(self) -> WriteTable[objects_pb2.Node]:
        """Nodes."""
        return self._write(NODES, WriteTable)

    @property
    def services(self) -> ServiceTable:
        """Services."""
        return self._write(SERVICES, ServiceTable)

    @property
    def tasks(self) -> TaskTable:
        """Tasks."""
        return self._write(TASKS, TaskTable)

    @property
    def clusters(self) -> WriteTable[objects_pb2.Cluster]:
        """Clusters."""
        return self._write(CLUSTERS, WriteTable)

    @property
    def secrets(self) -> WriteTable[objects_pb2.Secret]:
        """Secrets."""
        return self._write(SECRETS, WriteTable)

    @property
    def configs(self) -> WriteTable[objects_pb2.Config]:
        """Configs."""
        return self._write(CONFIGS, WriteTable)

    @property
    def networks(self) -> WriteTable[objects_pb2.Network]:
        """Networks."""
        return self._write(NETWORKS, WriteTable)

    def merge_into(self, parents: Mapping[str, Layer[Any]]) -> None:
        """Push this tx's writes into the layers below (a batch's, or the store's pending)."""
        for layer in self.layers().values():
            layer.merge_into(parents[layer.kind.name])

    def layers(self) -> dict[str, Layer[Any]]:
        """The layers this tx wrote to, by kind name."""
        return {
            name: table._layer
            for name, table in self._tables.items()
            if isinstance(table, WriteTable)
        }


@dataclass(slots=True)
class Chunk:
    """One transaction of a batch: its predicted version and writes."""

    version: int
    changes: list[Change] = field(default_factory=list)


class Batch:
    """Given to `store.batch()` callbacks: `b.update(fn)` runs fn as one atomic unit of the batch.

    Units are packed into transactions (chunks) of about `limit` actions: a chunk is closed once
    it holds `limit` or more actions, and a unit is never split. A unit whose callback raises
    leaves no trace; the exception propagates to the caller of `b.update`. Each unit sees the
    writes of the units before it. Nothing is proposed before the batch callback returns.
    """

    def __init__(
        self,
        readers: Readers,
        first_version: int,
        now: timestamp_pb2.Timestamp,
        limit: int,
        base_version: int | None = None,
    ) -> None:
        self.layers: dict[str, Layer[Any]] = {
            name: Layer(BY_NAME[name], reader) for name, reader in readers.items()
        }
        self._now = now
        self._limit = limit
        self._base_version = first_version - 1 if base_version is None else base_version
        self.chunks: list[Chunk] = [Chunk(first_version)]
        self.handed: list[Handed] = []

    def update(self, fn: Callable[[Tx], R]) -> R:
        """Run fn against the batch's state so far; its writes join the current chunk.

        Raises:
            TypeError: fn is a coroutine function (callbacks must be synchronous).
        """
        reject_async(fn)
        chunk = self.chunks[-1]
        if len(chunk.changes) >= self._limit:
            chunk = Chunk(chunk.version + 1)
            self.chunks.append(chunk)
        tx = Tx(self.layers, chunk.version, self._now, self._base_version)
        result = fn(tx)
        reject_awaitable(result)
        tx.merge_into(self.layers)
        chunk.changes.extend(tx.changes)
        self.handed.extend(tx.handed)
        return result


def reject_async(fn: Callable[..., object]) -> None:
    """Raise TypeError for an async callback: transactions must run without yielding."""
    if inspect.iscoroutinefunction(fn):
        raise TypeError("store transaction callbacks must be synchronous, not async functions")


def reject_awaitable(result: object) -> None:
    """Raise TypeError when a callback returned an awaitable (a lambda around an async call)."""
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # never started, so nothing ran; silence "never awaited"
        raise TypeError("store transaction callbacks must be synchronous, not return awaitables")


__all__ = [
    "Batch",
    "Change",
    "Chunk",
    "ReadTable",
    "ReadTx",
    "Readers",
    "ServiceQueries",
    "ServiceTable",
    "TaskQueries",
    "TaskTable",
    "Tx",
    "WriteTable",
    "reject_async",
    "reject_awaitable",
]
