"""Config: the knobs of one raft member, validated when a RawNode is built.

Raft core layer; the driver builds it from swarmd's configuration. Times are in ticks: the
driver decides how long a tick is (swarmkit: 1 s ticks, election after 10, heartbeat every 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmd.raft.types import RaftID


@dataclass(frozen=True, slots=True)
class Config:
    """Settings of one member.

    Attributes:
        id: this member's raft id (not 0).
        election_tick: ticks without hearing from a leader before a follower campaigns; the
            actual timeout is drawn from [election_tick, 2 * election_tick) by the injected
            random.Random, so members rarely time out together (Raft §5.2).
        heartbeat_tick: ticks between leader heartbeats; must be below election_tick.
        max_inflight: unacknowledged appends the leader streams to a caught-up follower.
        max_size_per_msg: bytes of entries per append message (at least one entry is sent).
        pre_vote: run a pre-election first, so a partitioned member rejoining does not bump
            the term and depose a working leader (Raft dissertation §9.6).
        check_quorum: a leader steps down when it did not hear from a quorum during an
            election timeout; followers that heard from a leader recently ignore votes.
        applied: the last index the application applied before a restart (0: from the
            snapshot); committed entries are handed out again from the next one. Above the
            snapshot index, `Storage.initial_state()` must report the membership as of
            `applied` (MemoryStorage reports the snapshot's, so use 0 with it).
    """

    id: RaftID
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_inflight: int = 256
    max_size_per_msg: int = 1 << 20
    pre_vote: bool = True
    check_quorum: bool = True
    applied: int = 0

    def validate(self) -> None:
        """Reject settings the algorithm cannot work with.

        Raises:
            ValueError: a setting is out of range; the message names it.
        """
        if self.id <= 0:
            raise ValueError(f"raft id {self.id} must be positive")
        if self.heartbeat_tick <= 0:
            raise ValueError(f"heartbeat_tick {self.heartbeat_tick} must be positive")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError(
                f"election_tick {self.election_tick} must be greater than heartbeat_tick "
                f"{self.heartbeat_tick}"
            )
        if self.max_inflight <= 0:
            raise ValueError(f"max_inflight {self.max_inflight} must be positive")
        if self.max_size_per_msg <= 0:
            raise ValueError(f"max_size_per_msg {self.max_size_per_msg} must be positive")
        if self.applied < 0:
            raise ValueError(f"applied {self.applied} must not be negative")
