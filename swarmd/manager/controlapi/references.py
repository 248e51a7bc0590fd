"""Resolution of the objects a ServiceSpec refers to: secrets, configs and networks.

Manager layer. Runs inside the write transaction that stores the service, so a referenced secret
cannot be removed between the check and the write (RemoveSecret checks for users in its own
transaction). A reference may give the id, the name or both; the missing one is filled in, and
networks are rewritten to their ids, so that later readers never resolve names.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from swarmd.api import specs_pb2, types_pb2
from swarmd.manager.controlapi.validation.fieldrules import invalid, show
from swarmd.manager.store import ReadTx

_P = "task.container"


class _Named(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def spec(self) -> _HasAnnotations: ...


class _HasAnnotations(Protocol):
    @property
    def annotations(self) -> types_pb2.Annotations: ...


N = TypeVar("N", bound=_Named)
N_co = TypeVar("N_co", bound=_Named, covariant=True)


class _Table(Protocol[N_co]):
    def get(self, obj_id: str, /) -> N_co | None: ...

    def get_by_name(self, name: str, /) -> N_co | None: ...


def _lookup(table: _Table[N], kind: str, field: str, obj_id: str, name: str) -> N:
    if obj_id:
        obj = table.get(obj_id)
        if obj is None:
            raise invalid(field, obj_id, f"{kind} not found")
        if name and name.lower() != obj.spec.annotations.name.lower():
            raise invalid(
                field, name, f"{kind} {obj_id} is named {show(obj.spec.annotations.name)}"
            )
        return obj
    found = table.get_by_name(name)
    if found is None:
        raise invalid(field, name, f"{kind} not found")
    return found


def resolve_references(tx: ReadTx, spec: specs_pb2.ServiceSpec) -> None:
    """Check that every secret, config and network `spec` names exists; fill ids and names.

    Raises:
        errors.InvalidArgument: a referenced object does not exist (or id and name disagree).
    """
    for i, s in enumerate(spec.task.container.secrets):
        secret = _lookup(tx.secrets, "secret", f"{_P}.secrets[{i}]", s.secret_id, s.secret_name)
        s.secret_id, s.secret_name = secret.id, secret.spec.annotations.name
    for i, c in enumerate(spec.task.container.configs):
        config = _lookup(tx.configs, "config", f"{_P}.configs[{i}]", c.config_id, c.config_name)
        c.config_id, c.config_name = config.id, config.spec.annotations.name
    for i, n in enumerate(spec.task.networks):
        field = f"task.networks[{i}].target"
        network = tx.networks.get(n.target) or tx.networks.get_by_name(n.target)
        if network is None:
            raise invalid(field, n.target, "network not found")
        n.target = network.id
    seen: set[str] = set()
    for i, n in enumerate(spec.task.networks):
        if n.target in seen:
            raise invalid(f"task.networks[{i}].target", n.target, "network attached twice")
        seen.add(n.target)


__all__ = ["resolve_references"]
