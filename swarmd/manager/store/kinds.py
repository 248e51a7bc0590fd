"""Object kinds of the store: one descriptor per protobuf message type the store holds.

Manager layer, used by the store's tables, transactions, snapshots and watch filters. A `Kind` says
how to find an object's name, which indexes its table keeps, and which `StoreAction.target` oneof
field and `StoreSnapshot` field carry it, so the rest of the store is written once for every kind.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

from google.protobuf.message import Message

from swarmd.api import objects_pb2

# Constrained (not bound) so generic code type-checks once per concrete message and its objects
# stay assignable to `StoreObject`, the union events and actions carry.
ObjT = TypeVar(
    "ObjT",
    objects_pb2.Node,
    objects_pb2.Service,
    objects_pb2.Task,
    objects_pb2.Cluster,
    objects_pb2.Secret,
    objects_pb2.Config,
    objects_pb2.Network,
)

# The same, covariant, for protocols that only hand objects out (table.Reader).
ObjT_co = TypeVar(
    "ObjT_co",
    objects_pb2.Node,
    objects_pb2.Service,
    objects_pb2.Task,
    objects_pb2.Cluster,
    objects_pb2.Secret,
    objects_pb2.Config,
    objects_pb2.Network,
    covariant=True,
)

StoreObject: TypeAlias = (
    objects_pb2.Node
    | objects_pb2.Service
    | objects_pb2.Task
    | objects_pb2.Cluster
    | objects_pb2.Secret
    | objects_pb2.Config
    | objects_pb2.Network
)

# Index names. Every kind has NAME (lower-cased name, empty names not indexed).
NAME = "name"
BY_SERVICE = "service"
BY_NODE = "node"
BY_SLOT = "slot"
BY_DESIRED_STATE = "desired_state"
BY_SECRET = "secret"
BY_CONFIG = "config"

M = TypeVar("M", bound=Message)

KeyFn = Callable[[ObjT], Iterable[Hashable]]


@dataclass(frozen=True, slots=True)
class Kind(Generic[ObjT]):
    """How the store handles one message type.

    Attributes:
        name: singular kind name used in events, errors and `watch(kinds=...)` ("service").
        table: attribute on ReadTx/Tx and field of `StoreSnapshot` ("services").
        cls: the protobuf message class.
        name_of: the object's name ("" when it has none).
        unique_names: whether create/update reject a name another object of the kind has.
        indexes: secondary indexes besides NAME: index name -> keys of an object.
    """

    name: str
    table: str
    cls: type[ObjT]
    name_of: Callable[[ObjT], str]
    unique_names: bool
    indexes: Mapping[str, KeyFn[ObjT]]

    @property
    def action_field(self) -> str:
        """The `StoreAction.target` oneof field carrying this kind (equal to `name`)."""
        return self.name

    def copy(self, obj: ObjT) -> ObjT:
        """A fresh copy of obj (CopyFrom is the cheapest deep copy with upb: < 1 us)."""
        out = self.cls()
        out.CopyFrom(obj)
        return out


def _spec_name(obj: objects_pb2.Service | objects_pb2.Cluster | objects_pb2.Secret) -> str:
    return obj.spec.annotations.name


def _node_name(node: objects_pb2.Node) -> str:
    # A node is known by its hostname until someone names it (swarmkit store/nodes.go).
    return node.spec.annotations.name or node.description.hostname


def _config_name(obj: objects_pb2.Config) -> str:
    return obj.spec.annotations.name


def _network_name(obj: objects_pb2.Network) -> str:
    return obj.spec.annotations.name


def _task_name(task: objects_pb2.Task) -> str:
    return task.annotations.name


def _service_secrets(svc: objects_pb2.Service) -> Iterable[Hashable]:
    return {ref.secret_id for ref in svc.spec.task.container.secrets if ref.secret_id}


def _service_configs(svc: objects_pb2.Service) -> Iterable[Hashable]:
    return {ref.config_id for ref in svc.spec.task.container.configs if ref.config_id}


def _task_service(task: objects_pb2.Task) -> Iterable[Hashable]:
    return (task.service_id,)


def _task_node(task: objects_pb2.Task) -> Iterable[Hashable]:
    # Unassigned tasks are indexed under "" (what the scheduler looks for).
    return (task.node_id,)


def _task_slot(task: objects_pb2.Task) -> Iterable[Hashable]:
    return ((task.service_id, task.slot),)


def _task_desired_state(task: objects_pb2.Task) -> Iterable[Hashable]:
    return (int(task.desired_state),)


NODES: Kind[objects_pb2.Node] = Kind(
    "node", "nodes", objects_pb2.Node, _node_name, unique_names=False, indexes={}
)
SERVICES: Kind[objects_pb2.Service] = Kind(
    "service",
    "services",
    objects_pb2.Service,
    _spec_name,
    unique_names=True,
    indexes={BY_SECRET: _service_secrets, BY_CONFIG: _service_configs},
)
TASKS: Kind[objects_pb2.Task] = Kind(
    "task",
    "tasks",
    objects_pb2.Task,
    _task_name,
    unique_names=False,
    indexes={
        BY_SERVICE: _task_service,
        BY_NODE: _task_node,
        BY_SLOT: _task_slot,
        BY_DESIRED_STATE: _task_desired_state,
    },
)
CLUSTERS: Kind[objects_pb2.Cluster] = Kind(
    "cluster", "clusters", objects_pb2.Cluster, _spec_name, unique_names=True, indexes={}
)
SECRETS: Kind[objects_pb2.Secret] = Kind(
    "secret", "secrets", objects_pb2.Secret, _spec_name, unique_names=True, indexes={}
)
CONFIGS: Kind[objects_pb2.Config] = Kind(
    "config", "configs", objects_pb2.Config, _config_name, unique_names=True, indexes={}
)
NETWORKS: Kind[objects_pb2.Network] = Kind(
    "network", "networks", objects_pb2.Network, _network_name, unique_names=True, indexes={}
)

AnyKind: TypeAlias = (
    Kind[objects_pb2.Node]
    | Kind[objects_pb2.Service]
    | Kind[objects_pb2.Task]
    | Kind[objects_pb2.Cluster]
    | Kind[objects_pb2.Secret]
    | Kind[objects_pb2.Config]
    | Kind[objects_pb2.Network]
)

KINDS: tuple[AnyKind, ...] = (NODES, SERVICES, TASKS, CLUSTERS, SECRETS, CONFIGS, NETWORKS)
BY_NAME: Mapping[str, AnyKind] = {k.name: k for k in KINDS}


def copy_of(obj: M) -> M:
    """A fresh copy of any protobuf message (for code holding a StoreObject union)."""
    out = type(obj)()
    out.CopyFrom(obj)
    return out


def kind_of(obj: StoreObject) -> AnyKind:
    """The descriptor of obj's message type."""
    return _BY_CLS[type(obj)]


_BY_CLS: Mapping[type, AnyKind] = {k.cls: k for k in KINDS}

__all__ = [
    "BY_CONFIG",
    "BY_DESIRED_STATE",
    "BY_NAME",
    "BY_NODE",
    "BY_SECRET",
    "BY_SERVICE",
    "BY_SLOT",
    "CLUSTERS",
    "CONFIGS",
    "KINDS",
    "NAME",
    "NETWORKS",
    "NODES",
    "SECRETS",
    "SERVICES",
    "TASKS",
    "AnyKind",
    "Kind",
    "ObjT",
    "ObjT_co",
    "StoreObject",
    "copy_of",
    "kind_of",
]
