"""The forwarding handler for a bidirectional stream, over real grpc.aio servers on 127.0.0.1.

No leader-only method of the API streams both ways today, so this drives the handler that
ForwardInterceptor would build for one directly, with a made-up method and plain bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from grpc import aio

from swarmd.api import control_pb2
from swarmd.rpc.forward import _forwarding_handler, _Outbound
from swarmd.rpc.routing import Cardinality, MethodShape

METHOD = "/swarmkit.v1.Test/Chat"


async def test_bidi_stream_is_relayed_both_ways_and_cancel_reaches_the_leader() -> None:
    cancelled = asyncio.Event()

    async def chat(requests: AsyncIterator[bytes], context) -> AsyncIterator[bytes]:
        try:
            async for item in requests:
                yield item.upper()
            await asyncio.Event().wait()  # stays open after the caller half-closes
        except asyncio.CancelledError:
            cancelled.set()
            raise

    leader = aio.server()
    leader.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "swarmkit.v1.Test", {"Chat": grpc.stream_stream_rpc_method_handler(chat)}
            ),
        )
    )
    leader_port = leader.add_insecure_port("127.0.0.1:0")
    to_leader = aio.insecure_channel(f"127.0.0.1:{leader_port}")

    async def prepare(context, shape: MethodShape) -> _Outbound:
        return _Outbound(f"127.0.0.1:{leader_port}", to_leader, (), None)

    shape = MethodShape(
        METHOD,
        Cardinality.STREAM_STREAM,
        control_pb2.GetNodeRequest.DESCRIPTOR,
        control_pb2.GetNodeResponse.DESCRIPTOR,
    )
    follower = aio.server()
    follower.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "swarmkit.v1.Test", {"Chat": _forwarding_handler(shape, prepare)}
            ),
        )
    )
    follower_port = follower.add_insecure_port("127.0.0.1:0")
    client = aio.insecure_channel(f"127.0.0.1:{follower_port}")
    await leader.start()
    await follower.start()
    try:
        call: aio.StreamStreamCall[bytes, bytes] = client.stream_stream(METHOD)()
        got = []
        for word in (b"one", b"two", b"three"):
            await call.write(word)
            got.append(await call.read())
        assert got == [b"ONE", b"TWO", b"THREE"]
        await call.done_writing()
        call.cancel()
        await asyncio.wait_for(cancelled.wait(), 10)
    finally:
        await client.close()
        await to_leader.close()
        await follower.stop(None)
        await leader.stop(None)
