"""Control API handlers for services: create, get, list, update (and rollback, pause, resume),
remove, statuses.

Manager layer. Specs are validated before the write transaction (pure, no lock held); references
to secrets, configs and networks are resolved inside it. Removing a service deletes it and sets
the desired state of its tasks to REMOVE in the same transaction (orchestrators may not have
created any yet); the agents then stop them and the task reaper deletes them.
"""

from __future__ import annotations

import builtins

import structlog

from swarmd import errors
from swarmd.api import control_pb2, objects_pb2, specs_pb2, types_pb2
from swarmd.clock import Clock
from swarmd.identity import new_id
from swarmd.manager.controlapi import defaults, revisions
from swarmd.manager.controlapi.filters import select
from swarmd.manager.controlapi.references import resolve_references
from swarmd.manager.controlapi.validation import validate_service_spec
from swarmd.manager.controlapi.validation.fieldrules import check_enum, invalid, show
from swarmd.manager.store import MemoryStore, ReadTx, Tx

_log = structlog.get_logger(component="controlapi")

_Rollback = control_pb2.UpdateServiceRequest.Rollback
_Action = control_pb2.UpdateServiceRequest.UpdateAction
_Status = control_pb2.ListServiceStatusesResponse.ServiceStatus
_REMOVE = types_pb2.TASK_STATE_REMOVE
_RUNNING = types_pb2.TASK_STATE_RUNNING
_COMPLETE = types_pb2.TASK_STATE_COMPLETE


def _require_id(field: str, value: str) -> None:
    if not value:
        raise errors.InvalidArgument(f"{field} is required")


def _prepared(spec: specs_pb2.ServiceSpec) -> specs_pb2.ServiceSpec:
    """A validated copy of `spec` with the mode defaulted to replicated, 1 replica."""
    out = specs_pb2.ServiceSpec()
    out.CopyFrom(spec)
    validate_service_spec(out)
    if out.WhichOneof("mode") is None:
        out.replicated.replicas = 1
    return out


def _history_limit(tx: ReadTx) -> int:
    clusters = tx.clusters.list()
    if clusters and clusters[0].spec.service_history.revisions:
        return clusters[0].spec.service_history.revisions
    return defaults.SERVICE_HISTORY_REVISIONS


def _get(tx: ReadTx, service_id: str) -> objects_pb2.Service:
    service = tx.services.get(service_id)
    if service is None:
        raise errors.NotFound("service", service_id)
    return service


def _mark_tasks_removed(tx: Tx, service_id: str, limit: int) -> bool:
    """Set desired REMOVE on up to `limit` of the service's tasks; True when more remain."""
    pending = [t for t in tx.tasks.find_by_service(service_id) if t.desired_state < _REMOVE]
    for task in pending[:limit]:
        task.desired_state = _REMOVE
        tx.tasks.update(task)
    return len(pending) > limit


