"""Raw object tables of the store: committed `Table`s and the copy-on-write `Layer`s over them.

Manager layer, internal to `swarmd.manager.store`: the transaction facades in `tx.py` read through
the `Reader` protocol and `MemoryStore` applies commits to `Table`s. Objects here are the stored
instances; nothing in this module copies, and nothing outside the store package may see them.

A write transaction never copies a table. It writes into a `Layer`: a small `Table` holding only
the objects it created or changed, plus the set of ids it touched, read through to the layer (or
table) below for everything else. Queries combine the two: base results minus touched ids, plus
overlay results. Batches stack one layer per sub-transaction on the batch's layer.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Generic, Protocol

from swarmd.manager.store.kinds import NAME, KeyFn, Kind, ObjT, ObjT_co
from swarmd.manager.store.sortedlist import LazySorted

_EMPTY: frozenset[str] = frozenset()


class Reader(Protocol[ObjT_co]):
    """Read access to one kind's objects, committed (`Table`) or in a transaction (`Layer`).

    Returned collections belong to the reader: callers must not mutate them, nor keep them across
    a change. Id lists are sorted only where the method says so.
    """

    def get(self, obj_id: str) -> ObjT_co | None: ...

    def ids(self, index: str, key: Hashable) -> Collection[str]: ...

    def sorted_ids(self) -> Sequence[str]: ...

    def ids_with_prefix(self, prefix: str) -> list[str]: ...

    def ids_with_name_prefix(self, prefix: str) -> list[str]: ...

    def count(self) -> int: ...


class Table(Generic[ObjT]):
    """The objects of one kind with their secondary indexes.

    Kept: id -> object, the sorted ids (for `list()` and id prefixes) and the sorted
    (lower name, id) pairs (for name prefixes), both `LazySorted` so a write does not move the
    whole list, and per index a key -> ids map. Stored objects are never mutated in place
    except for the version stamp, which no index depends on.
    """

    kind: Kind[ObjT]
    _keyfns: Mapping[str, KeyFn[ObjT]]

    def __init__(self, kind: Kind[ObjT]) -> None:
        self.kind = kind
        self._objs: dict[str, ObjT] = {}
        self._sorted: LazySorted[str] = LazySorted()
        self._names: LazySorted[tuple[str, str]] = LazySorted()
        # The lower-cased name each object was indexed under: names are read from the message
        # once per put, not again when the object is replaced or removed.
        self._lname: dict[str, str] = {}
        self._keyfns = kind.indexes
        self._index: dict[str, dict[Hashable, set[str]]] = {NAME: {}}
        for index in kind.indexes:
            self._index[index] = {}

    @classmethod
    def bulk(cls, kind: Kind[ObjT], objs: Iterable[ObjT]) -> Table[ObjT]:
        """A table of `objs` (stored as they are), its lists sorted once rather than per put."""
        table = cls(kind)
        found = table._objs
        for obj in objs:
            found[obj.id] = obj
        for obj in found.values():
            table._add_to_indexes(obj, kind.name_of(obj).lower())
        table._sorted = LazySorted(found)
        table._names = LazySorted((lname, oid) for oid, lname in table._lname.items())
        return table

    def adopt(self, other: Table[ObjT]) -> None:
        """Take over `other`'s contents (which must not be used afterwards)."""
        self._objs, self._sorted, self._names = other._objs, other._sorted, other._names
        self._lname, self._index = other._lname, other._index

    def get(self, obj_id: str) -> ObjT | None:
        """The stored object with this id, or None."""
        return self._objs.get(obj_id)

    def ids(self, index: str, key: Hashable) -> Collection[str]:
        """Ids of the objects whose `index` keys include key (unordered)."""
        return self._index[index].get(key, _EMPTY)

    def sorted_ids(self) -> Sequence[str]:
        """All ids, sorted."""
        return self._sorted.items()

    def ids_with_prefix(self, prefix: str) -> list[str]:
        """Ids starting with prefix, sorted."""
        ids, lo = self._sorted.range_from(prefix)
        hi = lo
        while hi < len(ids) and ids[hi].startswith(prefix):
            hi += 1
        return ids[lo:hi]

    def ids_with_name_prefix(self, prefix: str) -> list[str]:
        """Ids of objects whose lower-cased name starts with prefix (already lower-cased)."""
        out: list[str] = []
        names, pos = self._names.range_from((prefix, ""))
        while pos < len(names) and names[pos][0].startswith(prefix):
            out.append(names[pos][1])
            pos += 1
        return out

    def count(self) -> int:
        """Number of objects."""
        return len(self._objs)

    def values(self) -> Iterator[ObjT]:
        """Stored objects in id order."""
        objs = self._objs
        return (objs[i] for i in self._sorted.items())

    def put(self, obj: ObjT) -> ObjT | None:
        """Insert or replace obj (the instance itself is stored); returns the replaced one."""
        oid = obj.id
        old = self._objs.get(oid)
        if old is not None:
            self._unindex(old)
        else:
            self._sorted.add(oid)
        self._objs[oid] = obj
        lname = self.kind.name_of(obj).lower()
        self._add_to_indexes(obj, lname)
        # Unnamed objects are in the prefix list too: every name starts with "".
        self._names.add((lname, oid))
        return old

    def remove(self, obj_id: str) -> ObjT | None:
        """Remove and return the object with this id, or None when there is none."""
        old = self._objs.pop(obj_id, None)
        if old is not None:
            self._unindex(old)
            self._sorted.discard(obj_id)
        return old

    def clear(self) -> None:
        """Remove every object."""
        self._objs.clear()
        self._sorted.clear()
        self._names.clear()
        self._lname.clear()
        for idx in self._index.values():
            idx.clear()

    def _add_to_indexes(self, obj: ObjT, lname: str) -> None:
        oid = obj.id
        self._lname[oid] = lname
        if lname:
            _add(self._index[NAME], lname, oid)
        for name, keyfn in self._keyfns.items():
            idx = self._index[name]
            for key in keyfn(obj):
                _add(idx, key, oid)

    def _unindex(self, obj: ObjT) -> None:
        oid = obj.id
        lname = self._lname.pop(oid)
        if lname:
            _discard(self._index[NAME], lname, oid)
        for name, keyfn in self._keyfns.items():
            idx = self._index[name]
            for key in keyfn(obj):
                _discard(idx, key, oid)
        self._names.discard((lname, oid))


