"""Measurement harness shared by the benchmarks: machine load, process CPU, statistics, ports.

Used by bench/workload.py (and written so other benchmarks can use it). Nothing here knows
about swarmd or Docker: it samples /proc, summarises samples and finds free loopback ports.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_times() -> tuple[int, int, int]:
    """(total, idle+iowait, steal) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    steal = fields[7] if len(fields) > 7 else 0
    return sum(fields), fields[3] + fields[4], steal


def process_cpu_s(pid: int | None) -> float | None:
    """User+system CPU seconds used so far by one process, or None when it is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(parts[11]) + int(parts[12])) / CLK_TCK


def pid_of(name: str) -> int | None:
    """Pid of the first process whose comm is `name` (e.g. dockerd), or None."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == name:
                return int(entry.name)
        except OSError:
            continue
    return None


def busy_share(window: float) -> float:
    """Share of all CPUs busy (not idle, not iowait) over the next `window` seconds (blocking)."""
    t0 = cpu_times()
    time.sleep(window)
    t1 = cpu_times()
    total = t1[0] - t0[0]
    return 1 - (t1[1] - t0[1]) / total if total else 0.0


async def until_quiet(
    limit: float = 0.15, window: float = 0.3, calm: int = 2, max_wait: float = 15.0
) -> float:
    """Wait until the machine is quiet; the seconds waited.

    Quiet: `calm` windows in a row with less than `limit` of all CPUs busy. Removing 50
    containers leaves work behind after the API calls returned (the kernel tears their network
    namespaces down in the background, dockerd and containerd finish their clean-up), and that
    work would otherwise land on whichever system is measured next.
    """
    start = time.monotonic()
    streak = 0
    while streak < calm and time.monotonic() - start < max_wait:
        busy = await asyncio.to_thread(busy_share, window)
        streak = streak + 1 if busy < limit else 0
    return round(time.monotonic() - start, 2)


@dataclass
class Machine:
    """What the whole machine did while a phase ran: load average, busy and steal share."""

    loadavg_before: tuple[float, float, float]
    _t0: tuple[int, int, int]

    @classmethod
    def start(cls) -> Machine:
        return cls(loadavg_before=os.getloadavg(), _t0=cpu_times())

    def stop(self) -> dict[str, Any]:
        total, idle, steal = cpu_times()
        dt = total - self._t0[0]
        return {
            "loadavg_before": [round(x, 2) for x in self.loadavg_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "busy_pct": round(100 * (1 - (idle - self._t0[1]) / dt), 1) if dt else 0.0,
            "steal_pct": round(100 * (steal - self._t0[2]) / dt, 2) if dt else 0.0,
        }


def summary(samples: list[float]) -> dict[str, float]:
    """min / median / max (and n) of non-empty samples, rounded to milliseconds."""
    return {
        "n": len(samples),
        "min": round(min(samples), 3),
        "median": round(statistics.median(samples), 3),
        "max": round(max(samples), 3),
    }


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on `host` a moment ago."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def local_image_id(name: str) -> str:
    """The id of a local image (so Docker Swarm uses it without asking a registry)."""
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"image {name} not found: run `make image` first ({out.stderr.strip()})")
    return out.stdout.strip()


def host_info() -> dict[str, Any]:
    """Hostname, CPUs, CPU model, memory, kernel, Python: the method section of a report."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    docker_version = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "hostname": socket.gethostname(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "dockerd": docker_version,
    }
