"""What an agent reports about its host: hostname, platform, CPU and memory.

Issue 3 refines CPU/memory/labels from the Docker Engine; this reads the host itself.
"""

from __future__ import annotations

import os
import platform

from swarmd.api import types_pb2

_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def _memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def describe_host(hostname: str, addresses: list[str]) -> types_pb2.NodeDescription:
    """A NodeDescription of this host as seen by the OS."""
    machine = platform.machine().lower()
    return types_pb2.NodeDescription(
        hostname=hostname,
        platform=types_pb2.Platform(
            os=platform.system().lower(), architecture=_ARCH.get(machine, machine)
        ),
        resources=types_pb2.Resources(
            nano_cpus=(os.cpu_count() or 1) * 1_000_000_000, memory_bytes=_memory_bytes()
        ),
        addresses=addresses,
    )


__all__ = ["describe_host"]
