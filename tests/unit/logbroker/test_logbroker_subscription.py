"""SubscriptionState: who must still answer, by when, and the gaps the client is told about."""

from __future__ import annotations

from swarmd.manager.logbroker.subscription import (
    NodeProgress,
    SubscriptionState,
    gap_text,
    node_label,
)


def _state(follow: bool = False) -> SubscriptionState:
    s = SubscriptionState(follow=follow, deadline=1.5)
    s.expect("n1", "w1 (n1)", now=0.0)
    s.expect("n2", "w2 (n2)", now=0.0)
    return s


def test_labels_name_the_host_and_the_id():
    assert node_label("abc", "wrk1") == "wrk1 (abc)"
    assert node_label("abc", "") == "abc"
    assert gap_text("wrk1 (abc)", "not connected") == "no logs from node wrk1 (abc): not connected"


def test_done_once_every_node_closed_or_gapped():
    s = _state()
    assert not s.done
    s.closed("n1")
    assert not s.done
    assert s.gap("n2", "w2 (n2)", "disconnected") == "no logs from node w2 (n2): disconnected"
    assert s.done
    assert s.progress("n1") is NodeProgress.CLOSED
    assert s.progress("n2") is NodeProgress.GAPPED


def test_a_gap_is_reported_once_and_never_after_a_close():
    s = _state()
    s.closed("n1")
    assert s.gap("n1", "w1 (n1)", "disconnected") is None
    assert s.gap("n2", "w2 (n2)", "disconnected") is not None
    assert s.gap("n2", "w2 (n2)", "it stopped publishing") is None
    assert not s.accepts("n2")


def test_a_node_never_sent_the_subscription_can_be_gapped_directly():
    s = SubscriptionState(follow=False, deadline=1.5)
    assert s.gap("n9", "w9 (n9)", "not connected") == "no logs from node w9 (n9): not connected"
    assert s.done


def test_silence_past_the_deadline_is_a_gap_and_hearing_restarts_it():
    s = _state()
    assert s.next_deadline() == 1.5
    s.heard("n1", now=1.0)
    assert s.expired(1.4) == []
    assert s.expired(1.5) == ["no logs from node w2 (n2): no answer within 1.5s"]
    assert s.next_deadline() == 2.5
    assert s.expired(2.4) == []
    assert s.expired(2.5) == ["no logs from node w1 (n1): no answer within 1.5s"]
    assert s.done
    assert s.next_deadline() is None


def test_no_deadline_runs_while_a_delivery_waits_for_the_client():
    s = _state()
    s.closed("n2")
    s.busy("n1", +1, now=0.5)
    assert s.next_deadline() is None
    assert s.expired(100.0) == []
    s.busy("n1", -1, now=100.0)
    assert s.next_deadline() == 101.5


def test_follow_has_no_deadline_is_never_done_and_takes_a_node_back():
    s = _state(follow=True)
    assert s.next_deadline() is None
    assert s.expired(1000.0) == []
    s.closed("n1")
    s.closed("n2")
    assert not s.done
    assert s.gap("n1", "w1 (n1)", "disconnected") is None  # it had closed already
    s.expect("n2", "w2 (n2)", now=5.0)
    assert s.accepts("n2")


def test_published_data_is_remembered_per_node():
    s = _state(follow=True)
    s.heard("n1", now=1.0)
    assert not s.has_published("n1")
    s.heard("n1", now=2.0, data=True)
    assert s.has_published("n1")
    assert not s.has_published("n2")


def test_abort_ends_everything():
    s = _state(follow=True)
    s.abort()
    assert s.done
    assert not s.accepts("n1")
