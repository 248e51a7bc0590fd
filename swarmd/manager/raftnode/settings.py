"""RaftSettings: the driver's timing and log-size knobs, read from the cluster spec.

Manager layer, raft node. The manager builds them with `RaftSettings.from_spec(cluster.spec.raft)`
and passes them to `RaftNode`; tests build them directly with short ticks. A zero in the spec
means "use the default" (proto3 cannot tell unset from zero).
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmd.api import specs_pb2

DEFAULT_TICK_INTERVAL = 0.1
DEFAULT_ELECTION_TICK = 10
DEFAULT_HEARTBEAT_TICK = 1
DEFAULT_SNAPSHOT_INTERVAL = 10000  # swarmkit's default
DEFAULT_KEEP_ENTRIES = 500  # swarmkit's LogEntriesForSlowFollowers
DEFAULT_PROPOSE_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class RaftSettings:
    """How a RaftNode runs.

    Attributes:
        tick_interval: seconds per raft tick.
        election_tick: ticks without a leader before a follower campaigns.
        heartbeat_tick: ticks between the leader's heartbeats.
        snapshot_interval: applied entries between two snapshots.
        keep_entries: entries kept before a snapshot's index when the log is compacted, so a
            follower slightly behind gets entries instead of the whole snapshot.
        propose_timeout: seconds a proposal may wait for its commit before `Unavailable`.
    """

    tick_interval: float = DEFAULT_TICK_INTERVAL
    election_tick: int = DEFAULT_ELECTION_TICK
    heartbeat_tick: int = DEFAULT_HEARTBEAT_TICK
    snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL
    keep_entries: int = DEFAULT_KEEP_ENTRIES
    propose_timeout: float = DEFAULT_PROPOSE_TIMEOUT

    def __post_init__(self) -> None:
        if self.tick_interval <= 0:
            raise ValueError(f"raft tick interval {self.tick_interval} must be positive")
        if self.heartbeat_tick < 1 or self.election_tick <= self.heartbeat_tick:
            raise ValueError(
                f"raft election tick {self.election_tick} must exceed heartbeat tick "
                f"{self.heartbeat_tick} (at least 1)"
            )
        if self.snapshot_interval < 1 or self.keep_entries < 0:
            raise ValueError("raft snapshot interval must be >= 1 and keep entries >= 0")
        if self.propose_timeout <= 0:
            raise ValueError(f"raft propose timeout {self.propose_timeout} must be positive")

    @classmethod
    def from_spec(cls, spec: specs_pb2.RaftConfig) -> RaftSettings:
        """Settings from a cluster spec's raft config; zero fields take the defaults.

        Raises:
            ValueError: the spec's values cannot work (the message names the field).
        """
        tick = spec.tick_interval.ToTimedelta().total_seconds()
        return cls(
            tick_interval=tick if tick > 0 else DEFAULT_TICK_INTERVAL,
            election_tick=spec.election_tick or DEFAULT_ELECTION_TICK,
            heartbeat_tick=spec.heartbeat_tick or DEFAULT_HEARTBEAT_TICK,
            snapshot_interval=spec.snapshot_interval or DEFAULT_SNAPSHOT_INTERVAL,
            keep_entries=spec.log_entries_for_slow_followers or DEFAULT_KEEP_ENTRIES,
        )


__all__ = ["RaftSettings"]
