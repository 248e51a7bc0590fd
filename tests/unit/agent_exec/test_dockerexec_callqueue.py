"""callqueue.py: urgent calls first, normal ones next, creates last and only up to their cap."""

from __future__ import annotations

import pytest

from swarmd.dockerexec.callqueue import CREATE, NORMAL, URGENT, CallQueue


def drain(q):
    out = []
    while (picked := q.pop()) is not None:
        out.append(picked[1])
    return out


def test_classes_run_in_order_and_each_in_arrival_order():
    q = CallQueue()
    for item, cls in [
        ("create1", CREATE),
        ("list1", NORMAL),
        ("start1", URGENT),
        ("create2", CREATE),
        ("remove1", NORMAL),
        ("inspect1", URGENT),
    ]:
        q.push(cls, item)
    assert drain(q) == ["start1", "inspect1", "list1", "remove1", "create1", "create2"]


def test_creates_beyond_their_cap_wait_while_other_classes_go_past():
    q = CallQueue({CREATE: 2})
    for i in range(4):
        q.push(CREATE, f"create{i}")
    assert drain(q) == ["create0", "create1"]  # two in flight: the cap
    q.push(URGENT, "start0")
    q.push(NORMAL, "list0")
    assert drain(q) == ["start0", "list0"]
    assert q.running(CREATE) == 2
    assert q.queued(CREATE) == 2
    q.done(CREATE)
    assert drain(q) == ["create2"]
    q.done(CREATE)
    q.done(CREATE)
    assert drain(q) == ["create3"]
    assert q.queued(CREATE) == 0


def test_drain_returns_every_queued_item_and_keeps_the_in_flight_count():
    q = CallQueue({CREATE: 1})
    q.push(CREATE, "a")
    q.push(CREATE, "b")
    q.push(URGENT, "c")
    assert q.pop() == (URGENT, "c")
    assert q.drain() == ["a", "b"]
    assert q.pop() is None
    assert q.running(URGENT) == 1


def test_bad_classes_and_limits_are_refused():
    with pytest.raises(ValueError, match="call class 2 needs a limit of at least 1, not 0"):
        CallQueue({CREATE: 0})
    with pytest.raises(ValueError, match="unknown call class 7"):
        CallQueue({7: 1})
    q = CallQueue()
    with pytest.raises(ValueError, match="unknown call class 9"):
        q.push(9, "x")
    with pytest.raises(ValueError, match="no call of class 0 is in flight"):
        q.done(URGENT)
