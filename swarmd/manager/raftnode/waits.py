"""Waits: the driver's bookkeeping of proposals waiting for their commit, and of pending reads.

Manager layer, raft node; used by `RaftNode` only. A proposal is registered under the log index
the core gave it, with the exact bytes proposed: when the entry at that index is applied, the
wait is resolved if the bytes match (this member's proposal committed) and failed otherwise (a
new leader overwrote it). When the caller gave up (timeout, cancellation), nobody else will
apply the entry: the driver applies it to the store itself, as it does for other members'.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from swarmd import errors


@dataclass(slots=True)
class ProposalWait:
    """One proposal in flight.

    Attributes:
        data: the bytes proposed (the entry's data once committed).
        future: resolved with the entry's index when it is applied.
        settled: set once the proposing coroutine is done with the outcome (returned the index
            to its caller, or gave up); the driver waits for it before applying later entries,
            so the caller's store applies this entry first.
    """

    data: bytes
    future: asyncio.Future[int]
    settled: asyncio.Event = field(default_factory=asyncio.Event)


class Waits:
    """Proposals by log index and reads by request context. Loop-confined."""

    def __init__(self) -> None:
        self._proposals: dict[int, ProposalWait] = {}
        self._reads: dict[bytes, asyncio.Future[int]] = {}
        self._applied: list[tuple[int, asyncio.Future[None]]] = []

    def add_proposal(self, index: int, wait: ProposalWait) -> None:
        """Register a proposal the core appended at `index`."""
        self._proposals[index] = wait

    def take_proposal(self, index: int) -> ProposalWait | None:
        """The proposal registered at `index`, removed from the table."""
        return self._proposals.pop(index, None)

    def add_read(self, ctx: bytes) -> asyncio.Future[int]:
        """A future for the read index the leader will confirm for `ctx`."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reads[ctx] = fut
        return fut

    def drop_read(self, ctx: bytes) -> None:
        """Forget a read whose caller gave up."""
        self._reads.pop(ctx, None)

    def confirm_read(self, ctx: bytes, index: int) -> None:
        """The leader confirmed a read at `index`."""
        fut = self._reads.pop(ctx, None)
        if fut is not None and not fut.done():
            fut.set_result(index)

    def until_applied(self, index: int) -> asyncio.Future[None]:
        """A future resolved once `applied(n)` reports n >= index."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applied.append((index, fut))
        return fut

    def applied(self, index: int) -> None:
        """Everything up to `index` is applied: wake the matching `until_applied` futures."""
        keep: list[tuple[int, asyncio.Future[None]]] = []
        for want, fut in self._applied:
            if fut.done():
                continue
            if want <= index:
                fut.set_result(None)
            else:
                keep.append((want, fut))
        self._applied = keep

    def fail_proposals(self, err: errors.SwarmError) -> None:
        """Fail every proposal in flight (leadership lost, node stopping)."""
        proposals, self._proposals = self._proposals, {}
        for wait in proposals.values():
            if not wait.future.done():
                wait.future.set_exception(err)

    def fail_all(self, err: errors.SwarmError) -> None:
        """Fail proposals, reads and applied-index waits (the node stops)."""
        self.fail_proposals(err)
        reads, self._reads = self._reads, {}
        applied, self._applied = self._applied, []
        futures: list[asyncio.Future[Any]] = [*reads.values(), *(f for _, f in applied)]
        for fut in futures:
            if not fut.done():
                fut.set_exception(err)


__all__ = ["ProposalWait", "Waits"]
