"""The raft node: the driver of the pure raft core, its durable storage and transport.

Manager layer. `RaftNode` (node.py) runs a `swarmd.raft.RawNode`, persists it through
`DurableStorage` (durable.py, over `RaftStorage`: SQLite + snapshot files), talks to peers
through a `Transport` (transport.py: mTLS gRPC; memtransport.py: in-process for tests) and
implements `swarmd.manager.store.Proposer`. `LocalProposer` (local.py) is the single-voter log
the manager used before replication. See README.md in this directory for the wiring.
"""

from swarmd.manager.raftnode.durable import DurableStorage
from swarmd.manager.raftnode.leadership import Leadership, LeadershipSink, LeaderState
from swarmd.manager.raftnode.local import LocalProposer
from swarmd.manager.raftnode.members import AddressBook
from swarmd.manager.raftnode.memtransport import MemoryNetwork, MemoryTransport
from swarmd.manager.raftnode.node import RaftNode
from swarmd.manager.raftnode.settings import RaftSettings
from swarmd.manager.raftnode.storage import (
    EntryType,
    HardState,
    LogEntry,
    RaftStorage,
    SnapshotMeta,
    StorageError,
)
from swarmd.manager.raftnode.transport import GrpcTransport, RaftHandler, RaftServicer, Transport

__all__ = [
    "AddressBook",
    "DurableStorage",
    "EntryType",
    "GrpcTransport",
    "HardState",
    "LeaderState",
    "Leadership",
    "LeadershipSink",
    "LocalProposer",
    "LogEntry",
    "MemoryNetwork",
    "MemoryTransport",
    "RaftHandler",
    "RaftNode",
    "RaftServicer",
    "RaftSettings",
    "RaftStorage",
    "SnapshotMeta",
    "StorageError",
    "Transport",
]
