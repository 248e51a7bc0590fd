"""callpool.py: urgent calls overtake queued ones, creates stay under their cap; results, errors,
cancel, shutdown."""

from __future__ import annotations

import threading

import pytest

from swarmd.dockerexec.callpool import CREATE, NORMAL, URGENT, CallPool


def test_a_queued_urgent_call_runs_before_queued_normal_ones():
    pool = CallPool(1, "test")
    release = threading.Event()
    order = []
    try:
        blocker = pool.submit(NORMAL, lambda: release.wait(10))
        normals = [pool.submit(NORMAL, lambda i=i: order.append(f"create{i}")) for i in range(3)]
        urgent = pool.submit(URGENT, lambda: order.append("start"))
        release.set()
        for fut in [blocker, *normals, urgent]:
            fut.result(10)
        assert order == ["start", "create0", "create1", "create2"]
    finally:
        pool.shutdown()


def test_results_and_errors_reach_the_future():
    pool = CallPool(2, "test")
    try:
        assert pool.submit(NORMAL, lambda: 42).result(10) == 42

        def boom():
            raise ValueError("engine said no")

        with pytest.raises(ValueError, match="engine said no"):
            pool.submit(URGENT, boom).result(10)
    finally:
        pool.shutdown()


def test_shutdown_cancels_queued_calls_and_refuses_new_ones():
    pool = CallPool(1, "test")
    release = threading.Event()
    started = threading.Event()
    ran = []

    def block():
        started.set()
        return release.wait(10)

    running = pool.submit(NORMAL, block)
    queued = pool.submit(NORMAL, lambda: ran.append("queued"))
    assert started.wait(10)
    pool.shutdown()
    release.set()
    assert running.result(10) is True  # a running call finishes on its own
    assert queued.cancelled()
    assert ran == []
    with pytest.raises(RuntimeError, match="test pool is shut down"):
        pool.submit(NORMAL, lambda: None)


def test_a_call_cancelled_while_queued_never_runs():
    pool = CallPool(1, "test")
    release = threading.Event()
    ran = []
    try:
        blocker = pool.submit(NORMAL, lambda: release.wait(10))
        queued = pool.submit(NORMAL, lambda: ran.append("x"))
        assert queued.cancel()
        after = pool.submit(NORMAL, lambda: "after")
        release.set()
        blocker.result(10)
        assert after.result(10) == "after"
        assert ran == []
    finally:
        pool.shutdown()


def test_creates_beyond_the_cap_leave_threads_free_for_starts():
    pool = CallPool(4, "test", {CREATE: 1})
    release = threading.Event()
    entered = threading.Event()
    order = []

    def slow_create():
        entered.set()
        release.wait(10)
        order.append("create0")

    try:
        first = pool.submit(CREATE, slow_create)
        assert entered.wait(10)
        second = pool.submit(CREATE, lambda: order.append("create1"))
        # Three threads are idle, but the second create waits for the first one...
        start = pool.submit(URGENT, lambda: order.append("start"))
        assert start.result(10) is None  # ...while a start runs at once.
        assert order == ["start"]
        assert not second.done()
        release.set()
        first.result(10)
        second.result(10)
        assert order == ["start", "create0", "create1"]
    finally:
        pool.shutdown()
