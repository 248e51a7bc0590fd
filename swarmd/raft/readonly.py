"""Read-index bookkeeping: linearizable reads confirmed by a heartbeat round (Raft §6.4).

Raft core layer; the leader's handlers use it. A read request records the commit index at the
time it arrived; the leader then broadcasts a heartbeat carrying the request context, and once
a majority of voters echoed that context the leader knows it was still leader when the request
arrived, so serving the read at (at least) the recorded index is linearizable. Requests are
answered in arrival order: confirming a later one confirms every earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmd.raft.types import RaftID


@dataclass(slots=True)
class ReadIndexStatus:
    """One pending read: where it came from, the index it waits for, who acknowledged it."""

    request_ctx: bytes
    index: int
    requester: RaftID  # the member that asked (the leader itself for a local read)
    acks: set[RaftID] = field(default_factory=set)


class ReadOnly:
    """Pending read-index requests of a leader, in arrival order."""

    def __init__(self) -> None:
        """No pending reads."""
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, request_ctx: bytes, requester: RaftID) -> None:
        """Record a read arriving while the commit index is `index` (a duplicate is ignored)."""
        if request_ctx in self.pending:
            return
        self.pending[request_ctx] = ReadIndexStatus(request_ctx, index, requester)
        self.queue.append(request_ctx)

    def recv_ack(self, member: RaftID, request_ctx: bytes) -> set[RaftID]:
        """A heartbeat response echoed `request_ctx`; returns who acknowledged it so far."""
        status = self.pending.get(request_ctx)
        if status is None:
            return set()
        status.acks.add(member)
        return status.acks

    def advance(self, request_ctx: bytes) -> list[ReadIndexStatus]:
        """`request_ctx` is confirmed: pop it and every request that came before it."""
        if request_ctx not in self.pending:
            return []
        position = self.queue.index(request_ctx) + 1
        done = [self.pending.pop(ctx) for ctx in self.queue[:position]]
        self.queue = self.queue[position:]
        return done

    def last_pending_ctx(self) -> bytes:
        """The context of the newest request (heartbeats carry it), b"" when none."""
        return self.queue[-1] if self.queue else b""
