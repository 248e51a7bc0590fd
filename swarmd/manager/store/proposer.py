"""The Proposer protocol: how the store gets a transaction durably committed (and replicated).

Manager layer. `MemoryStore.update()/batch()` call it; `swarmd.manager.raftnode.local.LocalProposer`
implements it now (single-voter durable log), the Raft driver later. The store never imports an
implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from swarmd.api import store_pb2


class Proposer(Protocol):
    """Commits store transactions; the contract between the store and its replication layer.

    Ownership: `actions` belong to the store; the proposer must serialize or copy what it keeps
    before returning and must not mutate them.

    Ordering: the store calls `propose` with its write lock held, so at most one proposal per store
    is outstanding; returned versions must increase strictly across calls.

    Loop confinement: called from the event loop; disk and network I/O happen off the loop.
    """

    async def propose(self, actions: Sequence[store_pb2.StoreAction]) -> int:
        """Durably commit one transaction's actions; return its version (log index).

        Raises errors.Unavailable / NotLeader when it cannot; nothing is applied then. Must not
        apply the actions to the store: the store applies them after propose returns. Commits made
        elsewhere arrive through `MemoryStore.apply_committed()`.
        """
        ...


__all__ = ["Proposer"]
