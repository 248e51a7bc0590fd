"""The raft node: durable raft storage and, until replication lands, a single-voter log.

Manager layer. `LocalProposer` implements `swarmd.manager.store.Proposer` on top of
`RaftStorage` (SQLite + snapshot files); the Raft driver will reuse `RaftStorage`.
"""

from swarmd.manager.raftnode.local import LocalProposer
from swarmd.manager.raftnode.storage import (
    EntryType,
    HardState,
    LogEntry,
    RaftStorage,
    SnapshotMeta,
    StorageError,
)

__all__ = [
    "EntryType",
    "HardState",
    "LocalProposer",
    "LogEntry",
    "RaftStorage",
    "SnapshotMeta",
    "StorageError",
]
