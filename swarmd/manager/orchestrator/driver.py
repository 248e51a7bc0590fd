"""The async shell shared by the orchestrators: store events in, reconcile steps, plans out.

Manager layer; the only part of the orchestrators that awaits. `run_reconciler` subscribes to
the store's watch queue *before* reading the initial state (so nothing committed in between is
missed), runs the core's start-up pass, then feeds every event to the core and, once a
transaction's events are all in (its `Commit`) or the core's next deadline passes, asks the
core for a plan against a fresh read-only view and writes it with `commit.commit_plan`.
Cores are plain objects (the `Reconciler` protocol) driven with `now` = Clock.now(), so tests
poke them synchronously; this loop runs them against a real MemoryStore and a Clock.

A watch-queue overflow (the loop fell behind), an unavailable store or a failing core are not
fatal: after `RESYNC_DELAY` the loop subscribes again and runs the start-up pass again, which
re-derives everything from the store. Only cancellation (and NotLeader) ends it.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import Protocol

import structlog

from swarmd import errors
from swarmd.clock import Clock
from swarmd.manager.orchestrator.commit import commit_plan
from swarmd.manager.orchestrator.plan import Decision
from swarmd.manager.store import Commit, Event, MemoryStore, ReadTx

_log = structlog.get_logger(component="orchestrator")

# A core that keeps being due after this many plans in a row is broken; wait for new events.
_MAX_PLANS_PER_WAKE = 16
# Pause before starting over after a watch overflow or an unavailable store.
RESYNC_DELAY = 1.0


class Reconciler(Protocol):
    """A pure orchestration core driven by `run_reconciler`.

    Contract: loop-confined, never awaits, never writes the store itself. `start` and `plan`
    read only the given view and return decisions; `plan` must consume the work it was due
    for (so `next_wakeup` moves on), possibly leaving follow-up work for the next call.
    """

    name: str
    kinds: Collection[str]

    def start(self, tx: ReadTx, now: float) -> list[Decision]:
        """Forget transient state, derive everything from the view; the start-up fixes."""
        ...

    def handle(self, event: Event, now: float) -> None:
        """Take note of one committed change."""
        ...

    def next_wakeup(self) -> float | None:
        """When `plan` should run next (a time <= now: at once; None: nothing to do)."""
        ...

    def plan(self, tx: ReadTx, now: float) -> list[Decision]:
        """The decisions for the work that is due."""
        ...


async def _plan_and_commit(store: MemoryStore, clock: Clock, core: Reconciler) -> None:
    for _ in range(_MAX_PLANS_PER_WAKE):
        wake = core.next_wakeup()
        now = clock.now()
        if wake is None or wake > now:
            return
        plan = store.view(functools.partial(core.plan, now=now))
        await commit_plan(store, plan, core.name)
    _log.warning("orchestrator still busy after many plans", orchestrator=core.name)


async def _follow(store: MemoryStore, clock: Clock, core: Reconciler) -> None:
    """One subscription's lifetime: start-up pass, then events until the queue fails."""
    async with store.watch(core.kinds) as sub:
        now = clock.now()
        await commit_plan(store, store.view(lambda tx: core.start(tx, now)), core.name)
        await _plan_and_commit(store, clock, core)
        while True:
            wake = core.next_wakeup()
            timeout = None if wake is None else max(0.0, wake - clock.now())
            try:
                item = await sub.next_within(clock, timeout)
            except StopAsyncIteration:
                return  # the subscription was closed: nothing more to follow
            if isinstance(item, Event):
                core.handle(item, clock.now())
                continue
            if isinstance(item, Commit) and sub.pending():
                continue  # coalesce transactions that are already queued
            await _plan_and_commit(store, clock, core)


async def run_reconciler(store: MemoryStore, clock: Clock, core: Reconciler) -> None:
    """Drive core against the store until cancelled."""
    log = _log.bind(orchestrator=core.name)
    log.info("orchestrator started")
    try:
        while True:
            try:
                await _follow(store, clock, core)
                return
            except errors.Unavailable as err:
                # The watch overflowed or the proposer is unavailable: start over shortly.
                log.warning("orchestrator resynchronising", reason=str(err))
            except errors.NotLeader:
                raise  # leadership moved: the manager stops the leader components
            except Exception:
                # A bug in a reconcile step must not take the leader down: the start-up pass
                # re-derives everything from the store.
                log.exception("orchestrator failed, restarting")
            await clock.sleep(RESYNC_DELAY)
    finally:
        log.info("orchestrator stopped")


__all__ = ["RESYNC_DELAY", "Reconciler", "run_reconciler"]
