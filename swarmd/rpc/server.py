"""Builders for a manager's three grpc.aio servers: cluster port, join port, control socket.

RPC layer, called by the manager's wiring. The TCP builders return `(server, port)` (the control
socket builder just the server) with the listener bound but the server NOT started: register
servicers (`add_XServicer_to_server`), then `await server.start()`; stop with
`await server.stop(grace)`. Pass port 0 in `addr` to get a free
port (tests). Listeners (decisions.md, Security):

- cluster port: mutual TLS, client certificate required and verified against the cluster root;
  `AuthInterceptor` (peer OU against the role table, O against the cluster id) then
  `StatusInterceptor`. The certificate comes from a SecurityConfig on every new handshake, so a
  renewed certificate needs no restart.
- join port: TLS with server authentication only; serves CA and NodeCA alone. Its chain is
  [leaf, root] so a joining node can read the root and pin it by the token's digest.
- control socket: `unix:PATH`, insecure, mode 0600 in a 0700 directory; callers are the local
  operator.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import grpc
import structlog
from grpc import aio

from swarmd import errors
from swarmd.ca.security import SecurityConfig
from swarmd.rpc.auth import AuthInterceptor
from swarmd.rpc.channel import COMMON_OPTIONS, KEEPALIVE_TIME_MS
from swarmd.rpc.status import StatusInterceptor

_log = structlog.get_logger(component="rpc")

# Accept client keepalive pings as often as rpc.channel sends them (the default minimum of five
# minutes would make the server answer GOAWAY "too_many_pings").
SERVER_OPTIONS: tuple[tuple[str, int | str], ...] = (
    *COMMON_OPTIONS,
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 2),
    ("grpc.http2.max_ping_strikes", 0),
)


def _bind(server: aio.Server, addr: str, creds: grpc.ServerCredentials | None) -> int:
    try:
        if creds is None:
            port = server.add_insecure_port(addr)
        else:
            port = server.add_secure_port(addr, creds)
    except RuntimeError as err:  # grpc says only "Failed to bind"
        raise errors.Unavailable(f"cannot listen on {addr}: address in use or invalid") from err
    if port == 0 and not addr.startswith("unix:"):
        raise errors.Unavailable(f"cannot listen on {addr}")
    return port


def cluster_server(
    security: SecurityConfig,
    cluster_id: str,
    addr: str,
    extra_interceptors: Sequence[aio.ServerInterceptor] = (),
) -> tuple[aio.Server, int]:
    """The mTLS cluster port (control, dispatcher, raft, logs, CA renewals).

    Args:
        security: the node's live credentials; read again on every handshake.
        cluster_id: the cluster whose certificates are accepted (their O); empty means the O
            of our own certificate.
        addr: `host:port`, port 0 for any free port.
        extra_interceptors: run after authorisation and before the status mapping.

    Returns:
        The unstarted server and the bound port.
    """
    cid = cluster_id or security.credentials.cluster_id
    creds = grpc.dynamic_ssl_server_credentials(
        security.server_certificate_configuration(),
        security.server_certificate_configuration,
        require_client_authentication=True,
    )
    server = aio.server(
        interceptors=[AuthInterceptor(cid), *extra_interceptors, StatusInterceptor()],
        options=list(SERVER_OPTIONS),
    )
    port = _bind(server, addr, creds)
    _log.info("cluster port bound", addr=addr, port=port, cluster_id=cid)
    return server, port


def join_server(
    key_pem: bytes,
    chain_pem: bytes,
    addr: str,
    extra_interceptors: Sequence[aio.ServerInterceptor] = (),
) -> tuple[aio.Server, int]:
    """The join port: TLS server authentication only, for CA and NodeCA servicers alone.

    Args:
        key_pem: the join-port key (bootstrap.JoinPortCredentials.key_pem).
        chain_pem: leaf then root, PEM concatenated; the root must be included so joiners can
            pin it, and must come second (grpc fails to bind a reversed chain).
        addr: `host:port`, port 0 for any free port.
        extra_interceptors: run before the status mapping (the manager's
            `rpc.forward.ForwardInterceptor(principal=ANONYMOUS)`).
    """
    creds = grpc.ssl_server_credentials([(key_pem, chain_pem)], require_client_auth=False)
    server = aio.server(
        interceptors=[*extra_interceptors, StatusInterceptor()], options=list(SERVER_OPTIONS)
    )
    port = _bind(server, addr, creds)
    _log.info("join port bound", addr=addr, port=port)
    return server, port


def control_server(
    socket_path: str | Path, extra_interceptors: Sequence[aio.ServerInterceptor] = ()
) -> aio.Server:
    """The local control API on a unix socket, mode 0600 (the directory is made 0700 if new).

    Returns only the unstarted server (a unix socket has no port). A stale socket file from a
    previous run is removed first. `extra_interceptors` run before the status mapping (the
    manager's `rpc.forward.ForwardInterceptor(principal=LOCAL_OPERATOR)`).
    """
    path = Path(socket_path)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    path.unlink(missing_ok=True)
    server = aio.server(
        interceptors=[*extra_interceptors, StatusInterceptor()], options=list(COMMON_OPTIONS)
    )
    _bind(server, f"unix:{path}", None)
    # grpc creates the socket file when binding, with the process umask; narrow it right away.
    # The window before chmod is closed by the 0700 directory in normal deployments.
    os.chmod(path, 0o600)
    _log.info("control socket bound", path=str(path))
    return server


__all__ = ["SERVER_OPTIONS", "cluster_server", "control_server", "join_server"]
