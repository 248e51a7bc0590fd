"""ListFilters evaluation shared by the List* handlers.

Manager layer, pure over a read transaction. Fields of a ListFilters narrow the result (AND),
values within a field widen it (OR). Names and name prefixes compare case-insensitively, as the
store's name index does; id prefixes and labels compare exactly. The narrowest index the filter
allows picks the candidates, so a List by name does not copy the whole table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, TypeVar

from swarmd.api import control_pb2, objects_pb2


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_HasId)


class NamedTable(Protocol[T]):
    """The part of a store table that List handlers use."""

    def get_by_name(self, name: str) -> T | None: ...

    def find_by_id_prefix(self, prefix: str) -> list[T]: ...

    def find_by_name_prefix(self, prefix: str) -> list[T]: ...

    def list(self) -> list[T]: ...


def matches(f: control_pb2.ListFilters, obj_id: str, name: str, labels: Mapping[str, str]) -> bool:
    """Whether one object passes every set field of `f`."""
    if f.names and name.lower() not in {n.lower() for n in f.names}:
        return False
    if f.name_prefixes and not any(name.lower().startswith(p.lower()) for p in f.name_prefixes):
        return False
    if f.id_prefixes and not any(obj_id.startswith(p) for p in f.id_prefixes):
        return False
    # swarmkit filterMatchLabels: the key must be present; an empty value matches any value.
    return all(k in labels and (not v or labels[k] == v) for k, v in f.labels.items())


def _unique(objs: Iterable[T]) -> list[T]:
    by_id = {obj.id: obj for obj in objs}
    return [by_id[k] for k in sorted(by_id)]


def candidates(table: NamedTable[T], f: control_pb2.ListFilters) -> list[T]:
    """Objects that may match `f`, sorted by id, fetched through the narrowest index."""
    if f.names:
        return _unique(obj for n in f.names if (obj := table.get_by_name(n)) is not None)
    if f.id_prefixes:
        return _unique(obj for p in f.id_prefixes for obj in table.find_by_id_prefix(p))
    if f.name_prefixes:
        return _unique(obj for p in f.name_prefixes for obj in table.find_by_name_prefix(p))
    return table.list()


def select(
    table: NamedTable[T],
    f: control_pb2.ListFilters,
    name_of: Callable[[T], str],
    labels_of: Callable[[T], Mapping[str, str]],
) -> list[T]:
    """Objects of `table` passing `f`, sorted by id."""
    return [obj for obj in candidates(table, f) if matches(f, obj.id, name_of(obj), labels_of(obj))]


def node_name(node: objects_pb2.Node) -> str:
    """A node's name: its spec name, else its hostname (as the store's name index)."""
    return node.spec.annotations.name or node.description.hostname


def task_name(task: objects_pb2.Task) -> str:
    """swarmkit naming.Task: `<service>.<slot>.<id>`, `<service>.<node>.<id>` for global tasks."""
    if task.annotations.name:
        return task.annotations.name
    where = str(task.slot) if task.slot else task.node_id
    return f"{task.service_annotations.name}.{where}.{task.id}"


__all__ = ["NamedTable", "candidates", "matches", "node_name", "select", "task_name"]
