"""The connection to a manager's Control API: local unix socket or remote mutual TLS.

swarmctl layer, used by `swarmctl.cli` for every command. `connect` opens one grpc.aio channel
(the local control socket without TLS, or a manager's cluster port with an operator's
certificate, verified under the fixed name every manager certificate carries) and hands out a
`Client` with the typed Control stub and the per-call timeout. RPC failures are turned into
`swarmd.errors` by `describe_rpc_error`, worded for the transport in use.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc import aio

from swarmd import errors
from swarmd.api import control_pb2_grpc

# swarmd's default state dir is /var/lib/swarmd and the socket lives in it.
DEFAULT_SOCKET = "/var/lib/swarmd/swarmd.sock"
SOCKET_ENV = "SWARM_SOCKET"
# Generous: a loaded manager (or a loaded host) can take seconds to answer; a stuck one must
# still not hang a script forever.
DEFAULT_TIMEOUT = 20.0
# As swarmd.rpc.channel.COMMON_OPTIONS: large lists (tasks) exceed grpc's 4 MiB default.
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_LOCAL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
)


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: a unix socket path, or a remote address with certificate files."""

    socket: str = DEFAULT_SOCKET
    addr: str = ""
    cert: str = ""
    key: str = ""
    ca: str = ""

    @property
    def is_remote(self) -> bool:
        """True when talking mTLS to a cluster port instead of the local socket."""
        return bool(self.addr)

    def describe(self) -> str:
        """The target as shown in error messages."""
        return self.addr if self.is_remote else f"unix:{self.socket}"


@dataclass(frozen=True, slots=True)
class Client:
    """A Control stub bound to one channel, plus the deadline every call must pass."""

    control: control_pb2_grpc.ControlAsyncStub
    timeout: float
    target: Target


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise errors.InvalidArgument(f"cannot read {what} {path}: {err.strerror}") from err


def open_channel(target: Target) -> aio.Channel:
    """A new channel to `target` (what `connect` uses; `service logs` opens a second one).

    Raises:
        errors.InvalidArgument: missing or unreadable certificate files.
        errors.Unavailable: the local socket does not exist.
    """
    if target.is_remote:
        missing = [f for f, v in (("--cert", target.cert), ("--key", target.key)) if not v]
        missing += ["--ca"] if not target.ca else []
        if missing:
            raise errors.InvalidArgument(f"--addr needs {', '.join(missing)}")
        # Imported here: the CA and rpc modules pull in cryptography and structlog, which cost
        # a local command a third of its run time.
        from swarmd.ca.certstore import credentials_from_pem
        from swarmd.rpc.channel import manager_channel

        creds = credentials_from_pem(
            _read(target.key, "key"),
            _read(target.cert, "certificate"),
            _read(target.ca, "ca certificate"),
        )
        return manager_channel(target.addr, creds)
    if not os.path.exists(target.socket):
        raise errors.Unavailable(
            f"cannot connect to swarmd: control socket {target.socket} does not exist "
            f"(is swarmd running? set -s/--socket or {SOCKET_ENV})"
        )
    # The same channel as swarmd.rpc.channel.control_channel, built here because importing that
    # module loads the CA code (cryptography, structlog): a third of a local command's run time.
    return aio.insecure_channel(f"unix:{target.socket}", options=list(_LOCAL_OPTIONS))


@asynccontextmanager
async def connect(target: Target, call_timeout: float = DEFAULT_TIMEOUT) -> AsyncIterator[Client]:
    """A Client for `target`; the channel is closed on exit.

    Raises:
        errors.InvalidArgument: missing or unreadable certificate files.
        errors.Unavailable: the local socket does not exist.
    """
    channel = open_channel(target)
    try:
        yield Client(
            control=control_pb2_grpc.ControlStub(channel), timeout=call_timeout, target=target
        )
    finally:
        await channel.close()


def describe_rpc_error(err: grpc.RpcError, target: Target) -> errors.SwarmError:
    """A SwarmError for a failed call, with connection failures worded for the transport."""
    code = err.code() if isinstance(err, aio.AioRpcError) else None
    if code == grpc.StatusCode.UNAVAILABLE and not target.is_remote:
        details = err.details() if isinstance(err, aio.AioRpcError) else ""
        if details and ("connect" in details or "Socket closed" in details):
            return errors.Unavailable(f"cannot connect to swarmd at {target.describe()}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return errors.DeadlineExceeded(f"no answer from swarmd at {target.describe()} in time")
    from swarmd.rpc.status import from_rpc_error

    return from_rpc_error(err)


__all__ = [
    "DEFAULT_SOCKET",
    "DEFAULT_TIMEOUT",
    "SOCKET_ENV",
    "Client",
    "Target",
    "connect",
    "describe_rpc_error",
    "open_channel",
]
