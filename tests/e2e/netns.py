"""Hosts in network namespaces on one machine, for tests that cut the network between them.

The real variant of `multihost.md`: each host is a network namespace with one veth into a bridge
that lives in a namespace of its own (so the host's firewall never sees the traffic), addressed in
198.18.0.0/24 (RFC 2544, exists only inside these namespaces). A swarmd started in a host's
namespace listens on that address; it still reaches the machine's dockerd through the unix
socket (a path, not the network), so containers run as usual. `partition(host)` takes the host's
link down (nothing in or out); `heal(host)` brings it back. Everything is removed on close.
Needs root and iproute2.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

SUBNET = "198.18.0"


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *args] if ns is None else ["ip", "netns", "exec", ns, "ip", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")


@dataclass
class NetnsHosts:
    """`count` hosts named <prefix>1.. with addresses 198.18.0.1..; the bridge is <prefix>br."""

    count: int
    prefix: str = field(default_factory=lambda: f"sw{os.getpid() % 100000}-")
    made: list[str] = field(default_factory=list)

    @property
    def bridge_ns(self) -> str:
        return f"{self.prefix}br"

    def ns(self, i: int) -> str:
        return f"{self.prefix}h{i}"

    @staticmethod
    def addr(i: int) -> str:
        return f"{SUBNET}.{i}"

    def create(self) -> NetnsHosts:
        br = self.bridge_ns
        _ip("netns", "add", br)
        self.made.append(br)
        _ip("link", "add", "br0", "type", "bridge", ns=br)
        _ip("link", "set", "br0", "up", ns=br)
        for i in range(1, self.count + 1):
            ns = self.ns(i)
            _ip("netns", "add", ns)
            self.made.append(ns)
            # Create the pair inside the host namespace, then move its peer to the bridge.
            _ip("link", "add", "eth0", "type", "veth", "peer", "name", f"p{i}", ns=ns)
            _ip("link", "set", f"p{i}", "netns", br, ns=ns)
            _ip("link", "set", f"p{i}", "master", "br0", ns=br)
            _ip("link", "set", f"p{i}", "up", ns=br)
            _ip("addr", "add", f"{self.addr(i)}/24", "dev", "eth0", ns=ns)
            _ip("link", "set", "eth0", "up", ns=ns)
            _ip("link", "set", "lo", "up", ns=ns)
        return self

    def wrap(self, i: int, argv: list[str]) -> list[str]:
        """argv run inside host i's namespace."""
        return ["ip", "netns", "exec", self.ns(i), *argv]

    def partition(self, i: int) -> None:
        _ip("link", "set", f"p{i}", "down", ns=self.bridge_ns)

    def heal(self, i: int) -> None:
        _ip("link", "set", f"p{i}", "up", ns=self.bridge_ns)

    def close(self) -> None:
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self.made.clear()
