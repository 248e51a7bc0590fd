"""Whole-store snapshots: the committed tables to and from `store_pb2.StoreSnapshot`.

Manager layer, called by `MemoryStore.snapshot()` / `restore()`; the raft node persists the result
(wrapped in `store_pb2.Snapshot`) and restores it on recovery or when a leader sends one.
Objects are written in id order per kind, so equal stores give byte-identical snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from swarmd.api import store_pb2
from swarmd.manager.store.kinds import KINDS
from swarmd.manager.store.table import Table


def take(tables: Mapping[str, Table[Any]]) -> store_pb2.StoreSnapshot:
    """A snapshot of every table (copies: `extend` copies each message)."""
    snap = store_pb2.StoreSnapshot()
    for kind in KINDS:
        getattr(snap, kind.table).extend(tables[kind.name].values())
    return snap


def load(snap: store_pb2.StoreSnapshot, tables: Mapping[str, Table[Any]]) -> int:
    """Replace the tables' contents with copies of the snapshot's objects; returns their number."""
    total = 0
    for kind in KINDS:
        table = tables[kind.name]
        table.clear()
        for obj in getattr(snap, kind.table):
            table.put(kind.copy(obj))
            total += 1
    return total


__all__ = ["load", "take"]
