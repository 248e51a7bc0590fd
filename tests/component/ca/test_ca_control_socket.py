"""The local control socket: mode 0600, insecure, no peer (the local operator)."""

from __future__ import annotations

import stat

import grpc

from swarmd.api import control_pb2, control_pb2_grpc
from swarmd.rpc import server as rpcserver
from swarmd.rpc.auth import current_peer
from swarmd.rpc.channel import control_channel


async def _list_nodes(request, context) -> control_pb2.ListNodesResponse:
    assert current_peer() is None  # the local operator
    return control_pb2.ListNodesResponse()


_HANDLER = grpc.method_handlers_generic_handler(
    "swarmkit.v1.Control",
    {
        "ListNodes": grpc.unary_unary_rpc_method_handler(
            _list_nodes,
            request_deserializer=control_pb2.ListNodesRequest.FromString,
            response_serializer=control_pb2.ListNodesResponse.SerializeToString,
        )
    },
)


async def test_control_socket_is_0600_and_serves(tmp_path):
    path = tmp_path / "run" / "ctl.sock"
    server = rpcserver.control_server(path)
    server.add_generic_rpc_handlers((_HANDLER,))
    await server.start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        async with control_channel(str(path)) as ch:
            await control_pb2_grpc.ControlStub(ch).ListNodes(
                control_pb2.ListNodesRequest(), timeout=5
            )
    finally:
        await server.stop(None)
