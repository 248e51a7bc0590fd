"""RaftSettings from a cluster spec: zero fields take the defaults, bad values are refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from swarmd.api import specs_pb2
from swarmd.manager.raftnode.settings import RaftSettings


def test_raft_settings_defaults_from_an_empty_spec():
    s = RaftSettings.from_spec(specs_pb2.RaftConfig())
    assert (s.tick_interval, s.election_tick, s.heartbeat_tick) == (0.1, 10, 1)
    assert (s.snapshot_interval, s.keep_entries) == (10000, 500)


def test_raft_settings_take_the_spec_values():
    spec = specs_pb2.RaftConfig(
        election_tick=20, heartbeat_tick=2, snapshot_interval=50, log_entries_for_slow_followers=7
    )
    spec.tick_interval.FromTimedelta(timedelta(milliseconds=250))
    s = RaftSettings.from_spec(spec)
    assert (s.tick_interval, s.election_tick, s.heartbeat_tick) == (0.25, 20, 2)
    assert (s.snapshot_interval, s.keep_entries) == (50, 7)


def test_raft_settings_refuse_an_election_tick_not_above_the_heartbeat():
    with pytest.raises(ValueError, match="election tick 2 must exceed heartbeat tick 2"):
        RaftSettings.from_spec(specs_pb2.RaftConfig(election_tick=2, heartbeat_tick=2))
