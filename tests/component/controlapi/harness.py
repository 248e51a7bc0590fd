"""Control API test harness: a grpc.aio server on 127.0.0.1:0 over a store, fake join tokens."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

from grpc import aio

from tests.component.controlapi import fakestore

fakestore.install()  # no-op once swarmd.manager.store is importable

from swarmd.api import control_pb2_grpc, objects_pb2, types_pb2  # noqa: E402
from swarmd.manager.controlapi import ControlServicer, default_cluster_spec  # noqa: E402
from swarmd.manager.store import MemoryStore  # noqa: E402
from swarmd.rpc.status import StatusInterceptor  # noqa: E402

CA_KEY = b"-----BEGIN EC PRIVATE KEY-----\nnot-a-real-key\n-----END EC PRIVATE KEY-----\n"
CA_CERT = b"-----BEGIN CERTIFICATE-----\nnot-a-real-cert\n-----END CERTIFICATE-----\n"


class TokenFactory:
    """Deterministic stand-in for swarmd.ca.tokens.new_join_token: a new token per call."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self.calls: list[bytes] = []

    def __call__(self, ca_cert: bytes) -> str:
        self.calls.append(ca_cert)
        digest = hashlib.sha256(ca_cert).hexdigest()[:50]
        return f"SWMTKN-1-{digest}-{next(self._counter):025d}"


@dataclass
class Control:
    """A running Control server and a client stub for it."""

    stub: control_pb2_grpc.ControlAsyncStub
    store: MemoryStore
    tokens: TokenFactory


async def start_control(store: MemoryStore) -> tuple[aio.Server, aio.Channel, Control]:
    tokens = TokenFactory()
    server = aio.server(interceptors=[StatusInterceptor()])
    control_pb2_grpc.add_ControlServicer_to_server(
        ControlServicer(store, token_factory=tokens), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    return server, channel, Control(control_pb2_grpc.ControlStub(channel), store, tokens)


def cluster_object(cluster_id: str = "c" * 25) -> objects_pb2.Cluster:
    return objects_pb2.Cluster(
        id=cluster_id,
        spec=default_cluster_spec(),
        root_ca=types_pb2.RootCA(
            ca_key=CA_KEY,
            ca_cert=CA_CERT,
            ca_cert_hash="sha256:abc",
            join_tokens=types_pb2.JoinTokens(worker="SWMTKN-1-w", manager="SWMTKN-1-m"),
        ),
    )
