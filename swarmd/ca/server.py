"""The CA and NodeCA gRPC servicers: root certificate, joining with a token, renewal.

CA layer, served by every manager on the join port (TLS, no client certificate) and on the
cluster port (mTLS, behind `rpc.auth.AuthInterceptor`). The manager builds them with its store
and the cluster's `RootCA` (with key). IssueNodeCertificate decides by the connection:

- no authenticated peer (join port): a join. The token must carry our root's digest and equal the
  cluster's worker or manager token (constant-time); a Node is created with a fresh id and the
  certificate is signed at once (swarmkit signs in a loop on the leader; with one CA and
  synchronous signing the PENDING state is never observable here).
- an authenticated peer (cluster port): a renewal for the peer's node id, with the role the Node
  object has now, so a promotion or demotion takes effect at the node's next renewal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol, TypeVar

import structlog
from grpc import aio

from swarmd import errors
from swarmd.api import ca_pb2, ca_pb2_grpc, objects_pb2, specs_pb2, types_pb2
from swarmd.ca.peer import Peer, current_peer
from swarmd.ca.rootca import DEFAULT_NODE_CERT_EXPIRY, Role, RootCA
from swarmd.ca.tokens import parse_join_token, tokens_equal
from swarmd.identity import new_id

_log = structlog.get_logger(component="ca")

R = TypeVar("R")
# swarmkit's default remotes weight for a manager nobody has observed yet.
_DEFAULT_MANAGER_WEIGHT = 10


class NodeReader(Protocol):
    """The node table as the CA reads it (a subset of the store's ReadTable)."""

    def get(self, obj_id: str) -> objects_pb2.Node | None: ...

    def list(self) -> list[objects_pb2.Node]: ...


class NodeWriter(NodeReader, Protocol):
    """The node table as the CA writes it."""

    def create(self, obj: objects_pb2.Node) -> objects_pb2.Node: ...

    def update(self, obj: objects_pb2.Node) -> objects_pb2.Node: ...


class ClusterReader(Protocol):
    """The cluster table (it holds the one Cluster object)."""

    def list(self) -> list[objects_pb2.Cluster]: ...


class CAReadTx(Protocol):
    """What the CA reads in a store transaction."""

    @property
    def nodes(self) -> NodeReader: ...

    @property
    def clusters(self) -> ClusterReader: ...


class CATx(Protocol):
    """What the CA writes in a store transaction."""

    @property
    def nodes(self) -> NodeWriter: ...

    @property
    def clusters(self) -> ClusterReader: ...


class CAStore(Protocol):
    """The part of `manager.store.MemoryStore` the CA uses (docs/design/store-api.md).

    A protocol, not an import: the manager depends on the CA, not the other way round.
    """

    def view(self, fn: Callable[[CAReadTx], R]) -> R: ...

    async def update(self, fn: Callable[[CATx], R]) -> R: ...


def _only_cluster(tx: CAReadTx) -> objects_pb2.Cluster:
    clusters = tx.clusters.list()
    if not clusters:
        raise errors.Unavailable("the cluster is not initialised yet")
    return clusters[0]


def cert_expiry(cluster: objects_pb2.Cluster) -> timedelta:
    """The node certificate validity configured in the cluster spec, or the 90-day default."""
    expiry = cluster.spec.ca_config.node_cert_expiry
    if expiry.seconds <= 0 and expiry.nanos <= 0:
        return DEFAULT_NODE_CERT_EXPIRY
    return expiry.ToTimedelta()


def _managers(nodes: Sequence[objects_pb2.Node]) -> list[types_pb2.WeightedPeer]:
    return [
        types_pb2.WeightedPeer(
            node_id=n.id, addr=n.manager_status.addr, weight=_DEFAULT_MANAGER_WEIGHT
        )
        for n in nodes
        if n.role == types_pb2.NODE_ROLE_MANAGER and n.manager_status.addr
    ]


class CAServicer(ca_pb2_grpc.CAServicer):
    """Hands out the root CA certificate to anyone who asks (it is public)."""

    def __init__(self, root_ca: RootCA) -> None:
        self._root_pem = root_ca.cert_pem

    async def GetRootCACertificate(  # noqa: N802 - gRPC method name
        self,
        request: ca_pb2.GetRootCACertificateRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> ca_pb2.GetRootCACertificateResponse:
        """The root certificate as PEM."""
        return ca_pb2.GetRootCACertificateResponse(certificate=self._root_pem)


class NodeCAServicer(ca_pb2_grpc.NodeCAServicer):
    """Issues node certificates: joins with a token, renewals with a valid certificate."""

    def __init__(self, store: CAStore, root_ca: RootCA | None = None) -> None:
        if root_ca is not None and root_ca.key is None:
            raise errors.FailedPrecondition("the node ca needs the root ca private key")
        self._store = store
        # None: read from the cluster object when first needed (a manager that just joined
        # serves before the cluster state has reached it through raft).
        self._root_ca = root_ca

    @property
    def _root(self) -> RootCA:
        if self._root_ca is None:
            cluster = self._store.view(_only_cluster)
            self._root_ca = RootCA.from_pem(cluster.root_ca.ca_cert, cluster.root_ca.ca_key)
        return self._root_ca

    async def IssueNodeCertificate(  # noqa: N802 - gRPC method name
        self,
        request: ca_pb2.IssueNodeCertificateRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> ca_pb2.IssueNodeCertificateResponse:
        """Join (token, no peer certificate) or renew (peer certificate).

        Raises:
            Unauthenticated: no token on the join port, or an invalid or rotated token.
            InvalidArgument: a malformed token or CSR.
            PermissionDenied: a renewal for a node no longer in the cluster.
        """
        peer = current_peer()
        if peer is not None:
            return await self._renew(peer, request)
        if not request.token:
            raise errors.Unauthenticated("a join token is required to join the cluster")
        return await self._join(request)

    async def NodeCertificateStatus(  # noqa: N802 - gRPC method name
        self,
        request: ca_pb2.NodeCertificateStatusRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> ca_pb2.NodeCertificateStatusResponse:
        """The issuance state and certificate of a node.

        Raises:
            NotFound: no node has this id.
        """
        node_id = request.node_id
        node = self._store.view(lambda tx: tx.nodes.get(node_id))
        if node is None:
            raise errors.NotFound("node", node_id)
        return ca_pb2.NodeCertificateStatusResponse(
            status=node.certificate.status, certificate=node.certificate
        )

    def _role_for_token(self, token: str, cluster: objects_pb2.Cluster) -> Role:
        parsed = parse_join_token(token)
        if parsed.digest != self._root.digest:
            raise errors.Unauthenticated("invalid join token: it belongs to another root ca")
        tokens = cluster.root_ca.join_tokens
        # Compare against both so the time taken does not tell which one (if any) matched.
        is_manager = tokens_equal(token, tokens.manager)
        is_worker = tokens_equal(token, tokens.worker)
        if is_manager:
            return Role.MANAGER
        if is_worker:
            return Role.WORKER
        raise errors.Unauthenticated("invalid join token")

    async def _join(
        self, request: ca_pb2.IssueNodeCertificateRequest
    ) -> ca_pb2.IssueNodeCertificateResponse:
        cluster = self._store.view(_only_cluster)
        token = request.token.strip()
        try:
            role = self._role_for_token(token, cluster)
        except errors.Unauthenticated as err:
            _log.warning("join refused", reason=err.message, hostname=request.hostname)
            raise
        node_id = new_id()
        cert_pem = self._root.sign_csr(
            request.csr, node_id, role, cluster.id, list(request.addresses), cert_expiry(cluster)
        )
        node = objects_pb2.Node(
            id=node_id,
            spec=specs_pb2.NodeSpec(
                desired_role=role.to_proto(),
                membership=specs_pb2.NodeSpec.MEMBERSHIP_ACCEPTED,
                availability=specs_pb2.NodeSpec.AVAILABILITY_ACTIVE,
            ),
            description=types_pb2.NodeDescription(
                hostname=request.hostname, addresses=list(request.addresses)
            ),
            status=objects_pb2.NodeStatus(state=objects_pb2.NodeStatus.STATE_UNKNOWN),
            certificate=types_pb2.Certificate(
                role=role.to_proto(),
                csr=request.csr,
                status=types_pb2.IssuanceStatus(state=types_pb2.IssuanceStatus.STATE_ISSUED),
                certificate=cert_pem,
                cn=node_id,
            ),
            role=role.to_proto(),
        )
        managers = await self._store.update(lambda tx: _create_node(tx, node))
        _log.info("node joined", node_id=node_id, role=role.value, hostname=request.hostname)
        return self._response(node_id, role, cert_pem, cluster.id, managers)

    async def _renew(
        self, peer: Peer, request: ca_pb2.IssueNodeCertificateRequest
    ) -> ca_pb2.IssueNodeCertificateResponse:
        node_id = peer.node_id

        def read(tx: CAReadTx) -> tuple[objects_pb2.Cluster, objects_pb2.Node | None]:
            return _only_cluster(tx), tx.nodes.get(node_id)

        cluster, node = self._store.view(read)
        if node is None:
            raise errors.PermissionDenied(f"node {node_id} is not a member of this cluster")
        role = Role.from_proto(_certificate_role(node))
        addresses = list(request.addresses) or list(node.description.addresses)
        cert_pem = self._root.sign_csr(
            request.csr, node_id, role, cluster.id, addresses, cert_expiry(cluster)
        )

        def record(tx: CATx) -> list[types_pb2.WeightedPeer]:
            current = tx.nodes.get(node_id)
            if current is None:
                raise errors.PermissionDenied(f"node {node_id} is not a member of this cluster")
            current.certificate.CopyFrom(
                types_pb2.Certificate(
                    role=role.to_proto(),
                    csr=request.csr,
                    status=types_pb2.IssuanceStatus(state=types_pb2.IssuanceStatus.STATE_ISSUED),
                    certificate=cert_pem,
                    cn=node_id,
                )
            )
            tx.nodes.update(current)
            return _managers(tx.nodes.list())

        managers = await self._store.update(record)
        _log.info(
            "node certificate renewed", node_id=node_id, role=role.value, old_role=peer.role.value
        )
        return self._response(node_id, role, cert_pem, cluster.id, managers)

    def _response(
        self,
        node_id: str,
        role: Role,
        cert_pem: bytes,
        cluster_id: str,
        managers: list[types_pb2.WeightedPeer],
    ) -> ca_pb2.IssueNodeCertificateResponse:
        return ca_pb2.IssueNodeCertificateResponse(
            node_id=node_id,
            role=role.to_proto(),
            certificate=cert_pem,
            root_ca=self._root.cert_pem,
            cluster_id=cluster_id,
            managers=managers,
        )


def _create_node(tx: CATx, node: objects_pb2.Node) -> list[types_pb2.WeightedPeer]:
    tx.nodes.create(node)
    return _managers(tx.nodes.list())


def _certificate_role(node: objects_pb2.Node) -> types_pb2.NodeRole.ValueType:
    """The role a renewal signs: the observed role, or manager once a promotion is asked for.

    A promoted node must hold a manager certificate before it can join raft, and the role
    manager (`swarmd.manager.rolemanager`) observes MANAGER only once the recorded certificate
    says so. A node being demoted keeps its observed MANAGER (and so a manager certificate)
    until it is out of raft.
    """
    if node.spec.desired_role == types_pb2.NODE_ROLE_MANAGER:
        return types_pb2.NODE_ROLE_MANAGER
    return node.role


__all__ = [
    "CAReadTx",
    "CAServicer",
    "CAStore",
    "CATx",
    "ClusterReader",
    "NodeCAServicer",
    "NodeReader",
    "NodeWriter",
    "cert_expiry",
]
