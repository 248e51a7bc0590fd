"""Service and task logs through the log broker, in one process: real mTLS gRPC, FakeExecutors.

The operator's SubscribeLogs goes to the manager's control socket; the broker fans it out over
the agents' own sessions (ListenSubscriptions) and their PublishLogs streams come back. What is
asserted is what `swarmctl service logs` would show: each line with its task and node, gaps
for nodes that are gone or silent, and that a request without follow always ends.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc import aio

from swarmd.api import control_pb2, logs_pb2, logs_pb2_grpc, specs_pb2, types_pb2
from swarmd.rpc.channel import control_channel
from swarmd.testing.fake_executor import Behaviour, FakeExecutor
from tests.cluster.harness import InProcessCluster, poll

RUNNING = types_pb2.TASK_STATE_RUNNING
OUT = logs_pb2.LOG_STREAM_STDOUT
ERR = logs_pb2.LOG_STREAM_STDERR
CHATTY = Behaviour(stdout=("hello", "working"), stderr=("warned",))


def _spec(name: str, replicas: int) -> specs_pb2.ServiceSpec:
    spec = specs_pb2.ServiceSpec()
    spec.annotations.name = name
    spec.task.container.image = "busybox"
    spec.task.restart.delay.FromSeconds(0)
    spec.replicated.replicas = replicas
    return spec


def _chatty() -> FakeExecutor:
    ex = FakeExecutor()
    ex.script_service("web", CHATTY)
    return ex


async def _service(c: InProcessCluster, replicas: int, name: str = "web") -> str:
    resp = await c.stub().CreateService(
        control_pb2.CreateServiceRequest(spec=_spec(name, replicas))
    )
    sid = resp.service.id

    async def running() -> bool:
        tasks = await c.tasks(sid)
        return sum(t.status.state == RUNNING for t in tasks) == replicas

    await poll(running, what=f"{replicas} running tasks")
    return sid


@pytest.fixture
async def logs(cluster: InProcessCluster):
    channels: list[aio.Channel] = []

    def make() -> logs_pb2_grpc.LogsAsyncStub:
        mgr = cluster.members["mgr"]
        channel = control_channel(str(mgr.config.control_socket))
        channels.append(channel)
        return logs_pb2_grpc.LogsStub(channel)

    yield make
    for ch in channels:
        await ch.close()


def _request(
    service_id: str = "", *, follow: bool = False, tail: int = 0, task_id: str = ""
) -> logs_pb2.SubscribeLogsRequest:
    req = logs_pb2.SubscribeLogsRequest()
    if service_id:
        req.selector.service_ids.append(service_id)
    if task_id:
        req.selector.task_ids.append(task_id)
    req.options.follow = follow
    req.options.tail = tail
    return req


async def _collect(stub, req, limit: float = 10.0):
    lines: list[logs_pb2.LogMessage] = []
    gaps: list[str] = []
    async with asyncio.timeout(limit):
        async for msg in stub.SubscribeLogs(req):
            lines.extend(msg.messages)
            if msg.gap:
                gaps.append(msg.gap)
    return lines, gaps


async def _wait_log_listeners(cluster: InProcessCluster, count: int) -> None:
    async def listening() -> bool:
        return len(_broker(cluster).connected()) == count

    await poll(listening, what=f"{count} agents listening for log subscriptions")


def _broker(cluster: InProcessCluster):
    # The broker is the manager's; its connected() tells when agents are listening.
    manager = cluster.members["mgr"].node.manager
    assert manager is not None
    return manager.log_broker


async def test_service_logs_of_replicas_on_two_nodes_name_their_task_and_node(
    cluster: InProcessCluster, logs
) -> None:
    await cluster.start("mgr", _chatty())
    await cluster.add_worker("w1", _chatty())
    await _wait_log_listeners(cluster, 2)
    sid = await _service(cluster, 3)
    tasks = {t.id: t for t in await cluster.tasks(sid)}
    nodes = {n.id for n in (await cluster.nodes()).values()}

    lines, gaps = await _collect(logs(), _request(sid))

    assert gaps == []
    assert {ln.context.task_id for ln in lines} == set(tasks)
    assert {ln.context.node_id for ln in lines} == nodes
    for ln in lines:
        assert ln.context.service_id == sid
        assert ln.context.node_id == tasks[ln.context.task_id].node_id
        assert ln.timestamp.seconds > time.time() - 120
    per_task = {
        tid: [(ln.stream, ln.data) for ln in lines if ln.context.task_id == tid] for tid in tasks
    }
    for got in per_task.values():
        assert got == [(OUT, b"hello"), (OUT, b"working"), (ERR, b"warned")]

    # tail -(n+1): the last n lines of each task; task selection narrows to one task.
    one = next(iter(tasks))
    lines, _ = await _collect(logs(), _request(task_id=one, tail=-3))
    assert [(ln.context.task_id, ln.data) for ln in lines] == [(one, b"working"), (one, b"warned")]


async def test_follow_streams_new_lines_and_the_replacement_of_a_failed_task(
    cluster: InProcessCluster, logs
) -> None:
    mgr = await cluster.start("mgr", _chatty())
    await _wait_log_listeners(cluster, 1)
    sid = await _service(cluster, 1)
    (first,) = await cluster.tasks(sid)
    seen: asyncio.Queue[logs_pb2.LogMessage] = asyncio.Queue()

    async def follow() -> None:
        async for msg in logs().SubscribeLogs(_request(sid, follow=True, tail=-2)):
            for ln in msg.messages:
                seen.put_nowait(ln)

    async def next_lines(n: int) -> list[tuple[str, bytes]]:
        async with asyncio.timeout(10):
            return [((ln := await seen.get()).context.task_id, ln.data) for _ in range(n)]

    reader = asyncio.get_running_loop().create_task(follow())
    try:
        # The last line of the backlog (tail 1), then what the task prints from now on.
        assert await next_lines(1) == [(first.id, b"warned")]
        mgr.executor.write(first.id, "later line")
        assert await next_lines(1) == [(first.id, b"later line")]

        mgr.executor.exit(first.id, 1)  # the orchestrator replaces it with a new task
        fresh: list[logs_pb2.LogMessage] = []
        async with asyncio.timeout(20):
            while len(fresh) < 3:
                ln = await seen.get()
                if ln.context.task_id != first.id:
                    fresh.append(ln)
        assert [ln.data for ln in fresh] == [b"hello", b"working", b"warned"]
        assert {t.id for t in await cluster.tasks(sid)} >= {first.id, fresh[0].context.task_id}
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def test_a_node_that_is_down_is_a_gap_and_the_rest_still_comes(
    cluster: InProcessCluster, logs
) -> None:
    await cluster.start("mgr", _chatty())
    w1 = await cluster.add_worker("w1", _chatty())
    await _wait_log_listeners(cluster, 2)
    sid = await _service(cluster, 4)
    nodes = await cluster.nodes()
    on_mgr = {t.id for t in await cluster.tasks(sid) if t.node_id == nodes["mgr"].id}
    assert on_mgr

    await w1.stop()
    await _wait_log_listeners(cluster, 1)
    t0 = time.monotonic()
    lines, gaps = await _collect(logs(), _request(sid))
    assert time.monotonic() - t0 < 2.0
    assert gaps == [f"no logs from node w1 ({nodes['w1'].id}): not connected"]
    assert {ln.context.task_id for ln in lines} == on_mgr


async def test_a_node_that_does_not_answer_is_a_gap_after_the_deadline(
    cluster: InProcessCluster, logs
) -> None:
    await cluster.start("mgr", _chatty())
    stuck = FakeExecutor()
    stuck.script_service("web", Behaviour(stdout=("from w1",), logs_stall=True))
    await cluster.add_worker("w1", stuck)
    await _wait_log_listeners(cluster, 2)
    sid = await _service(cluster, 2)
    nodes = await cluster.nodes()

    t0 = time.monotonic()
    lines, gaps = await _collect(logs(), _request(sid))
    took = time.monotonic() - t0
    assert 1.4 < took < 4.0
    assert gaps == [f"no logs from node w1 ({nodes['w1'].id}): no answer within 1.5s"]
    by_node = {ln.context.node_id for ln in lines}
    assert nodes["mgr"].id in by_node
    # What w1 did send before it stalled is kept.
    assert [ln.data for ln in lines if ln.context.node_id == nodes["w1"].id] == [b"from w1"]


async def test_bad_requests_fail_with_a_clear_error(cluster: InProcessCluster, logs) -> None:
    await cluster.start("mgr")
    stub = logs()
    with pytest.raises(aio.AioRpcError) as err:
        await _collect(stub, _request("no-such-service"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "service no-such-service not found"
    with pytest.raises(aio.AioRpcError) as err:
        await _collect(stub, logs_pb2.SubscribeLogsRequest())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
