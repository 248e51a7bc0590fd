"""Node configuration: validated, frozen settings for one swarmd process, made from its flags.

`swarmd.__main__` builds a NodeConfig from argv; `swarmd.node.Node` uses it. Defaults live here.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from swarmd import errors

DEFAULT_REMOTE_API = "0.0.0.0:4242"
DEFAULT_JOIN_API = "0.0.0.0:4243"
DEFAULT_ENGINE_ADDR = "unix:///var/run/docker.sock"
CONTROL_SOCKET_NAME = "swarmd.sock"


@dataclass(frozen=True, slots=True)
class HostPort:
    """A TCP address; host may be a name or an IP literal."""

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def parse_host_port(value: str, what: str, *, allow_zero: bool = True) -> HostPort:
    """Parse `HOST:PORT` (IPv6 as `[::1]:PORT`); raise InvalidArgument naming `what`."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise errors.InvalidArgument(f"invalid {what} {value!r}: want HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise errors.InvalidArgument(f"invalid {what} {value!r}: port must be a number") from None
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise errors.InvalidArgument(f"invalid {what} {value!r}: port must be {low}-65535")
    return HostPort(host, port)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything one swarmd process needs to know at start."""

    state_dir: Path
    listen_remote_api: HostPort
    listen_join_api: HostPort
    control_socket: Path
    advertise_addr: str
    hostname: str
    join_addr: HostPort | None
    join_token: str
    engine_addr: str
    log_level: str = "info"
    log_format: str = "console"
    #: Recover this manager's data into a new one-manager cluster (after quorum loss).
    force_new_cluster: bool = False

    @property
    def raft_dir(self) -> Path:
        return self.state_dir / "raft"

    def advertised_remote_api(self) -> str:
        """The cluster-port address other nodes should dial to reach this manager."""
        if self.advertise_addr:
            if ":" in self.advertise_addr.strip("[]") and not self.advertise_addr.startswith("["):
                return f"{self.advertise_addr}"
            return self.advertise_addr
        host = self.listen_remote_api.host
        if host in ("0.0.0.0", "::", ""):
            host = _guess_local_ip()
        return str(HostPort(host, self.listen_remote_api.port))

    def advertised_join_api(self) -> str:
        host = self.listen_join_api.host
        if host in ("0.0.0.0", "::", ""):
            host = self.advertised_remote_api().rpartition(":")[0].strip("[]")
        return str(HostPort(host, self.listen_join_api.port))


def _guess_local_ip() -> str:
    """The address the default route would use; falls back to loopback."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            # connect() on UDP sends nothing; it only picks a route.
            probe.connect(("192.0.2.1", 9))
            addr: str = probe.getsockname()[0]
            return addr
    except OSError:
        return "127.0.0.1"


def validate_advertise_addr(value: str) -> str:
    """Accept `IP`, `IP:PORT` or `HOST:PORT`; raise InvalidArgument otherwise."""
    if not value:
        return ""
    try:
        ipaddress.ip_address(value.strip("[]"))
        return value
    except ValueError:
        pass
    parse_host_port(value, "--advertise-addr", allow_zero=False)
    return value


def prepare_state_dir(path: Path) -> Path:
    """Create the state directory (0700) if needed and check it is usable; return it resolved."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise errors.FailedPrecondition(
            f"state dir {path} cannot be created: {err.strerror or err}"
        ) from err
    if not path.is_dir():
        raise errors.FailedPrecondition(f"state dir {path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise errors.FailedPrecondition(f"state dir {path} is not writable")
    return path.resolve()


__all__ = [
    "CONTROL_SOCKET_NAME",
    "DEFAULT_ENGINE_ADDR",
    "DEFAULT_JOIN_API",
    "DEFAULT_REMOTE_API",
    "HostPort",
    "NodeConfig",
    "parse_host_port",
    "prepare_state_dir",
    "validate_advertise_addr",
]
