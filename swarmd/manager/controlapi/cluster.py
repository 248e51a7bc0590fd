"""Control API handlers for the cluster object: get, list, update (spec, join token rotation).

Manager layer. Every cluster this module returns has root_ca.ca_key cleared: the CA's private
key lives in the store for the CA subsystem and never leaves a manager.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from swarmd import errors
from swarmd.api import control_pb2, objects_pb2
from swarmd.manager.controlapi.filters import select
from swarmd.manager.controlapi.validation import validate_cluster_spec
from swarmd.manager.store import MemoryStore, ReadTx, Tx

_log = structlog.get_logger(component="controlapi")

TokenFactory = Callable[[bytes], str]


def redacted(cluster: objects_pb2.Cluster) -> objects_pb2.Cluster:
    """A copy of the cluster without its CA private key."""
    out = objects_pb2.Cluster()
    out.CopyFrom(cluster)
    out.root_ca.ClearField("ca_key")
    return out


def _get(tx: ReadTx, cluster_id: str) -> objects_pb2.Cluster:
    if not cluster_id:
        raise errors.InvalidArgument("cluster_id is required")
    cluster = tx.clusters.get(cluster_id)
    if cluster is None:
        raise errors.NotFound("cluster", cluster_id)
    return cluster


class Clusters:
    """The cluster methods of the Control servicer."""

    def __init__(self, store: MemoryStore, token_factory: TokenFactory | None) -> None:
        self._store = store
        self._token_factory = token_factory

    def get(self, req: control_pb2.GetClusterRequest) -> objects_pb2.Cluster:
        """The cluster by exact id, redacted."""
        return redacted(self._store.view(lambda tx: _get(tx, req.cluster_id)))

    def list(self, req: control_pb2.ListClustersRequest) -> list[objects_pb2.Cluster]:
        """Clusters passing the filters (there is one), redacted."""
        clusters = self._store.view(
            lambda tx: select(
                tx.clusters,
                req.filters,
                lambda c: c.spec.annotations.name,
                lambda c: c.spec.annotations.labels,
            )
        )
        return [redacted(c) for c in clusters]

    async def update(self, req: control_pb2.UpdateClusterRequest) -> objects_pb2.Cluster:
        """Replace the spec and/or rotate join tokens, checked against cluster_version.

        A request without a spec keeps the current one, so a rotation alone needs no spec.
        """
        if req.cluster_version.index == 0:
            raise errors.InvalidArgument("cluster_version is required")
        rotate = req.rotation.worker_join_token or req.rotation.manager_join_token
        if not req.HasField("spec") and not rotate:
            raise errors.InvalidArgument("spec is required unless join tokens are rotated")
        if rotate and self._token_factory is None:
            raise errors.FailedPrecondition("join token rotation is not available on this manager")

        def fn(tx: Tx) -> objects_pb2.Cluster:
            cluster = _get(tx, req.cluster_id)
            if cluster.meta.version.index != req.cluster_version.index:
                raise errors.SequenceConflict(
                    "cluster",
                    req.cluster_id,
                    req.cluster_version.index,
                    cluster.meta.version.index,
                )
            if req.HasField("spec"):
                validate_cluster_spec(req.spec, cluster.spec.annotations.name)
                cluster.spec.CopyFrom(req.spec)
            if rotate:
                self._rotate(cluster, req.rotation)
            return tx.clusters.update(cluster)

        updated = await self._store.update(fn)
        _log.info(
            "cluster updated",
            cluster_id=updated.id,
            rotated_worker_token=req.rotation.worker_join_token,
            rotated_manager_token=req.rotation.manager_join_token,
        )
        return redacted(updated)

    def _rotate(self, cluster: objects_pb2.Cluster, rotation: control_pb2.KeyRotation) -> None:
        factory = self._token_factory
        if factory is None:  # checked by update(); kept for the type checker
            raise errors.FailedPrecondition("join token rotation is not available")
        ca_cert = cluster.root_ca.ca_cert
        if not ca_cert:
            raise errors.FailedPrecondition(
                f"cluster {cluster.id} has no root CA certificate to derive join tokens from"
            )
        tokens = cluster.root_ca.join_tokens
        if rotation.worker_join_token:
            tokens.worker = factory(ca_cert)
        if rotation.manager_join_token:
            tokens.manager = factory(ca_cert)


__all__ = ["Clusters", "TokenFactory", "redacted"]
