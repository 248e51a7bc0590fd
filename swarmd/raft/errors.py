"""Errors of the raft core: protocol outcomes the driver handles, and broken invariants.

Raft core layer. The core may not import `swarmd.errors` (it depends on nothing in swarmd);
the driver maps these to the swarmd hierarchy (`ProposalDropped` -> Unavailable, say).

    RaftError
    ├── ProposalDropped          the request was not taken (not leader, transfer in progress)
    │   └── ConfChangeRejected   the membership change does not fit (or one is pending)
    ├── CompactedError           the requested index is below the first index (compacted away)
    ├── UnavailableError         the requested index is above the last index
    ├── SnapshotOutOfDateError   the snapshot to install is older than the storage's
    └── InvalidMessage           a message from the network that may not be stepped
    RaftInvariantError           a bug: the core's state is inconsistent; never caught
"""

from __future__ import annotations


class RaftError(Exception):
    """Base of the expected raft outcomes."""


class ProposalDropped(RaftError):
    """A proposal (data, conf change, read or transfer) was not accepted; retry elsewhere/later."""


class ConfChangeRejected(ProposalDropped):
    """A membership change does not fit the current membership (one change at a time)."""


class CompactedError(RaftError):
    """The index requested from storage was compacted into a snapshot."""


class UnavailableError(RaftError):
    """The index requested from storage is beyond its last entry."""


class SnapshotOutOfDateError(RaftError):
    """A snapshot older than the one storage already holds was offered."""


class RaftInvariantError(Exception):
    """A raft invariant does not hold: a bug in the core or a driver breaking the contract.

    Raised instead of `assert` (which `python -O` strips). Never caught by the core.
    """


class InvalidMessage(RaftError):
    """A message from the network that may not be stepped (a local type, or no sender)."""
