"""The authenticated caller of the RPC being handled, as a context variable.

CA layer (identity), so the CA servicer can read it without depending on the rpc package.
`rpc.auth.AuthInterceptor` sets it for each call on the cluster port; handlers read it with
`current_peer()` (re-exported by `swarmd.rpc.auth`). Each grpc.aio call runs in its own task, so
the value never leaks between calls.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from swarmd.ca.rootca import Role


@dataclass(frozen=True, slots=True)
class Peer:
    """An authenticated caller: the CN, OU and O of its verified client certificate."""

    node_id: str
    role: Role
    cluster_id: str


_current_peer: contextvars.ContextVar[Peer | None] = contextvars.ContextVar(
    "swarmd_rpc_peer", default=None
)


def current_peer() -> Peer | None:
    """The caller of the RPC being handled; None on the control socket and on the join port.

    None on the unix control socket means the local operator (full rights); on the join port it
    means an unauthenticated bootstrap call.
    """
    return _current_peer.get()


def set_peer(peer: Peer | None) -> contextvars.Token[Peer | None]:
    """Bind the caller for the current task; undo with `reset_peer(token)`."""
    return _current_peer.set(peer)


def reset_peer(token: contextvars.Token[Peer | None]) -> None:
    """Restore the binding that `set_peer` replaced."""
    _current_peer.reset(token)


__all__ = ["Peer", "current_peer", "reset_peer", "set_peer"]
