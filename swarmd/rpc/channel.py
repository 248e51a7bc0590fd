"""Client channels: mTLS to a manager's cluster port, insecure to the local control socket.

RPC layer. Used by the agent (dispatcher session), managers (raft, forwarding), the renewer and
swarmctl. Managers are always verified under the fixed TLS name `swarm-manager` (a SAN every
manager certificate carries), so addresses can be IPs without matching SANs. A refused handshake
shows as UNAVAILABLE on the first RPC; `rpc.status.from_rpc_error` words it for users.
"""

from __future__ import annotations

from grpc import aio

from swarmd.ca.certstore import NodeCredentials
from swarmd.ca.rootca import Role
from swarmd.ca.security import SecurityConfig

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Keepalive so a dead manager is noticed within ~15 s even on an idle session stream; the
# servers built in rpc.server accept pings this often.
KEEPALIVE_TIME_MS = 10_000
KEEPALIVE_TIMEOUT_MS = 5_000

COMMON_OPTIONS: tuple[tuple[str, int | str], ...] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)
CLIENT_KEEPALIVE_OPTIONS: tuple[tuple[str, int | str], ...] = (
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)


def manager_channel(addr: str, creds: NodeCredentials | SecurityConfig) -> aio.Channel:
    """An mTLS channel to a manager's cluster port (`host:port`), verified as `swarm-manager`.

    With a SecurityConfig, the credentials current at the call are used; open a new channel after
    a renewal (grpc cannot swap client certificates on a live channel).
    """
    security = creds if isinstance(creds, SecurityConfig) else SecurityConfig(creds)
    return aio.secure_channel(
        addr,
        security.channel_credentials(),
        options=[
            *COMMON_OPTIONS,
            *CLIENT_KEEPALIVE_OPTIONS,
            ("grpc.ssl_target_name_override", Role.MANAGER.value),
        ],
    )


def control_channel(socket_path: str) -> aio.Channel:
    """An insecure channel to a manager's local control socket (file permissions protect it)."""
    return aio.insecure_channel(f"unix:{socket_path}", options=list(COMMON_OPTIONS))


__all__ = [
    "CLIENT_KEEPALIVE_OPTIONS",
    "COMMON_OPTIONS",
    "MAX_MESSAGE_BYTES",
    "control_channel",
    "manager_channel",
]
