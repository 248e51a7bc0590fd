"""Control API handlers for secrets: create, get, list, remove.

Manager layer. Secret data goes into the store and to the agents that run tasks using it, and
nowhere else: every secret returned here has spec.data cleared, and logs carry ids and names only.
A secret cannot be removed while a service refers to it (swarmkit controlapi/secret.go).
"""

from __future__ import annotations

import structlog

from swarmd import errors
from swarmd.api import control_pb2, objects_pb2
from swarmd.identity import new_id
from swarmd.manager.controlapi.filters import select
from swarmd.manager.controlapi.validation import validate_secret_spec
from swarmd.manager.store import MemoryStore, ReadTx, Tx

_log = structlog.get_logger(component="controlapi")


def redacted(secret: objects_pb2.Secret) -> objects_pb2.Secret:
    """A copy of the secret without its data (never mutates what the store handed out)."""
    out = objects_pb2.Secret()
    out.CopyFrom(secret)
    out.spec.ClearField("data")
    return out


def _get(tx: ReadTx, secret_id: str) -> objects_pb2.Secret:
    if not secret_id:
        raise errors.InvalidArgument("secret_id is required")
    secret = tx.secrets.get(secret_id)
    if secret is None:
        raise errors.NotFound("secret", secret_id)
    return secret


def in_use_message(kind: str, name: str, users: list[objects_pb2.Service]) -> str:
    """`secret db-pass is in use by service(s) api, web` (names sorted)."""
    names = ", ".join(sorted(s.spec.annotations.name for s in users))
    return f"{kind} {name} is in use by service(s) {names}"


class Secrets:
    """The secret methods of the Control servicer."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def create(self, req: control_pb2.CreateSecretRequest) -> objects_pb2.Secret:
        """Validate and store a new secret; the response has no data."""
        validate_secret_spec(req.spec)
        secret = objects_pb2.Secret(id=new_id(), spec=req.spec)
        created = await self._store.update(lambda tx: tx.secrets.create(secret))
        _log.info("secret created", secret_id=created.id, name=created.spec.annotations.name)
        return redacted(created)

    def get(self, req: control_pb2.GetSecretRequest) -> objects_pb2.Secret:
        """One secret by exact id, without data."""
        return redacted(self._store.view(lambda tx: _get(tx, req.secret_id)))

    def list(self, req: control_pb2.ListSecretsRequest) -> list[objects_pb2.Secret]:
        """Secrets passing the filters, sorted by id, without data."""
        secrets = self._store.view(
            lambda tx: select(
                tx.secrets,
                req.filters,
                lambda s: s.spec.annotations.name,
                lambda s: s.spec.annotations.labels,
            )
        )
        return [redacted(s) for s in secrets]

    async def remove(self, req: control_pb2.RemoveSecretRequest) -> None:
        """Delete a secret no service refers to."""

        def fn(tx: Tx) -> None:
            secret = _get(tx, req.secret_id)
            users = tx.services.find_services_by_secret(secret.id)
            if users:
                raise errors.FailedPrecondition(
                    in_use_message("secret", secret.spec.annotations.name, users)
                )
            tx.secrets.delete(secret.id)

        await self._store.update(fn)
        _log.info("secret removed", secret_id=req.secret_id)


__all__ = ["Secrets", "in_use_message", "redacted"]
