"""HeartbeatTracker: sessions, deadlines and expiry, driven by explicit clock readings."""

from __future__ import annotations

import pytest

from swarmd import errors
from swarmd.manager.dispatcher.nodes import HeartbeatTracker


def test_registered_node_expires_after_grace_without_beats() -> None:
    t = HeartbeatTracker(grace=3.0)
    t.register("n1", now=0.0)
    assert t.expired(2.9) == []
    assert t.expired(3.1) == ["n1"]
    assert t.expired(10.0) == []  # reported once


def test_heartbeat_moves_the_deadline() -> None:
    t = HeartbeatTracker(grace=3.0)
    sid = t.register("n1", now=0.0)
    t.heartbeat("n1", sid, now=2.0)
    assert t.expired(4.9) == []
    assert t.expired(5.1) == ["n1"]


def test_stale_session_is_refused_with_a_clear_error() -> None:
    t = HeartbeatTracker(grace=3.0)
    old = t.register("n1", now=0.0)
    new = t.register("n1", now=1.0)
    assert old != new
    with pytest.raises(errors.InvalidArgument, match="not active"):
        t.heartbeat("n1", old, now=1.5)
    t.heartbeat("n1", new, now=1.5)


def test_unknown_nodes_get_twice_the_grace_to_register() -> None:
    t = HeartbeatTracker(grace=3.0)
    t.watch_unknown("n1", now=0.0)
    assert t.expired(5.9) == []
    assert t.expired(6.1) == ["n1"]


def test_ended_session_only_ends_when_current() -> None:
    t = HeartbeatTracker(grace=3.0)
    old = t.register("n1", now=0.0)
    new = t.register("n1", now=0.5)
    assert not t.end_session("n1", old)
    assert t.is_current("n1", new)
    assert t.end_session("n1", new)
    assert not t.is_current("n1", new)


def test_broken_session_shortens_the_deadline_but_never_extends_it() -> None:
    t = HeartbeatTracker(grace=3.0)
    sid = t.register("n1", now=0.0)
    assert t.end_session("n1", sid)
    t.disconnected("n1", now=0.5, grace=1.0)
    assert t.expired(1.4) == []
    assert t.expired(1.6) == ["n1"]
    sid = t.register("n2", now=0.0)
    assert t.end_session("n2", sid)
    t.disconnected("n2", now=2.9, grace=1.0)  # later than its heartbeat deadline
    assert t.expired(3.1) == ["n2"]


def test_a_reconnected_node_is_not_expired_by_its_old_disconnect() -> None:
    t = HeartbeatTracker(grace=3.0)
    sid = t.register("n1", now=0.0)
    t.end_session("n1", sid)
    t.disconnected("n1", now=0.1, grace=1.0)
    t.register("n1", now=0.5)
    assert t.expired(2.0) == []
