"""Pending: the store's written-but-uncommitted transactions, grouped into proposals.

Manager layer, internal to `swarmd.manager.store`; `MemoryStore` owns one. Group commit: a
transaction runs its callback at once, against the committed tables *plus* every transaction
still waiting for its commit, and joins the open `Group`. One group at a time is proposed, as
one raft entry (so one version); the transactions that arrive meanwhile gather in the next
group, which is proposed as soon as the one in flight commits. With N writers at once the store
makes one raft round trip per group instead of one per transaction, yet keeps swarmkit's rule
that only one proposal of a store is outstanding: nothing built on an uncommitted write is ever
proposed before that write has committed, so a failed proposal can never leave a later one
committed without it.

What the waiting transactions wrote is kept in one copy-on-write `Layer` per kind over the
tables (`readers`), with the group that last wrote each id. When a group commits, the store
applies it to the tables and `committed` drops the ids no later group rewrote, so reads fall
through to the tables. When a proposal fails, every group fails with it (they were built on
it) and the layers are emptied (`fail`).

Versions: a group's objects carry its predicted version (the previous group's + 1). Raft may
put other entries in between (an election's empty entry, a membership change), so a commit can
land above the prediction; `committed` then renumbers the groups still waiting, keeping every
waiting version above the store version. Copies handed to callers are re-stamped from the
stored instance they were made of once their group committed (`Group.handed`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from swarmd.manager.store.kinds import KINDS, StoreObject
from swarmd.manager.store.table import Layer, Table
from swarmd.manager.store.tx import Change, Handed
from swarmd.manager.store.watch import EventKind


@dataclass(eq=False, slots=True)
class Group:
    """Transactions committed together: one proposal, one raft entry, one version.

    Attributes:
        version: the version its objects are stamped with (predicted until it commits).
        changes: the writes of its transactions, in order.
        handed: copies given to its transactions' callers, with the instances they copy.
        size: encoded bytes of its changes (bounds the proposal).
        done: resolved once it committed and was applied; failed with the proposal's error.
        proposed: it is in flight: no transaction joins it any more.
    """

    version: int
    done: asyncio.Future[None]
    changes: list[Change] = field(default_factory=list)
    handed: list[Handed] = field(default_factory=list)
    size: int = 0
    proposed: bool = False


def _retrieve(fut: asyncio.Future[None]) -> None:
    # A group whose callers all gave up still fails visibly to nobody: no "never retrieved".
    if not fut.cancelled():
        fut.exception()


class Pending:
    """The waiting groups and their copy-on-write view over the committed tables.

    Loop-confined. Args: tables, the committed tables by kind name; max_actions and max_bytes,
    when a group stops taking transactions (a transaction is never split: one that alone is
    larger goes in a group of its own).
    """

    def __init__(self, tables: Mapping[str, Table[Any]], max_actions: int, max_bytes: int):
        self._layers: dict[str, Layer[Any]] = {k.name: Layer(k, tables[k.name]) for k in KINDS}
        self._owner: dict[tuple[str, str], Group] = {}
        self.groups: deque[Group] = deque()
        self._max_actions = max_actions
        self._max_bytes = max_bytes

    @property
    def readers(self) -> Mapping[str, Layer[Any]]:
        """What a new transaction reads: the tables with every waiting write on top."""
        return self._layers

    def group_for(self, store_version: int, size: int) -> Group:
        """The group a transaction of `size` bytes joins (a new one when the last is full)."""
        last = self.groups[-1] if self.groups else None
        if last is not None and not last.proposed and last.changes:
            fits = len(last.changes) < self._max_actions and last.size + size <= self._max_bytes
            if fits:
                return last
        return self.new_group(store_version)

    def new_group(self, store_version: int) -> Group:
        """Open a group after every waiting one."""
        version = (self.groups[-1].version if self.groups else store_version) + 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)
        group = Group(version, done)
        self.groups.append(group)
        return group

    def next_version(self, store_version: int) -> int:
        """The version a transaction starting now would most likely get (its prediction)."""
        last = self.groups[-1] if self.groups else None
        if last is not None and not last.proposed:
            return last.version
        return (last.version if last else store_version) + 1

    def push(self, layers: Mapping[str, Layer[Any]]) -> None:
        """Put a transaction's (or batch's) layers on top of the waiting writes."""
        for name, layer in layers.items():
            layer.merge_into(self._layers[name])

    def add(self, group: Group, changes: list[Change], handed: Iterable[Handed], size: int) -> None:
        """Add a transaction's writes (already `push`ed) to `group`."""
        if group.version != changes[0].obj.meta.version.index:
            _stamp(changes, group.version)  # it was predicted for a group that filled up
        for change in changes:
            self._owner[(change.kind.name, change.obj.id)] = group
        group.changes.extend(changes)
        group.handed.extend(handed)
        group.size += size

    def committed(self, group: Group, version: int) -> None:
        """`group` (the first) committed at `version` and is applied to the tables."""
        popped = self.groups.popleft()
        assert popped is group, "groups commit in order"
        if not self.groups:
            # Nothing else waits (the usual case: writers join after the commit): the layers
            # hold this group's writes only, all in the tables now.
            self._owner.clear()
            for layer in self._layers.values():
                layer.clear()
        else:
            for change in group.changes:
                key = (change.kind.name, change.obj.id)
                if self._owner.get(key) is group:
                    del self._owner[key]
                    self._layers[key[0]].forget(key[1])
        for copy, stored in group.handed:
            copy.meta.version.index = stored.meta.version.index
        for offset, waiting in enumerate(self.groups):
            want = version + 1 + offset
            if waiting.version < want:
                waiting.version = want
                _stamp(waiting.changes, want)

    def fail(self, err: BaseException) -> None:
        """Fail every waiting group with `err` and forget what they wrote."""
        groups, self.groups = self.groups, deque()
        self._owner.clear()
        for layer in self._layers.values():
            layer.clear()
        for group in groups:
            if not group.done.done():
                group.done.set_exception(err)


def _stamp(changes: Iterable[Change], version: int) -> None:
    for change in changes:
        if change.action is not EventKind.REMOVE:
            obj: StoreObject = change.obj
            obj.meta.version.index = version


__all__ = ["Group", "Pending"]