def _add(idx: dict[Hashable, set[str]], key: Hashable, oid: str) -> None:
    ids = idx.get(key)
    if ids is None:
        idx[key] = {oid}
    else:
        ids.add(oid)


def _discard(idx: dict[Hashable, set[str]], key: Hashable, oid: str) -> None:
    ids = idx.get(key)
    if ids is not None:
        ids.discard(oid)
        if not ids:
            del idx[key]


class Layer(Generic[ObjT]):
    """A transaction's copy-on-write view of one kind: changed objects over a base reader.

    `overlay` holds the objects created or replaced in the transaction, `touched` every id it
    created, replaced or removed; an id in `touched` but not in `overlay` was removed.
    """

    kind: Kind[ObjT]
    base: Reader[ObjT]

    def __init__(self, kind: Kind[ObjT], base: Reader[ObjT]) -> None:
        self.kind = kind
        self.base = base
        self._overlay: Table[ObjT] | None = None  # made on the first write: most layers see none
        self.touched: set[str] = set()

    @property
    def overlay(self) -> Table[ObjT]:
        """The objects created or replaced in this layer."""
        if self._overlay is None:
            self._overlay = Table(self.kind)
        return self._overlay

    def get(self, obj_id: str) -> ObjT | None:
        """The object as the transaction sees it."""
        if obj_id in self.touched:
            return self.overlay.get(obj_id)
        return self.base.get(obj_id)

    def ids(self, index: str, key: Hashable) -> Collection[str]:
        """Ids whose `index` keys include key (unordered)."""
        base = self.base.ids(index, key)
        if not self.touched:
            return base
        out = [i for i in base if i not in self.touched]
        out.extend(self.overlay.ids(index, key))
        return out

    def sorted_ids(self) -> Sequence[str]:
        """All ids, sorted."""
        base = self.base.sorted_ids()
        if not self.touched:
            return base
        out = [i for i in base if i not in self.touched]
        out.extend(self.overlay.sorted_ids())
        out.sort()  # timsort merges the two sorted runs in linear time
        return out

    def ids_with_prefix(self, prefix: str) -> list[str]:
        """Ids starting with prefix, sorted."""
        base = self.base.ids_with_prefix(prefix)
        if not self.touched:
            return base
        out = [i for i in base if i not in self.touched]
        out.extend(self.overlay.ids_with_prefix(prefix))
        out.sort()
        return out

    def ids_with_name_prefix(self, prefix: str) -> list[str]:
        """Ids of objects whose lower-cased name starts with prefix (unordered)."""
        base = self.base.ids_with_name_prefix(prefix)
        if not self.touched:
            return base
        out = [i for i in base if i not in self.touched]
        out.extend(self.overlay.ids_with_name_prefix(prefix))
        return out

    def count(self) -> int:
        """Number of objects the transaction sees."""
        n = self.base.count()
        for obj_id in self.touched:
            n += (self.overlay.get(obj_id) is not None) - (self.base.get(obj_id) is not None)
        return n

    def put(self, obj: ObjT) -> None:
        """Create or replace obj in the transaction (the instance itself is kept)."""
        self.touched.add(obj.id)
        self.overlay.put(obj)

    def remove(self, obj_id: str) -> None:
        """Remove the object from the transaction's view."""
        self.touched.add(obj_id)
        self.overlay.remove(obj_id)

    def forget(self, obj_id: str) -> None:
        """Drop what the layer holds for obj_id: reads of it fall through to the base again."""
        if obj_id in self.touched:
            self.touched.discard(obj_id)
            self.overlay.remove(obj_id)

    def clear(self) -> None:
        """Drop everything the layer holds."""
        self.touched.clear()
        self._overlay = None

    def merge_into(self, parent: Layer[ObjT]) -> None:
        """Push this layer's changes down into parent (a batch's layer) when a sub-tx succeeds."""
        for obj_id in self.touched:
            obj = self.overlay.get(obj_id)
            if obj is None:
                parent.remove(obj_id)
            else:
                parent.put(obj)


__all__ = ["Layer", "Reader", "Table"]
