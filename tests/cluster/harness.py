"""In-process clusters: real swarmd Nodes (mTLS gRPC on loopback) with FakeExecutors.

Every node is a `swarmd.node.Node` in this test's event loop, with its own state dir and ports,
exactly as `swarmd` runs it, except that tasks run in a `FakeExecutor` instead of Docker. Tests
drive the cluster through the manager's control socket and read the fake containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from grpc import aio

from swarmd.api import control_pb2, control_pb2_grpc, objects_pb2, types_pb2
from swarmd.config import HostPort, NodeConfig, parse_host_port
from swarmd.node import Node
from swarmd.rpc.channel import control_channel
from swarmd.testing.fake_executor import FakeExecutor

T = TypeVar("T")
RUNNING = types_pb2.TASK_STATE_RUNNING


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def poll(
    fn: Callable[[], Awaitable[T | None]],
    within: float = 30,
    what: str = "",
    step: float = 0.05,
) -> T:
    """Call fn until it returns something truthy; fail after timeout with the last value."""
    last: Any = None
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(step)
    raise AssertionError(f"timed out waiting for {what}: last={last!r}")


@dataclass
class Member:
    name: str
    config: NodeConfig
    node: Node
    executor: FakeExecutor
    runner: asyncio.Task[None]

    async def stop(self) -> None:
        self.runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.runner


@dataclass
class InProcessCluster:
    root: Path
    members: dict[str, Member] = field(default_factory=dict)
    manager_join: str = ""
    _channel: aio.Channel | None = None

    def _config(self, name: str, join: str = "", token: str = "") -> NodeConfig:
        state = self.root / name
        state.mkdir(mode=0o700, exist_ok=True)
        return NodeConfig(
            state_dir=state,
            listen_remote_api=HostPort("127.0.0.1", free_port()),
            listen_join_api=HostPort("127.0.0.1", free_port()),
            control_socket=state / "swarmd.sock",
            advertise_addr="",
            hostname=name,
            join_addr=parse_host_port(join, "join") if join else None,
            join_token=token,
            engine_addr="",
        )

    async def start(self, name: str, executor: FakeExecutor | None = None, **join: str) -> Member:
        cfg = self._config(name, **join)
        member = self._run(name, cfg, executor or FakeExecutor())
        if not join:
            self.manager_join = str(cfg.listen_join_api)
            await poll(lambda: _ready(member), what=f"manager {name} serving")
            self._channel = control_channel(str(cfg.control_socket))
        return member

    async def restart(self, name: str) -> Member:
        """Stop a node and start it again on its state dir, ports and executor (no join)."""
        old = self.members[name]
        await old.stop()
        cfg = dataclasses.replace(old.config, join_addr=None, join_token="")
        return self._run(name, cfg, old.executor)

    def _run(self, name: str, cfg: NodeConfig, fake: FakeExecutor) -> Member:
        @contextlib.asynccontextmanager
        async def entered() -> AsyncIterator[FakeExecutor]:
            yield fake

        node = Node(cfg, executor_factory=lambda _id, _addr: entered())
        runner = asyncio.get_running_loop().create_task(node.run(), name=f"node-{name}")
        member = Member(name, cfg, node, fake, runner)
        self.members[name] = member
        return member

    async def add_worker(self, name: str, executor: FakeExecutor | None = None) -> Member:
        cluster = (await self.stub().ListClusters(control_pb2.ListClustersRequest())).clusters[0]
        member = await self.start(
            name, executor, join=self.manager_join, token=cluster.root_ca.join_tokens.worker
        )
        await self.wait_ready(name)
        return member

    def stub(self) -> control_pb2_grpc.ControlAsyncStub:
        assert self._channel is not None
        return control_pb2_grpc.ControlStub(self._channel)

    async def nodes(self) -> dict[str, objects_pb2.Node]:
        resp = await self.stub().ListNodes(control_pb2.ListNodesRequest(), timeout=10)
        return {n.description.hostname: n for n in resp.nodes}

    async def wait_ready(self, name: str) -> None:
        async def ready() -> bool:
            n = (await self.nodes()).get(name)
            return n is not None and n.status.state == objects_pb2.NodeStatus.STATE_READY

        await poll(ready, what=f"{name} READY")

    async def tasks(self, service_id: str) -> list[objects_pb2.Task]:
        req = control_pb2.ListTasksRequest(service_ids=[service_id])
        return list((await self.stub().ListTasks(req, timeout=10)).tasks)

    async def spread(self, service_id: str) -> Counter[str]:
        names = {n.id: h for h, n in (await self.nodes()).items()}
        return Counter(
            names[t.node_id]
            for t in await self.tasks(service_id)
            if t.desired_state == RUNNING and t.status.state == RUNNING
        )

    async def close(self) -> None:
        for m in reversed(list(self.members.values())):
            await m.stop()
        if self._channel is not None:
            await self._channel.close()


async def _ready(member: Member) -> bool:
    mgr = member.node.manager
    if member.runner.done():
        member.runner.result()  # raise what stopped it
    return mgr is not None and mgr.ready.is_set()
