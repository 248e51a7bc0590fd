"""The leader's components: orchestrators, scheduler, reaper, enforcer, node liveness.

Manager layer, run by `swarmd.manager.manager.Manager` while this manager leads (today: always,
as the only manager; the Raft issue starts and stops `run()` on leadership changes). Each
component runs under a supervisor: one that fails unexpectedly is logged and restarted after a
back-off, so a bug in one loop never takes the manager down, and none ever runs twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from swarmd.clock import Clock
from swarmd.manager.dispatcher import DispatcherServicer
from swarmd.manager.orchestrator.enforcer import ConstraintEnforcer
from swarmd.manager.orchestrator.global_ import GlobalOrchestrator
from swarmd.manager.orchestrator.reaper import TaskReaper
from swarmd.manager.orchestrator.replicated import ReplicatedOrchestrator
from swarmd.manager.scheduler.scheduler import Scheduler
from swarmd.manager.store import MemoryStore
from swarmd.rpc.backoff import Backoff

_log = structlog.get_logger(component="manager")


@dataclass(frozen=True, slots=True)
class Component:
    """A named long-running loop; `start()` makes a fresh coroutine of it."""

    name: str
    start: Callable[[], Awaitable[None]]


def leader_components(
    store: MemoryStore, clock: Clock, dispatcher: DispatcherServicer
) -> list[Component]:
    """Everything that runs on the leader, in start order."""
    replicated = ReplicatedOrchestrator(store, clock)
    global_ = GlobalOrchestrator(store, clock)
    scheduler = Scheduler(store, clock)
    reaper = TaskReaper(store, clock)
    enforcer = ConstraintEnforcer(store, clock)
    return [
        Component("dispatcher", dispatcher.run),
        Component("replicated-orchestrator", replicated.run),
        Component("global-orchestrator", global_.run),
        Component("scheduler", scheduler.run),
        Component("task-reaper", reaper.run),
        Component("constraint-enforcer", enforcer.run),
    ]


async def supervise(component: Component) -> None:
    """Run a component until cancelled, restarting it (with back-off) when it fails."""
    backoff = Backoff(0.1, 5.0)
    log = _log.bind(subsystem=component.name)
    while True:
        try:
            await component.start()
            log.warning("component returned; restarting")
        # The one place a component's unexpected failure is caught: log it, restart it.
        except Exception:
            log.exception("component failed; restarting")
        await asyncio.sleep(backoff.next())


async def run_leader(components: list[Component]) -> None:
    """Run every component until cancelled."""
    async with asyncio.TaskGroup() as tg:
        for component in components:
            tg.create_task(supervise(component), name=component.name)
    _log.info("leader components stopped")


__all__ = ["Component", "leader_components", "run_leader", "supervise"]
