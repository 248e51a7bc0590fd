"""ForwardInterceptor's choice of handler, the leader channel cache, and copied metadata."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from swarmd.manager.leadership import LeadershipCell, retarget_leader_channels
from swarmd.rpc.forward import ForwardInterceptor, LeaderChannels, _copied_metadata
from swarmd.rpc.identity import NODE_ID_KEY, ROLE_KEY


class FakeChannel:
    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.closed = False

    async def close(self, grace: float | None = None) -> None:
        self.closed = True
        await asyncio.sleep(0)  # a real close yields to the loop; let others run meanwhile


class Dialer:
    def __init__(self) -> None:
        self.dialed: list[FakeChannel] = []

    def closed(self) -> list[bool]:
        return [c.closed for c in self.dialed]

    def __call__(self, addr: str) -> Any:
        channel = FakeChannel(addr)
        self.dialed.append(channel)
        return channel


class Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


LOCAL: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)


async def continuation(details) -> grpc.RpcMethodHandler[Any, Any]:
    return LOCAL


def make(cell: LeadershipCell) -> ForwardInterceptor:
    return ForwardInterceptor(cell, LeaderChannels(Dialer()))


def follower() -> LeadershipCell:
    cell = LeadershipCell()
    cell.publish(is_leader=False, leader_id="l", leader_addr="10.0.0.1:4242", term=2)
    return cell


async def test_leader_serves_leader_only_methods_locally() -> None:
    cell = LeadershipCell()
    cell.publish(is_leader=True, leader_id="me", leader_addr=None, term=1)
    handler = await make(cell).intercept_service(
        continuation, Details("/swarmkit.v1.Control/CreateService")
    )
    assert handler is LOCAL


async def test_follower_serves_local_methods_locally() -> None:
    for method in ("/swarmkit.v1.Watch/Watch", "/swarmkit.v1.Raft/ProcessRaftMessage"):
        handler = await make(follower()).intercept_service(continuation, Details(method))
        assert handler is LOCAL, method


@pytest.mark.parametrize(
    ("method", "kind"),
    [
        ("/swarmkit.v1.Control/CreateService", "unary_unary"),
        ("/swarmkit.v1.Dispatcher/Session", "unary_stream"),
        ("/swarmkit.v1.LogBroker/PublishLogs", "stream_unary"),
    ],
)
async def test_follower_forwards_leader_only_methods_as_raw_bytes(method: str, kind: str) -> None:
    handler = await make(follower()).intercept_service(continuation, Details(method))
    assert handler is not None
    assert handler is not LOCAL
    assert getattr(handler, kind) is not None
    # Bytes pass through: nothing decoded on the follower.
    assert handler.request_deserializer is None
    assert handler.response_serializer is None


async def test_follower_without_known_leader_still_picks_the_forwarding_handler() -> None:
    # The refusal ("no leader elected yet; retry") happens when the call runs (component test).
    cell = LeadershipCell()
    handler = await make(cell).intercept_service(
        continuation, Details("/swarmkit.v1.Control/ListNodes")
    )
    assert handler is not LOCAL


async def test_channels_reused_for_one_leader_and_closed_on_change() -> None:
    dialer = Dialer()
    channels = LeaderChannels(dialer)
    first = await channels.channel("10.0.0.1:4242")
    assert await channels.channel("10.0.0.1:4242") is first
    await channels.channel("10.0.0.2:4242")
    assert [c.addr for c in dialer.dialed] == ["10.0.0.1:4242", "10.0.0.2:4242"]
    assert dialer.closed() == [True, False]
    await channels.retarget("10.0.0.2:4242")
    assert dialer.closed() == [True, False]
    await channels.close()
    assert dialer.closed() == [True, True]
    assert channels.addr is None


async def test_concurrent_callers_after_a_change_share_one_new_channel() -> None:
    dialer = Dialer()
    channels = LeaderChannels(dialer)
    await channels.channel("10.0.0.1:4242")
    got = await asyncio.gather(*(channels.channel("10.0.0.2:4242") for _ in range(3)))
    assert len({id(c) for c in got}) == 1
    assert [c.addr for c in dialer.dialed] == ["10.0.0.1:4242", "10.0.0.2:4242"]
    assert dialer.closed() == [True, False]


async def test_retarget_leader_channels_follows_leadership() -> None:
    dialer = Dialer()
    channels = LeaderChannels(dialer)
    cell = follower()
    await channels.channel("10.0.0.1:4242")
    task = asyncio.create_task(retarget_leader_channels(cell, channels))
    try:
        await asyncio.sleep(0.01)
        assert dialer.closed() == [False]  # still the leader's address
        cell.publish(is_leader=False, leader_id="n", leader_addr="10.0.0.3:4242", term=3)
        async with asyncio.timeout(5):
            while dialer.closed() != [True]:  # noqa: ASYNC110 - polls a fake's flag
                await asyncio.sleep(0.001)
        assert channels.addr is None
        await channels.channel("10.0.0.3:4242")
        cell.publish(is_leader=True, leader_id="me", leader_addr=None, term=4)
        async with asyncio.timeout(5):
            while dialer.closed() != [True, True]:  # noqa: ASYNC110 - polls a fake's flag
                await asyncio.sleep(0.001)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_copied_metadata_drops_grpc_entries_and_forwarded_claims() -> None:
    md = (
        ("x-request-id", "abc"),
        ("trace-bin", b"\x00\x01"),
        ("user-agent", "grpc-python/1.85"),
        ("grpc-accept-encoding", "gzip"),
        (NODE_ID_KEY, "forged"),
        (ROLE_KEY.upper(), "swarm-manager"),
    )
    assert _copied_metadata(md) == (("x-request-id", "abc"), ("trace-bin", b"\x00\x01"))
    assert _copied_metadata(None) == ()
