"""CA test harness: a manager's join port and cluster port on 127.0.0.1:0 over a real MemoryStore.

The cluster port also serves a tiny Control servicer whose GetNode echoes `current_peer()`, so
tests can check both authorisation and the peer binding without the real control API.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import grpc
from cryptography import x509
from grpc import aio

from swarmd import errors
from swarmd.api import ca_pb2, ca_pb2_grpc, control_pb2, control_pb2_grpc, objects_pb2
from swarmd.ca import bootstrap
from swarmd.ca.certstore import NodeCredentials, credentials_from_pem
from swarmd.ca.rootca import Role, RootCA, generate_key, key_to_pem, new_csr
from swarmd.ca.security import SecurityConfig
from swarmd.ca.server import CAServicer, NodeCAServicer
from swarmd.identity import new_id
from swarmd.manager.store import MemoryStore
from swarmd.rpc import server as rpcserver
from swarmd.rpc.auth import current_peer


class CountingNodeCA(NodeCAServicer):
    """NodeCAServicer that records every IssueNodeCertificate it receives."""

    def __init__(self, store: MemoryStore, root: RootCA) -> None:
        super().__init__(store, root)
        self.issue_calls = 0

    async def IssueNodeCertificate(self, request, context):  # noqa: N802
        self.issue_calls += 1
        return await super().IssueNodeCertificate(request, context)


async def _echo_get_node(request, context) -> control_pb2.GetNodeResponse:
    """Control.GetNode stand-in: answers with the caller as seen through current_peer()."""
    peer = current_peer()
    if peer is None:
        raise errors.Unauthenticated("no peer bound")
    node = objects_pb2.Node(id=peer.node_id)
    node.description.hostname = f"{peer.role.value}/{peer.cluster_id}"
    return control_pb2.GetNodeResponse(node=node)


def echo_control_handler() -> grpc.GenericRpcHandler:
    """A Control service with only GetNode (a generic handler: no abstract servicer to fill)."""
    return grpc.method_handlers_generic_handler(
        "swarmkit.v1.Control",
        {
            "GetNode": grpc.unary_unary_rpc_method_handler(
                _echo_get_node,
                request_deserializer=control_pb2.GetNodeRequest.FromString,
                response_serializer=control_pb2.GetNodeResponse.SerializeToString,
            )
        },
    )


@dataclass
class Manager:
    """A running manager CA: stores, servers, ports and the bootstrap material."""

    boot: bootstrap.ClusterBootstrap
    store: MemoryStore
    security: SecurityConfig
    node_ca: CountingNodeCA
    join_port: int
    cluster_port: int
    servers: list[aio.Server] = field(default_factory=list)

    @property
    def join_addr(self) -> str:
        return f"127.0.0.1:{self.join_port}"

    @property
    def cluster_addr(self) -> str:
        return f"127.0.0.1:{self.cluster_port}"

    @property
    def root(self) -> RootCA:
        return self.boot.root_ca

    async def stop(self) -> None:
        for srv in self.servers:
            await srv.stop(None)

    async def set_join_tokens(self, worker: str | None = None, manager: str | None = None) -> None:
        def fn(tx):
            cluster = tx.clusters.list()[0]
            if worker is not None:
                cluster.root_ca.join_tokens.worker = worker
            if manager is not None:
                cluster.root_ca.join_tokens.manager = manager
            tx.clusters.update(cluster)

        await self.store.update(fn)

    def issue(
        self, role: Role, *, cluster_id: str | None = None, root: RootCA | None = None
    ) -> NodeCredentials:
        """Credentials signed directly (no RPC), for a node that may not be in the store."""
        signer = root or self.root
        key = generate_key()
        cert = signer.sign_csr(
            new_csr(key), new_id(), role, cluster_id or self.boot.cluster_id, ["127.0.0.1"]
        )
        return credentials_from_pem(key_to_pem(key), cert, signer.cert_pem)


async def start_manager(node_cert_expiry: timedelta | None = None) -> Manager:
    boot = bootstrap.init_cluster_ca("mgr-1", "127.0.0.1:4242")
    store = MemoryStore(proposer=None)
    cluster = boot.cluster_object()
    if node_cert_expiry is not None:
        cluster.spec.ca_config.node_cert_expiry.FromTimedelta(node_cert_expiry)

    def create(tx):
        tx.clusters.create(cluster)
        tx.nodes.create(boot.node_object())

    await store.update(create)
    security = SecurityConfig(boot.credentials)
    ca = CAServicer(boot.root_ca)
    node_ca = CountingNodeCA(store, boot.root_ca)

    cluster_srv, cluster_port = rpcserver.cluster_server(security, boot.cluster_id, "127.0.0.1:0")
    ca_pb2_grpc.add_CAServicer_to_server(ca, cluster_srv)
    ca_pb2_grpc.add_NodeCAServicer_to_server(node_ca, cluster_srv)
    cluster_srv.add_generic_rpc_handlers((echo_control_handler(),))

    key_pem, chain_pem = boot.join_cert
    join_srv, join_port = rpcserver.join_server(key_pem, chain_pem, "127.0.0.1:0")
    ca_pb2_grpc.add_CAServicer_to_server(ca, join_srv)
    ca_pb2_grpc.add_NodeCAServicer_to_server(node_ca, join_srv)

    for srv in (cluster_srv, join_srv):
        await srv.start()
    return Manager(boot, store, security, node_ca, join_port, cluster_port, [cluster_srv, join_srv])


def server_cert_serial(addr: str, creds: NodeCredentials, tmp: Path) -> int:
    """Open a fresh TLS connection with a client certificate; the server certificate's serial."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "c.crt").write_bytes(creds.cert_pem)
    (tmp / "c.key").write_bytes(creds.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    ctx.load_cert_chain(tmp / "c.crt", tmp / "c.key")
    host, port = addr.rsplit(":", 1)
    import socket

    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="swarm-manager") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def mtls_channel(addr: str, creds: NodeCredentials | None, root_pem: bytes) -> aio.Channel:
    """A channel to the cluster port; creds None = no client certificate."""
    if creds is None:
        cc = grpc.ssl_channel_credentials(root_certificates=root_pem)
    else:
        cc = grpc.ssl_channel_credentials(
            root_certificates=root_pem, private_key=creds.key_pem, certificate_chain=creds.cert_pem
        )
    return aio.secure_channel(
        addr, cc, options=[("grpc.ssl_target_name_override", "swarm-manager")]
    )


async def get_node(channel: aio.Channel) -> objects_pb2.Node:
    resp = await control_pb2_grpc.ControlStub(channel).GetNode(
        control_pb2.GetNodeRequest(node_id="x"), timeout=5
    )
    return resp.node


async def get_root(channel: aio.Channel) -> bytes:
    resp = await ca_pb2_grpc.CAStub(channel).GetRootCACertificate(
        ca_pb2.GetRootCACertificateRequest(), timeout=5
    )
    return resp.certificate
