"""Whole-store snapshots: the committed tables to and from `store_pb2.StoreSnapshot`.

Manager layer, called by `MemoryStore` (`snapshot()`, `snapshot_refs()`, `restore()`,
`build_tables()`); the raft node persists the result (wrapped in `store_pb2.Snapshot`) and
restores it on recovery or when a leader sends one. Objects are written in id order per kind,
so equal stores give byte-identical snapshots.

A manager with 100,000 tasks must not stop its event loop for the seconds a snapshot takes, so
the expensive halves run on a worker thread: `refs` (on the loop, a list of references per
kind) is all a snapshot needs of the live tables, because stored instances are never changed
once in a table; `encode` then serializes those instances one by one (each call short, so the
loop keeps getting the interpreter) into the wire form of a StoreSnapshot: a repeated field is
the concatenation of its length-prefixed elements. The other way, `build` parses nothing
itself but bulk-loads new tables (one sort per list instead of an insert per object), which
the store then adopts on the loop in one step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from swarmd.api import store_pb2
from swarmd.manager.store.kinds import KINDS
from swarmd.manager.store.table import Table

# Stored instances per kind name, in id order: what `encode` serializes.
Refs = dict[str, list[Any]]
# Tables made by `build`, not yet adopted by a store.
BuiltTables = Mapping[str, Table[Any]]

_FIELD_NUMBERS = {
    kind.name: store_pb2.StoreSnapshot.DESCRIPTOR.fields_by_name[kind.table].number
    for kind in KINDS
}


def take(tables: Mapping[str, Table[Any]]) -> store_pb2.StoreSnapshot:
    """A snapshot of every table (copies: `extend` copies each message)."""
    snap = store_pb2.StoreSnapshot()
    for kind in KINDS:
        getattr(snap, kind.table).extend(tables[kind.name].values())
    return snap


def refs(tables: Mapping[str, Table[Any]]) -> Refs:
    """The stored instances of every table, in id order (cheap: no copies)."""
    return {kind.name: list(tables[kind.name].values()) for kind in KINDS}


def encode(taken: Refs) -> bytes:
    """The serialized StoreSnapshot of `refs` output; safe to run on a worker thread."""
    out = bytearray()
    for kind in KINDS:
        number = _FIELD_NUMBERS[kind.name]
        for obj in taken[kind.name]:
            out += embedded(number, obj.SerializeToString())
    return bytes(out)


def build(snap: store_pb2.StoreSnapshot) -> BuiltTables:
    """New tables holding copies of the snapshot's objects; safe to run on a worker thread."""
    return {
        kind.name: Table.bulk(kind, [kind.copy(obj) for obj in getattr(snap, kind.table)])
        for kind in KINDS
    }


def adopt(built: BuiltTables, tables: Mapping[str, Table[Any]]) -> int:
    """Give `tables` the contents of `built` (from `build`); returns the number of objects."""
    total = 0
    for name, table in tables.items():
        table.adopt(built[name])
        total += table.count()
    return total


def embedded(field_number: int, data: bytes) -> bytes:
    """The wire form of a message field holding the serialized message `data`.

    Appended to a serialized message, it sets that field: how the raft node wraps `encode`'s
    output in a `store_pb2.Snapshot` without parsing it again.
    """
    return _varint(field_number << 3 | 2) + _varint(len(data)) + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


__all__ = ["BuiltTables", "Refs", "adopt", "build", "embedded", "encode", "refs", "take"]
