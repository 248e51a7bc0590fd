"""Three swarmd managers as real processes on 127.0.0.1-3, for the Raft benchmarks.

Used by bench/raft.py. Each manager is a `bench.swarmd_cluster.SwarmdNode` (its own state dir,
process and log file); the second and third join the first with the manager join token read
from ListClusters. Every manager is reached through its own control socket. The leader is the
node whose `manager_status.leader` is set in ListNodes; the raft term is read from the managers'
logs (the core logs `became leader ... term=N` and `became follower ... term=N` at info level),
since no API exposes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import grpc

from bench.swarmd_cluster import SwarmdNode
from swarmd.api import control_pb2, control_pb2_grpc, objects_pb2, types_pb2

REACHABLE = types_pb2.ManagerStatus.REACHABILITY_REACHABLE
# A console log line: "2026-12-01T09:36:27.123456Z [info     ] became leader   id=.. term=5"
_LINE = re.compile(r"^(\S+) \[\s*(\w+)\s*\] (.+?)\s+(?=[\w.]+=)")
_TERM = re.compile(r"\bterm=(\d+)")
ELECTION_EVENTS = ("became pre-candidate", "became candidate", "starting election")


@dataclass
class LogEvent:
    """One raft line of a manager's log: when (wall clock), what, in which term."""

    at: float
    manager: str
    event: str
    term: int


@dataclass
class ManagerCluster:
    """m1 founds the cluster on 127.0.0.1; m2 and m3 join it as managers."""

    log_level: str = "info"
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="swarmd-bench-raft-")))
    managers: list[SwarmdNode] = field(default_factory=list)
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    def stub(self, name: str) -> control_pb2_grpc.ControlAsyncStub:
        node = self.by_name(name)
        if name not in self._channels:
            self._channels[name] = grpc.aio.insecure_channel(f"unix:{node.socket}")
        return control_pb2_grpc.ControlStub(self._channels[name])

    def by_name(self, name: str) -> SwarmdNode:
        return next(m for m in self.managers if m.hostname == name)

    def alive(self) -> list[SwarmdNode]:
        return [m for m in self.managers if m.pid is not None]

    async def start(self, wait_s: float = 90) -> None:
        first = SwarmdNode(self.root, "m1", "127.0.0.1", self.log_level)
        first.start()
        self.managers.append(first)
        await self._until(lambda: self._answers("m1"), wait_s, "m1 to answer")
        clusters = await self.stub("m1").ListClusters(control_pb2.ListClustersRequest(), timeout=10)
        token = str(clusters.clusters[0].root_ca.join_tokens.manager)
        for i in (2, 3):
            m = SwarmdNode(
                self.root,
                f"m{i}",
                f"127.0.0.{i}",
                self.log_level,
                join_addr=first.join_api,
                join_token=token,
            )
            m.start()
            self.managers.append(m)
        await self.wait_reachable(["m1", "m2", "m3"], wait_s)

    async def _answers(self, name: str) -> bool:
        node = self.by_name(name)
        if node.pid is None:
            raise RuntimeError(f"swarmd {name} exited:\n{node.tail()}")
        if not node.socket.exists():
            return False
        try:
            await self.stub(name).ListNodes(control_pb2.ListNodesRequest(), timeout=2)
        except grpc.aio.AioRpcError:
            return False
        return True

    async def _until(self, pred: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
        deadline = time.monotonic() + within
        while not await pred():
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {m.hostname}\n{m.tail(15)}" for m in self.managers)
                raise RuntimeError(f"timed out after {within}s waiting for {what}\n{tails}")
            await asyncio.sleep(0.1)

    async def nodes(self, via: str, rpc_timeout: float = 2) -> dict[str, objects_pb2.Node]:
        resp = await self.stub(via).ListNodes(control_pb2.ListNodesRequest(), timeout=rpc_timeout)
        return {n.description.hostname: n for n in resp.nodes}

    async def leader(self, via: str | None = None) -> str:
        """The leader's hostname as ListNodes through `via` (any live manager) reports it."""
        for m in [self.by_name(via)] if via else self.alive():
            with contextlib.suppress(grpc.aio.AioRpcError):
                for name, n in (await self.nodes(m.hostname)).items():
                    if n.manager_status.leader:
                        return name
        return ""

    async def wait_reachable(self, names: list[str], within: float = 90) -> None:
        """Until every named manager answers and is leader or reachable in a live one's view."""

        async def ok() -> bool:
            for name in names:
                if not await self._answers(name):
                    return False
            try:
                nodes = await self.nodes(self.alive()[0].hostname)
            except grpc.aio.AioRpcError:
                return False
            return all(
                n in nodes
                and (
                    nodes[n].manager_status.leader
                    or nodes[n].manager_status.reachability == REACHABLE
                )
                for n in names
            )

        await self._until(ok, within, f"managers {names} reachable")

    async def restart(self, name: str, within: float = 90) -> None:
        node = self.by_name(name)
        if name in self._channels:
            await self._channels.pop(name).close()
        node.start()
        await self.wait_reachable([m.hostname for m in self.managers], within)

    def raft_events(self) -> list[LogEvent]:
        """Every log line of every manager that carries a raft term, in time order."""
        out: list[LogEvent] = []
        for m in self.managers:
            try:
                text = m.log_path.read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                match = _LINE.match(line)
                term = _TERM.search(line)
                if match is None or term is None:
                    continue
                try:
                    at = datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()
                except ValueError:
                    continue
                out.append(LogEvent(at, m.hostname, match.group(3).strip(), int(term.group(1))))
        return sorted(out, key=lambda e: e.at)

    def term(self) -> int:
        """The highest raft term any manager has logged."""
        return max((e.term for e in self.raft_events()), default=0)

    async def close(self, keep: bool = False) -> None:
        for m in self.managers:
            m.resume()
            m.kill()
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)
