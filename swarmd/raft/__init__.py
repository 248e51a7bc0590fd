"""The pure Raft consensus core of swarmd (see README.md in this directory).

Raft core layer: stdlib only, no I/O, no clock, no asyncio, no global randomness. The driver,
`swarmd.manager.raftnode`, feeds a `RawNode` ticks and messages and carries out each `Ready`.
"""

from swarmd.raft.config import Config
from swarmd.raft.errors import (
    CompactedError,
    ConfChangeRejected,
    InvalidMessage,
    ProposalDropped,
    RaftError,
    RaftInvariantError,
    SnapshotOutOfDateError,
    UnavailableError,
)
from swarmd.raft.logger import DiscardLogger, RaftLogger
from swarmd.raft.rawnode import RawNode, Ready, Status
from swarmd.raft.storage import MemoryStorage, Storage
from swarmd.raft.types import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    RaftID,
    ReadState,
    Snapshot,
    SnapshotMetadata,
    SoftState,
    StateType,
)

__all__ = [
    "NONE",
    "CompactedError",
    "ConfChange",
    "ConfChangeRejected",
    "ConfChangeType",
    "ConfState",
    "Config",
    "DiscardLogger",
    "Entry",
    "EntryType",
    "HardState",
    "InvalidMessage",
    "MemoryStorage",
    "Message",
    "MessageType",
    "ProposalDropped",
    "RaftError",
    "RaftID",
    "RaftInvariantError",
    "RaftLogger",
    "RawNode",
    "ReadState",
    "Ready",
    "Snapshot",
    "SnapshotMetadata",
    "SnapshotOutOfDateError",
    "SoftState",
    "StateType",
    "Status",
    "Storage",
    "UnavailableError",
]
