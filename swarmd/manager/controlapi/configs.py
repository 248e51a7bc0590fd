"""Control API handlers for configs: create, get, list, remove.

Manager layer. Unlike secrets, configs are not confidential and are returned with their data (as
swarmkit does); like secrets, one cannot be removed while a service refers to it.
"""

from __future__ import annotations

import structlog

from swarmd import errors
from swarmd.api import control_pb2, objects_pb2
from swarmd.identity import new_id
from swarmd.manager.controlapi.filters import select
from swarmd.manager.controlapi.secrets import in_use_message
from swarmd.manager.controlapi.validation import validate_config_spec
from swarmd.manager.store import MemoryStore, ReadTx, Tx

_log = structlog.get_logger(component="controlapi")


def _get(tx: ReadTx, config_id: str) -> objects_pb2.Config:
    if not config_id:
        raise errors.InvalidArgument("config_id is required")
    config = tx.configs.get(config_id)
    if config is None:
        raise errors.NotFound("config", config_id)
    return config


class Configs:
    """The config methods of the Control servicer."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def create(self, req: control_pb2.CreateConfigRequest) -> objects_pb2.Config:
        """Validate and store a new config."""
        validate_config_spec(req.spec)
        config = objects_pb2.Config(id=new_id(), spec=req.spec)
        created = await self._store.update(lambda tx: tx.configs.create(config))
        _log.info("config created", config_id=created.id, name=created.spec.annotations.name)
        return created

    def get(self, req: control_pb2.GetConfigRequest) -> objects_pb2.Config:
        """One config by exact id."""
        return self._store.view(lambda tx: _get(tx, req.config_id))

    def list(self, req: control_pb2.ListConfigsRequest) -> list[objects_pb2.Config]:
        """Configs passing the filters, sorted by id."""
        return self._store.view(
            lambda tx: select(
                tx.configs,
                req.filters,
                lambda c: c.spec.annotations.name,
                lambda c: c.spec.annotations.labels,
            )
        )

    async def remove(self, req: control_pb2.RemoveConfigRequest) -> None:
        """Delete a config no service refers to."""

        def fn(tx: Tx) -> None:
            config = _get(tx, req.config_id)
            users = tx.services.find_services_by_config(config.id)
            if users:
                raise errors.FailedPrecondition(
                    in_use_message("config", config.spec.annotations.name, users)
                )
            tx.configs.delete(config.id)

        await self._store.update(fn)
        _log.info("config removed", config_id=req.config_id)


__all__ = ["Configs"]
