"""Control API handlers for networks: create, get, list, remove.

Manager layer. Minimal until overlay networking lands: the spec is validated and stored, no
allocation happens. A network cannot be removed while a service attaches to it.
"""

from __future__ import annotations

import structlog

from swarmd import errors
from swarmd.api import control_pb2, objects_pb2
from swarmd.identity import new_id
from swarmd.manager.controlapi.filters import select
from swarmd.manager.controlapi.secrets import in_use_message
from swarmd.manager.controlapi.validation import validate_network_spec
from swarmd.manager.store import MemoryStore, ReadTx, Tx

_log = structlog.get_logger(component="controlapi")


def _get(tx: ReadTx, network_id: str) -> objects_pb2.Network:
    if not network_id:
        raise errors.InvalidArgument("network_id is required")
    network = tx.networks.get(network_id)
    if network is None:
        raise errors.NotFound("network", network_id)
    return network


class Networks:
    """The network methods of the Control servicer."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def create(self, req: control_pb2.CreateNetworkRequest) -> objects_pb2.Network:
        """Validate and store a new network."""
        validate_network_spec(req.spec)
        network = objects_pb2.Network(id=new_id(), spec=req.spec)
        created = await self._store.update(lambda tx: tx.networks.create(network))
        _log.info("network created", network_id=created.id, name=created.spec.annotations.name)
        return created

    def get(self, req: control_pb2.GetNetworkRequest) -> objects_pb2.Network:
        """One network by exact id."""
        return self._store.view(lambda tx: _get(tx, req.network_id))

    def list(self, req: control_pb2.ListNetworksRequest) -> list[objects_pb2.Network]:
        """Networks passing the filters, sorted by id."""
        return self._store.view(
            lambda tx: select(
                tx.networks,
                req.filters,
                lambda n: n.spec.annotations.name,
                lambda n: n.spec.annotations.labels,
            )
        )

    async def remove(self, req: control_pb2.RemoveNetworkRequest) -> None:
        """Delete a network no service attaches to."""

        def fn(tx: Tx) -> None:
            network = _get(tx, req.network_id)
            # Services store attachments by network id (controlapi.references); a scan of the
            # services is fine for a rare, user-driven call.
            users = [
                s
                for s in tx.services.list()
                if any(a.target == network.id for a in s.spec.task.networks)
            ]
            if users:
                raise errors.FailedPrecondition(
                    in_use_message("network", network.spec.annotations.name, users)
                )
            tx.networks.delete(network.id)

        await self._store.update(fn)
        _log.info("network removed", network_id=req.network_id)


__all__ = ["Networks"]
