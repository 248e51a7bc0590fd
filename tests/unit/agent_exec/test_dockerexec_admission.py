"""admission.py: a window of new tasks between create and start, in arrival order, with slots
of paused tasks taken back after the hold limit."""

from __future__ import annotations

import asyncio

import pytest

from swarmd.dockerexec.admission import Admission, AdmissionGate
from swarmd.testing.fake_clock import FakeClock


def test_tasks_beyond_the_window_wait_in_arrival_order():
    adm = Admission(window=2, hold_limit=10.0, clock=FakeClock())
    assert [adm.request(t) for t in ["a", "b", "c", "d"]] == [True, True, False, False]
    assert adm.waiting() == ["c", "d"]
    assert adm.request("a") is True  # a holder asking again keeps its slot
    assert adm.release("b") == ["c"]
    assert adm.release("a") == ["d"]
    assert adm.release("c") == []
    assert adm.holds("d")
    assert not adm.holds("c")


def test_a_newcomer_does_not_overtake_the_line():
    adm = Admission(window=1, hold_limit=10.0, clock=FakeClock())
    assert adm.request("a")
    assert not adm.request("b")
    assert adm.release("a") == ["b"]
    assert not adm.request("c")  # the slot went to b, who waited


def test_a_waiter_that_gives_up_leaves_the_line():
    adm = Admission(window=1, hold_limit=10.0, clock=FakeClock())
    adm.request("a")
    adm.request("b")
    adm.request("c")
    assert adm.release("b") == []
    assert adm.waiting() == ["c"]
    assert adm.release("a") == ["c"]


async def test_a_slot_held_past_the_hold_limit_is_taken_back():
    clock = FakeClock()
    adm = Admission(window=1, hold_limit=10.0, clock=clock)
    adm.request("paused")
    adm.request("next")
    assert adm.next_expiry() == 10.0
    await clock.advance(9.9)
    assert adm.expire() == []
    await clock.advance(0.1)
    assert adm.expire() == ["next"]
    assert not adm.holds("paused")
    assert adm.release("paused") == []  # a late release of a taken-back slot does nothing
    assert adm.holds("next")


def test_a_window_below_one_is_refused():
    with pytest.raises(ValueError, match="admission window must be at least 1, not 0"):
        Admission(window=0, hold_limit=1.0, clock=FakeClock())


async def test_gate_admits_a_waiter_when_a_holder_releases():
    gate = AdmissionGate(window=1, hold_limit=10.0, clock=FakeClock())
    await gate.acquire("a")
    waiting = asyncio.create_task(gate.acquire("b"))
    await asyncio.sleep(0)
    assert not waiting.done()
    gate.release("a")
    await asyncio.wait_for(waiting, 5)
    assert gate.holds("b")


async def test_gate_takes_back_a_paused_slot_on_the_clock():
    clock = FakeClock()
    gate = AdmissionGate(window=1, hold_limit=10.0, clock=clock)
    await gate.acquire("paused")
    waiting = asyncio.create_task(gate.acquire("b"))
    for _ in range(10):  # let the gate reach its sleep until the paused slot's hold limit
        await asyncio.sleep(0)
    assert clock.sleepers == 1
    await clock.advance(5)
    assert not waiting.done()
    await clock.advance(5)
    await asyncio.wait_for(waiting, 5)
    assert gate.holds("b")
    assert not gate.holds("paused")


async def test_a_cancelled_waiter_leaves_the_line_for_the_next():
    gate = AdmissionGate(window=1, hold_limit=10.0, clock=FakeClock())
    await gate.acquire("a")
    b = asyncio.create_task(gate.acquire("b"))
    c = asyncio.create_task(gate.acquire("c"))
    await asyncio.sleep(0)
    b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await b
    gate.release("a")
    await asyncio.wait_for(c, 5)
    assert gate.holds("c")
    assert not gate.holds("b")
