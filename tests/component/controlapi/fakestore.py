# mypy: ignore-errors
"""A stand-in for swarmd.manager.store following docs/design/store-api.md, used only while the real
store is not importable. `install()` registers it as `swarmd.manager.store`.

Copy-on-write transactions: a write callback works on shallow copies of the tables and commits
by swapping them in, so a callback that raises leaves the store unchanged.
"""

from __future__ import annotations

import inspect
import sys
import time
import types
from collections.abc import Callable
from typing import Any

from google.protobuf import timestamp_pb2

from swarmd import errors
from swarmd.api import objects_pb2

_KINDS = {
    "nodes": ("node", objects_pb2.Node),
    "services": ("service", objects_pb2.Service),
    "tasks": ("task", objects_pb2.Task),
    "clusters": ("cluster", objects_pb2.Cluster),
    "secrets": ("secret", objects_pb2.Secret),
    "configs": ("config", objects_pb2.Config),
    "networks": ("network", objects_pb2.Network),
}


def _copy(obj: Any) -> Any:
    out = type(obj)()
    out.CopyFrom(obj)
    return out


def _name(kind: str, obj: Any) -> str:
    if kind == "task":
        return ""
    if kind == "node":
        return obj.spec.annotations.name or obj.description.hostname
    return obj.spec.annotations.name


class _Table:
    def __init__(self, kind: str, data: dict[str, Any], tx: Any = None) -> None:
        self._kind = kind
        self._data = data
        self._tx = tx

    def get(self, obj_id: str) -> Any:
        obj = self._data.get(obj_id)
        return None if obj is None else _copy(obj)

    def get_by_name(self, name: str) -> Any:
        for obj in self._data.values():
            if self._kind != "task" and _name(self._kind, obj).lower() == name.lower():
                return _copy(obj)
        return None

    def _where(self, pred: Callable[[Any], bool]) -> list[Any]:
        return [_copy(self._data[k]) for k in sorted(self._data) if pred(self._data[k])]

    def find_by_id_prefix(self, prefix: str) -> list[Any]:
        return self._where(lambda o: o.id.startswith(prefix))

    def find_by_name_prefix(self, prefix: str) -> list[Any]:
        return self._where(lambda o: _name(self._kind, o).lower().startswith(prefix.lower()))

    def list(self) -> list[Any]:
        return self._where(lambda o: True)

    def count(self) -> int:
        return len(self._data)

    def find_by_service(self, service_id: str) -> list[Any]:
        return self._where(lambda t: t.service_id == service_id)

    def find_by_node(self, node_id: str) -> list[Any]:
        return self._where(lambda t: t.node_id == node_id)

    def find_by_slot(self, service_id: str, slot: int) -> list[Any]:
        return self._where(lambda t: t.service_id == service_id and t.slot == slot)

    def find_by_desired_state(self, state: int) -> list[Any]:
        return self._where(lambda t: t.desired_state == state)

    def find_services_by_secret(self, secret_id: str) -> list[Any]:
        return self._where(
            lambda s: any(r.secret_id == secret_id for r in s.spec.task.container.secrets)
        )

    def find_services_by_config(self, config_id: str) -> list[Any]:
        return self._where(
            lambda s: any(r.config_id == config_id for r in s.spec.task.container.configs)
        )

    def _check_name(self, obj: Any) -> None:
        name = _name(self._kind, obj)
        if not name:
            return
        for other in self._data.values():
            if other.id != obj.id and _name(self._kind, other).lower() == name.lower():
                raise errors.NameConflict(self._kind, name)

    def create(self, obj: Any) -> Any:
        if not obj.id or obj.id in self._data:
            raise errors.AlreadyExists(f"{self._kind} {obj.id} already exists")
        self._check_name(obj)
        stored = _copy(obj)
        stored.meta.version.index = self._tx.version
        stored.meta.created_at.CopyFrom(self._tx.now)
        stored.meta.updated_at.CopyFrom(self._tx.now)
        self._data[obj.id] = stored
        self._tx.changes += 1
        return _copy(stored)

    def update(self, obj: Any) -> Any:
        cur = self._data.get(obj.id)
        if cur is None:
            raise errors.NotFound(self._kind, obj.id)
        if cur.meta.version.index != obj.meta.version.index:
            raise errors.SequenceConflict(
                self._kind, obj.id, obj.meta.version.index, cur.meta.version.index
            )
        self._check_name(obj)
        stored = _copy(obj)
        stored.meta.version.index = self._tx.version
        stored.meta.updated_at.CopyFrom(self._tx.now)
        self._data[obj.id] = stored
        self._tx.changes += 1
        return _copy(stored)

    def delete(self, obj_id: str) -> None:
        if obj_id not in self._data:
            raise errors.NotFound(self._kind, obj_id)
        del self._data[obj_id]
        self._tx.changes += 1


class _Tx:
    def __init__(self, tables: dict[str, dict[str, Any]], version: int, write: bool) -> None:
        self.version = version
        self.changes = 0
        self.now = timestamp_pb2.Timestamp()
        self.now.FromNanoseconds(time.time_ns())
        for attr, (kind, _) in _KINDS.items():
            setattr(self, attr, _Table(kind, tables[attr], self if write else None))


class MemoryStore:
    def __init__(self, proposer: Any = None) -> None:
        self._tables: dict[str, dict[str, Any]] = {k: {} for k in _KINDS}
        self.version = 0

    def view(self, fn: Callable[[Any], Any]) -> Any:
        return fn(_Tx(self._tables, self.version, write=False))

    async def update(self, fn: Callable[[Any], Any]) -> Any:
        if inspect.iscoroutinefunction(fn):
            raise TypeError("store.update callbacks must be synchronous")
        work = {k: dict(v) for k, v in self._tables.items()}
        tx = _Tx(work, self.version + 1, write=True)
        result = fn(tx)
        if tx.changes > 200:
            raise AssertionError(f"transaction with {tx.changes} changes (limit 200)")
        if tx.changes:
            self._tables = work
            self.version += 1
        return result


ReadTx = Any
Tx = Any


def install() -> None:
    """Register this module as swarmd.manager.store unless the real one is importable."""
    try:
        from swarmd.manager.store import MemoryStore as _Real  # noqa: F401
    except ImportError:
        module = types.ModuleType("swarmd.manager.store")
        module.MemoryStore = MemoryStore  # type: ignore[attr-defined]
        module.ReadTx = ReadTx  # type: ignore[attr-defined]
        module.Tx = Tx  # type: ignore[attr-defined]
        sys.modules["swarmd.manager.store"] = module
