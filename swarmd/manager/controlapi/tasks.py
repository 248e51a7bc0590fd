"""Control API handlers for tasks: get, list, remove.

Manager layer. Tasks are written by orchestrators, the scheduler and the dispatcher; users only
read them and may delete one (swarmkit RemoveTask), which its orchestrator then replaces.
"""

from __future__ import annotations

import structlog

from swarmd import errors
from swarmd.api import control_pb2, objects_pb2
from swarmd.manager.controlapi.filters import matches, task_name
from swarmd.manager.store import MemoryStore, ReadTx, Tx

_log = structlog.get_logger(component="controlapi")


def _get(tx: ReadTx, task_id: str) -> objects_pb2.Task:
    if not task_id:
        raise errors.InvalidArgument("task_id is required")
    task = tx.tasks.get(task_id)
    if task is None:
        raise errors.NotFound("task", task_id)
    return task


def _candidates(tx: ReadTx, req: control_pb2.ListTasksRequest) -> list[objects_pb2.Task]:
    """Fetch through the narrowest index the request allows; the filters are applied after."""
    if req.service_ids:
        found = [t for s in dict.fromkeys(req.service_ids) for t in tx.tasks.find_by_service(s)]
    elif req.node_ids:
        found = [t for n in dict.fromkeys(req.node_ids) for t in tx.tasks.find_by_node(n)]
    elif req.filters.id_prefixes:
        found = [t for p in req.filters.id_prefixes for t in tx.tasks.find_by_id_prefix(p)]
    elif req.desired_states:
        found = [
            t for d in dict.fromkeys(req.desired_states) for t in tx.tasks.find_by_desired_state(d)
        ]
    else:
        return tx.tasks.list()
    by_id = {t.id: t for t in found}
    return [by_id[k] for k in sorted(by_id)]


def _keep(req: control_pb2.ListTasksRequest, task: objects_pb2.Task) -> bool:
    return (
        (not req.service_ids or task.service_id in req.service_ids)
        and (not req.node_ids or task.node_id in req.node_ids)
        and (not req.desired_states or task.desired_state in req.desired_states)
        and (not req.slots or task.slot in req.slots)
        and matches(req.filters, task.id, task_name(task), task.annotations.labels)
    )


class Tasks:
    """The task methods of the Control servicer."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def get(self, req: control_pb2.GetTaskRequest) -> objects_pb2.Task:
        """One task by exact id."""
        return self._store.view(lambda tx: _get(tx, req.task_id))

    def list(self, req: control_pb2.ListTasksRequest) -> list[objects_pb2.Task]:
        """Tasks passing every given filter, sorted by id."""
        return [t for t in self._store.view(lambda tx: _candidates(tx, req)) if _keep(req, t)]

    async def remove(self, req: control_pb2.RemoveTaskRequest) -> None:
        """Delete one task."""

        def fn(tx: Tx) -> None:
            _get(tx, req.task_id)
            tx.tasks.delete(req.task_id)

        await self._store.update(fn)
        _log.info("task removed", task_id=req.task_id)


__all__ = ["Tasks"]
