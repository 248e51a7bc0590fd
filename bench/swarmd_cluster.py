"""swarmd processes for benchmarks: a manager and workers on 127.0.0.x sharing the one dockerd.

Used by bench/workload.py. Each node is its own `python -m swarmd` process with its own state
dir under a temp root; the manager is driven through the generated grpc.aio Control client over
its unix socket (one long-lived channel). Workers join with the worker token read from
ListClusters. `close()` kills every process and force-removes every container labelled with one
of the cluster's node ids, then deletes the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench.harness import REPO, free_port
from swarmd.api import control_pb2, control_pb2_grpc, objects_pb2

READY = objects_pb2.NodeStatus.STATE_READY


@dataclass
class SwarmdNode:
    """One swarmd process; restartable on the same state dir (it then rejoins by itself)."""

    root: Path
    hostname: str
    host: str
    log_level: str
    join_addr: str = ""
    join_token: str = ""
    remote_port: int = 0
    join_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.remote_port = self.remote_port or free_port(self.host)
        self.join_port = self.join_port or free_port(self.host)

    @property
    def state_dir(self) -> Path:
        return self.root / self.hostname

    @property
    def socket(self) -> Path:
        return self.state_dir / "swarmd.sock"

    @property
    def join_api(self) -> str:
        return f"{self.host}:{self.join_port}"

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.hostname}.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "swarmd",
            "-d",
            str(self.state_dir),
            "--listen-control-api",
            str(self.socket),
            "--listen-remote-api",
            f"{self.host}:{self.remote_port}",
            "--listen-join-api",
            self.join_api,
            "--hostname",
            self.hostname,
            "--log-level",
            self.log_level,
        ]
        # A restarted node has its certificate already: it must not present the token again.
        if self.join_addr and not (self.state_dir / "certificates").exists():
            cmd += ["--join-addr", self.join_addr, "--join-token", self.join_token]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=dict(os.environ, GRPC_VERBOSITY="ERROR"),
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL: a crashed host agent (its containers keep running)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: a hung host; its connections stay open but nothing answers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class SwarmdCluster:
    """A manager on 127.0.0.1 and workers on 127.0.0.2, .3, ... in a temp dir."""

    log_level: str = "warning"
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="swarmd-bench-")))
    manager: SwarmdNode | None = None
    workers: list[SwarmdNode] = field(default_factory=list)
    node_ids: set[str] = field(default_factory=set)
    _channel: grpc.aio.Channel | None = None

    @property
    def stub(self) -> control_pb2_grpc.ControlAsyncStub:
        assert self._channel is not None, "manager not started"
        return control_pb2_grpc.ControlStub(self._channel)

    async def start_manager(self, wait_s: float = 60) -> None:
        self.manager = SwarmdNode(self.root, "mgr", "127.0.0.1", self.log_level)
        self.manager.start()
        self._channel = grpc.aio.insecure_channel(f"unix:{self.manager.socket}")
        deadline = time.monotonic() + wait_s
        while True:
            if self.manager.pid is None:
                raise RuntimeError(f"swarmd manager exited:\n{self.manager.tail()}")
            if self.manager.socket.exists():
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await self.nodes()
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"swarmd did not answer in {wait_s}s:\n{self.manager.tail()}")
            await asyncio.sleep(0.1)

    async def worker_token(self) -> str:
        resp = await self.stub.ListClusters(control_pb2.ListClustersRequest(), timeout=10)
        return str(resp.clusters[0].root_ca.join_tokens.worker)

    async def add_worker(self, wait_s: float = 60) -> SwarmdNode:
        assert self.manager is not None
        idx = len(self.workers) + 2
        node = SwarmdNode(
            self.root,
            f"wrk{idx - 1}",
            f"127.0.0.{idx}",
            self.log_level,
            join_addr=self.manager.join_api,
            join_token=await self.worker_token(),
        )
        node.start()
        self.workers.append(node)
        await self.wait_ready(node, wait_s)
        return node

    async def restart(self, node: SwarmdNode, wait_s: float = 60) -> None:
        node.start()
        await self.wait_ready(node, wait_s)

    async def wait_ready(self, node: SwarmdNode, wait_s: float = 60) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            n = (await self.nodes()).get(node.hostname)
            if n is not None and n.status.state == READY:
                return
            if node.pid is None:
                raise RuntimeError(f"swarmd {node.hostname} exited:\n{node.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {node.hostname} not READY in {wait_s}s:\n{node.tail()}")
            await asyncio.sleep(0.1)

    async def nodes(self) -> dict[str, objects_pb2.Node]:
        """Nodes by hostname (remembering their ids for the clean-up)."""
        resp = await self.stub.ListNodes(control_pb2.ListNodesRequest(), timeout=10)
        self.node_ids.update(n.id for n in resp.nodes)
        return {n.description.hostname: n for n in resp.nodes}

    def pids(self) -> list[int]:
        nodes = [self.manager, *self.workers]
        return [p for n in nodes if n is not None and (p := n.pid) is not None]

    async def close(self, keep: bool = False) -> None:
        for node in [self.manager, *self.workers]:
            if node is not None:
                node.resume()
                node.kill()
        if self._channel is not None:
            await self._channel.close()
        remove_labelled(["swarmd.node.id=" + i for i in sorted(self.node_ids)])
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)


def remove_labelled(labels: list[str]) -> None:
    """`docker rm -f` of every container carrying one of `labels` (key=value)."""
    for label in labels:
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label={label}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
