"""The caller's identity as it travels on a forwarded call: metadata keys, encoding, binding.

RPC layer, pure apart from one context variable. A follower's `rpc.forward.ForwardInterceptor`
calls `forwarded_metadata(caller, peer_addr)` to describe who really made a call it passes to the
leader; the leader's `rpc.auth.AuthInterceptor` calls `read_forwarded(metadata)`, and trusts the
result only when the direct TLS peer is a manager of the same cluster (swarmkit ca/forward.go
does the same with its forwarded_cert_* keys). While the leader handles such a call,
`current_forwarded()` says which manager forwarded it, so the forwarder can refuse a second hop,
and `caller_address(context)` gives the original caller's address instead of the follower's.

A caller is a `Peer` (a node's certificate identity) or a `Principal` without a certificate:
`LOCAL_OPERATOR`, the operator on a manager's unix control socket, who has that manager's rights,
or `ANONYMOUS`, a node joining through the join port, which may only make the bootstrap calls.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from grpc import aio

from swarmd import errors
from swarmd.ca.peer import Peer
from swarmd.ca.rootca import Role

PREFIX = "swarmd-forwarded-"
NODE_ID_KEY = PREFIX + "node-id"
ROLE_KEY = PREFIX + "role"
CLUSTER_ID_KEY = PREFIX + "cluster-id"
PEER_ADDR_KEY = PREFIX + "peer-addr"
_KEYS = frozenset({NODE_ID_KEY, ROLE_KEY, CLUSTER_ID_KEY, PEER_ADDR_KEY})


class Principal(enum.Enum):
    """A caller without a node certificate; the value is its forwarded role."""

    LOCAL_OPERATOR = "local-operator"
    ANONYMOUS = "anonymous"


LOCAL_OPERATOR = Principal.LOCAL_OPERATOR
ANONYMOUS = Principal.ANONYMOUS

Caller = Peer | Principal

Metadata = Iterable[tuple[str, str | bytes]]


@dataclass(frozen=True, slots=True)
class Forwarded:
    """A forwarded call as the leader sees it.

    Attributes:
        caller: who made the call on the follower.
        peer_addr: the caller's address as the follower saw it (grpc's `ipv4:host:port` form),
            empty for the local operator.
        forwarder: the manager that forwarded it (the direct TLS peer).
    """

    caller: Caller
    peer_addr: str
    forwarder: Peer


def forwarded_metadata(caller: Caller, peer_addr: str) -> tuple[tuple[str, str], ...]:
    """The metadata entries that carry `caller` (and its address) to the leader."""
    entries: list[tuple[str, str]]
    if isinstance(caller, Principal):
        entries = [(ROLE_KEY, caller.value)]
    else:
        entries = [
            (NODE_ID_KEY, caller.node_id),
            (ROLE_KEY, caller.role.value),
            (CLUSTER_ID_KEY, caller.cluster_id),
        ]
    if peer_addr:
        entries.append((PEER_ADDR_KEY, peer_addr))
    return tuple(entries)


def is_forwarded_key(key: str) -> bool:
    """Whether a metadata key is one of ours (so a forwarder never copies a caller's own)."""
    return key.lower().startswith(PREFIX)


def has_forwarded(metadata: Metadata | None) -> bool:
    """Whether any entry claims a forwarded identity (even a partial one)."""
    return any(is_forwarded_key(key) for key, _ in metadata or ())


def read_forwarded(metadata: Metadata | None) -> tuple[Caller, str] | None:
    """The forwarded caller and its address, or None if the call carries no forwarded identity.

    The result is a claim: only a manager's word makes it true (see `rpc.auth`).

    Raises:
        Unauthenticated: the entries are repeated, incomplete or name an unknown role.
    """
    values: dict[str, str] = {}
    for key, value in metadata or ():
        if not is_forwarded_key(key):
            continue
        name = key.lower()
        if name not in _KEYS or name in values or not isinstance(value, str):
            raise errors.Unauthenticated(f"malformed forwarded identity: bad entry {name}")
        values[name] = value
    if not values:
        return None
    role = values.get(ROLE_KEY, "")
    addr = values.get(PEER_ADDR_KEY, "")
    principal = next((p for p in Principal if p.value == role), None)
    if principal is not None:
        if NODE_ID_KEY in values or CLUSTER_ID_KEY in values:
            raise errors.Unauthenticated(
                f"malformed forwarded identity: {principal.value} caller with a node identity"
            )
        return principal, addr
    node_id = values.get(NODE_ID_KEY, "")
    cluster_id = values.get(CLUSTER_ID_KEY, "")
    if not node_id or not cluster_id:
        raise errors.Unauthenticated("malformed forwarded identity: node id or cluster id missing")
    try:
        parsed = Role(role)
    except ValueError as err:
        raise errors.Unauthenticated(f"forwarded identity has unknown role {role!r}") from err
    return Peer(node_id=node_id, role=parsed, cluster_id=cluster_id), addr


_current_forwarded: contextvars.ContextVar[Forwarded | None] = contextvars.ContextVar(
    "swarmd_rpc_forwarded", default=None
)


def current_forwarded() -> Forwarded | None:
    """The forwarding of the call being handled; None if it came straight from its caller."""
    return _current_forwarded.get()


def set_forwarded(value: Forwarded | None) -> contextvars.Token[Forwarded | None]:
    """Bind the forwarding for the current task; undo with `reset_forwarded(token)`."""
    return _current_forwarded.set(value)


def reset_forwarded(token: contextvars.Token[Forwarded | None]) -> None:
    """Restore the binding that `set_forwarded` replaced."""
    _current_forwarded.reset(token)


def caller_address(context: aio.ServicerContext[Any, Any]) -> str:
    """The original caller's address (`ipv4:host:port`): the follower's view when forwarded.

    Handlers that record where a node is (the dispatcher's node address) use this instead of
    `context.peer()`, which on a forwarded call is the forwarding manager.
    """
    forwarded = current_forwarded()
    if forwarded is not None:
        return forwarded.peer_addr
    return context.peer() or ""


__all__ = [
    "ANONYMOUS",
    "CLUSTER_ID_KEY",
    "LOCAL_OPERATOR",
    "NODE_ID_KEY",
    "PEER_ADDR_KEY",
    "PREFIX",
    "ROLE_KEY",
    "Caller",
    "Forwarded",
    "Principal",
    "caller_address",
    "current_forwarded",
    "forwarded_metadata",
    "has_forwarded",
    "is_forwarded_key",
    "read_forwarded",
    "reset_forwarded",
    "set_forwarded",
]