class Services:
    """The service methods of the Control servicer."""

    def __init__(self, store: MemoryStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(self, req: control_pb2.CreateServiceRequest) -> objects_pb2.Service:
        """Validate and store a new service (revision 1)."""
        spec = _prepared(req.spec)
        service = objects_pb2.Service(id=new_id(), spec=spec)

        def fn(tx: Tx) -> objects_pb2.Service:
            resolve_references(tx, service.spec)
            revisions.start_history(service, revisions.timestamp(self._clock.now()))
            return tx.services.create(service)

        created = await self._store.update(fn)
        _log.info("service created", service_id=created.id, name=created.spec.annotations.name)
        return created

    def get(self, req: control_pb2.GetServiceRequest) -> objects_pb2.Service:
        """One service by exact id, optionally with defaults filled into its spec."""
        _require_id("service_id", req.service_id)
        service = self._store.view(lambda tx: _get(tx, req.service_id))
        if req.insert_defaults:
            service.spec.CopyFrom(defaults.with_defaults(service.spec))
        return service

    def list(self, req: control_pb2.ListServicesRequest) -> list[objects_pb2.Service]:
        """Services passing the filters, sorted by id."""
        return self._store.view(
            lambda tx: select(
                tx.services,
                req.filters,
                lambda s: s.spec.annotations.name,
                lambda s: s.spec.annotations.labels,
            )
        )

    async def update(self, req: control_pb2.UpdateServiceRequest) -> objects_pb2.Service:
        """Replace the spec (or roll back), checked against the caller's service_version."""
        _require_id("service_id", req.service_id)
        if req.service_version.index == 0:
            raise errors.InvalidArgument("service_version is required")
        check_enum("rollback", req.rollback, _Rollback)
        check_enum("update_action", req.update_action, _Action)
        if req.update_action != _Action.UPDATE_ACTION_NONE:
            if req.HasField("spec") or req.rollback:
                raise errors.InvalidArgument(
                    "update_action (pause/resume) cannot be combined with a spec or a rollback"
                )
            return await self.set_update_paused(
                req.service_id,
                req.service_version.index,
                paused=req.update_action == _Action.UPDATE_ACTION_PAUSE,
            )
        rolling_back = req.rollback != control_pb2.UpdateServiceRequest.ROLLBACK_NONE
        if req.rollback_to_revision and not rolling_back:
            raise errors.InvalidArgument("rollback_to_revision needs rollback=ROLLBACK_PREVIOUS")
        spec = None if rolling_back else _prepared(req.spec)
        now = revisions.timestamp(self._clock.now())

        def fn(tx: Tx) -> objects_pb2.Service:
            service = _get(tx, req.service_id)
            if service.meta.version.index != req.service_version.index:
                raise errors.SequenceConflict(
                    "service",
                    req.service_id,
                    expected=req.service_version.index,
                    actual=service.meta.version.index,
                )
            limit = _history_limit(tx)
            if spec is None:
                revisions.rollback(service, req.rollback_to_revision, limit, now)
            else:
                _check_unchangeable(service.spec, spec)
                resolve_references(tx, spec)
                service.ClearField("update_status")
                revisions.apply_spec(service, spec, limit, now)
            return tx.services.update(service)

        updated = await self._store.update(fn)
        _log.info(
            "service updated",
            service_id=updated.id,
            revision=updated.revision,
            rollback=rolling_back,
        )
        return updated

    async def set_update_paused(
        self, service_id: str, service_version: int, paused: bool
    ) -> objects_pb2.Service:
        """Pause, or resume, the service's update in progress (`revisions.pause_update`).

        Checked against the caller's service_version like an update. Submitting the same spec
        again also resumes a paused update (a new spec clears the status, and the updater goes
        on from what the tasks run).
        """
        _require_id("service_id", service_id)
        now = revisions.timestamp(self._clock.now())

        def fn(tx: Tx) -> objects_pb2.Service:
            service = _get(tx, service_id)
            if service.meta.version.index != service_version:
                raise errors.SequenceConflict(
                    "service",
                    service_id,
                    expected=service_version,
                    actual=service.meta.version.index,
                )
            if paused:
                revisions.pause_update(service)
            else:
                revisions.resume_update(service, now)
            return tx.services.update(service)

        updated = await self._store.update(fn)
        _log.info(
            "service update paused" if paused else "service update resumed", service_id=service_id
        )
        return updated

    async def remove(self, req: control_pb2.RemoveServiceRequest) -> None:
        """Delete the service; its tasks get desired state REMOVE."""
        _require_id("service_id", req.service_id)

        # A transaction carries at most TX_CHANGES changes: the deletion and the first tasks go
        # together, any further tasks in follow-up transactions.
        def fn(tx: Tx) -> bool:
            _get(tx, req.service_id)
            tx.services.delete(req.service_id)
            return _mark_tasks_removed(tx, req.service_id, defaults.TX_CHANGES - 1)

        more = await self._store.update(fn)
        while more:
            more = await self._store.update(
                lambda tx: _mark_tasks_removed(tx, req.service_id, defaults.TX_CHANGES)
            )
        _log.info("service removed", service_id=req.service_id)

    def statuses(self, req: control_pb2.ListServiceStatusesRequest) -> builtins.list[_Status]:
        """Desired, running and completed task counts of the named (or all) services.

        Unknown ids are skipped: the caller usually lists services first and one may be
        removed in between.
        """

        def fn(tx: ReadTx) -> builtins.list[_Status]:
            if req.services:
                found = (tx.services.get(i) for i in dict.fromkeys(req.services))
                services = [s for s in found if s is not None]
            else:
                services = tx.services.list()
            return [_status(svc, tx.tasks.find_by_service(svc.id)) for svc in services]

        return self._store.view(fn)


def _check_unchangeable(current: specs_pb2.ServiceSpec, new: specs_pb2.ServiceSpec) -> None:
    name = current.annotations.name
    if new.annotations.name != name:
        raise invalid(
            "service name",
            new.annotations.name,
            f"renaming services is not supported (the service is named {show(name)})",
        )
    old_mode, new_mode = current.WhichOneof("mode"), new.WhichOneof("mode")
    if old_mode != new_mode:
        raise invalid(
            "mode",
            new_mode or "",
            f"service {name} is {old_mode} and a service mode cannot change; "
            "remove the service and create it again",
        )


def _status(service: objects_pb2.Service, tasks: list[objects_pb2.Task]) -> _Status:
    running = sum(1 for t in tasks if t.desired_state == _RUNNING and t.status.state == _RUNNING)
    completed = sum(1 for t in tasks if t.status.state == _COMPLETE)
    if service.spec.WhichOneof("mode") == "replicated":
        desired = service.spec.replicated.replicas
    else:
        desired = sum(1 for t in tasks if t.desired_state == _RUNNING)
    return _Status(
        service_id=service.id,
        desired_tasks=desired,
        running_tasks=running,
        completed_tasks=completed,
    )


__all__ = ["Services"]
