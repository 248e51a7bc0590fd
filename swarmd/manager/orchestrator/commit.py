"""Writing orchestrator decisions to the store: one batch per plan, one unit per decision.

Manager layer, the I/O edge of the orchestrators (called by `driver.run_reconciler`). Each
decision is applied in its own `Batch.update` unit against the state current at write time,
with the checks `plan.py` documents; a decision that no longer applies is skipped, and one that
fails (a store error) is logged and dropped without affecting the others: the next reconcile
pass sees the real state and decides again.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from typing import assert_never

import structlog

from swarmd import errors
from swarmd.api import objects_pb2
from swarmd.manager.orchestrator import task as tasks
from swarmd.manager.orchestrator.plan import (
    CreateTask,
    Decision,
    DeleteTask,
    RejectTask,
    ReplaceTask,
    SetDesiredState,
    SetUpdateStatus,
    StartTask,
)
from swarmd.manager.orchestrator.updatestatus import apply_update_status
from swarmd.manager.store import Batch, MemoryStore, Tx

_log = structlog.get_logger(component="orchestrator")


def apply_decision(tx: Tx, decision: Decision) -> bool:
    """Apply one decision in tx; False when it no longer applies (nothing written)."""
    match decision:
        case CreateTask(task=task):
            return _create(tx, task)
        case ReplaceTask(old_task_id=old_id, new=new):
            old = tx.tasks.get(old_id)
            if old is None or old.desired_state > tasks.RUNNING:
                return False
            old.desired_state = tasks.SHUTDOWN
            tx.tasks.update(old)
            if new is not None:
                _create(tx, new)
            return True
        case SetDesiredState(task_id=task_id, state=state):
            t = tx.tasks.get(task_id)
            if t is None or t.desired_state >= state:
                return False
            t.desired_state = state
            tx.tasks.update(t)
            return True
        case StartTask(task_id=task_id):
            t = tx.tasks.get(task_id)
            if t is None or t.desired_state >= tasks.RUNNING:
                return False
            t.desired_state = tasks.RUNNING
            tx.tasks.update(t)
            return True
        case DeleteTask(task_id=task_id):
            if tx.tasks.get(task_id) is None:
                return False
            tx.tasks.delete(task_id)
            return True
        case RejectTask(task_id=task_id, message=message, err=err, now=now):
            t = tx.tasks.get(task_id)
            if t is None or t.status.state >= tasks.COMPLETE:
                return False
            t.status.state = tasks.REJECTED
            t.status.message = message
            t.status.err = err
            t.status.timestamp.CopyFrom(tasks.timestamp(now))
            tx.tasks.update(t)
            return True
        case SetUpdateStatus():
            return apply_update_status(tx, decision)
        case _:
            assert_never(decision)


def _create(tx: Tx, task: objects_pb2.Task) -> bool:
    if tx.services.get(task.service_id) is None:
        return False
    tx.tasks.create(task)
    return True


async def commit_plan(store: MemoryStore, plan: Sequence[Decision], component: str) -> int:
    """Write the decisions in one store batch; returns how many were applied.

    Raises:
        errors.Unavailable, errors.NotLeader: from the store's proposer (the caller's loop
            ends; the leader's next orchestrator starts over from the store).
    """
    if not plan:
        return 0

    def fn(batch: Batch) -> Counter[str]:
        applied: Counter[str] = Counter()
        for decision in plan:
            kind = type(decision).__name__
            try:
                if batch.update(functools.partial(apply_decision, decision=decision)):
                    applied[kind] += 1
            except errors.SwarmError as err:
                _log.warning(
                    "orchestrator decision failed",
                    orchestrator=component,
                    decision=kind,
                    task_id=_task_of(decision),
                    error=str(err),
                )
        return applied

    applied = await store.batch(fn)
    total = sum(applied.values())
    if total:
        # One line per plan (not per task): plans of a big scale can hold thousands.
        _log.info("orchestrator plan committed", orchestrator=component, **dict(applied))
    else:
        _log.debug("orchestrator plan had no effect", orchestrator=component, decisions=len(plan))
    return total


def _task_of(decision: Decision) -> str:
    if isinstance(decision, SetUpdateStatus):
        return decision.service_id
    if isinstance(decision, CreateTask):
        return decision.task.id
    if isinstance(decision, ReplaceTask):
        return decision.old_task_id
    return decision.task_id


__all__ = ["apply_decision", "commit_plan"]
