"""The manager's in-memory object store, replicated through a Proposer (docs/design/store-api.md).

Manager layer: the control API, dispatcher, orchestrators and scheduler read and write cluster
objects through `MemoryStore`; `swarmd.manager.raftnode` implements `Proposer` and feeds commits,
recovery replays and snapshots back in. Never imports raft, grpc or docker.
"""

from swarmd.manager.store.kinds import KINDS, Kind, StoreObject
from swarmd.manager.store.memory import (
    DEFAULT_HISTORY,
    DEFAULT_WATCH_QUEUE,
    MAX_CHANGES_PER_TRANSACTION,
    MemoryStore,
)
from swarmd.manager.store.proposer import Proposer
from swarmd.manager.store.snapshot import BuiltTables, embedded
from swarmd.manager.store.snapshot import Refs as SnapshotRefs
from swarmd.manager.store.tx import (
    Batch,
    ReadTable,
    ReadTx,
    ServiceQueries,
    ServiceTable,
    TaskQueries,
    TaskTable,
    Tx,
    WriteTable,
)
from swarmd.manager.store.watch import Commit, Event, EventKind, Subscription, WatchItem

__all__ = [
    "DEFAULT_HISTORY",
    "DEFAULT_WATCH_QUEUE",
    "KINDS",
    "MAX_CHANGES_PER_TRANSACTION",
    "Batch",
    "BuiltTables",
    "Commit",
    "Event",
    "EventKind",
    "Kind",
    "MemoryStore",
    "Proposer",
    "ReadTable",
    "ReadTx",
    "ServiceQueries",
    "ServiceTable",
    "SnapshotRefs",
    "StoreObject",
    "Subscription",
    "TaskQueries",
    "TaskTable",
    "Tx",
    "WatchItem",
    "WriteTable",
    "embedded",
]
