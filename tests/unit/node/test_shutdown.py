"""Shutdown: a stop signal cancels the node, a stop that hangs or a second signal exits at once."""

from __future__ import annotations

import asyncio
import signal

from structlog.testing import capture_logs

from swarmd.shutdown import EXIT_STUCK, Shutdown


class Exits:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = asyncio.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.called.set()


async def _well_behaved() -> None:
    await asyncio.sleep(3600)


class Stubborn:
    """A task body that swallows cancellations (what a lost one looks like) until released."""

    def __init__(self) -> None:
        self.released = False

    async def swallows_cancellation(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if self.released:
                    raise

    async def release(self, task: asyncio.Task[None]) -> None:
        self.released = True
        task.cancel()
        await asyncio.wait({task})


async def test_the_first_signal_cancels_the_node_and_a_prompt_stop_never_exits_hard():
    exits = Exits()
    main = asyncio.create_task(_well_behaved())
    await asyncio.sleep(0)
    stop = Shutdown(main, deadline=0.3, exit_fn=exits)
    stop.request(signal.SIGTERM)
    await asyncio.wait({main})
    assert main.cancelled()
    stop.disarm()
    await asyncio.sleep(0.4)  # past the deadline: the disarmed timer must not fire
    assert exits.codes == []


async def test_a_stop_that_hangs_names_the_stuck_tasks_and_exits_after_the_deadline():
    exits = Exits()
    body = Stubborn()
    stuck = asyncio.create_task(body.swallows_cancellation(), name="orchestrator-reaper")
    await asyncio.sleep(0)
    stop = Shutdown(stuck, deadline=0.3, exit_fn=exits)
    loop = asyncio.get_running_loop()
    with capture_logs() as logs:
        asked_at = loop.time()
        stop.request(signal.SIGTERM)
        for _ in range(5):
            await asyncio.sleep(0)
        assert exits.codes == []  # the cancellation was swallowed; the deadline has not come
        async with asyncio.timeout(3.0):
            await exits.called.wait()
    assert loop.time() - asked_at >= 0.3
    assert exits.codes == [EXIT_STUCK]
    assert not stuck.done()
    errors = [e for e in logs if e["log_level"] == "error"]
    assert errors[0]["event"] == "stop did not finish in time; exiting"
    running = errors[0]["running"]
    assert any(
        r.startswith("orchestrator-reaper at ") and "(swallows_cancellation)" in r for r in running
    ), running
    await body.release(stuck)


async def test_a_second_signal_exits_at_once_with_the_signal_status():
    exits = Exits()
    body = Stubborn()
    stuck = asyncio.create_task(body.swallows_cancellation())
    await asyncio.sleep(0)
    stop = Shutdown(stuck, deadline=60, exit_fn=exits)
    stop.request(signal.SIGTERM)
    await asyncio.sleep(0)
    stop.request(signal.SIGINT)
    assert exits.codes == [128 + signal.SIGINT.value]
    stop.disarm()
    await body.release(stuck)
