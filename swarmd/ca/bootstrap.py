"""Creating a new cluster's CA: root, cluster id, join tokens, the first manager's identity.

CA layer, called by `swarmd.node` when a node starts with an empty state dir and no join
address. No RPC is involved (swarmkit design 5.3): the first manager signs its own manager
certificate. The caller stores `cluster_object()` and a Node for itself, and only then saves
`credentials` to disk, so identity files never exist for a cluster that was not created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from swarmd.api import objects_pb2, specs_pb2, types_pb2
from swarmd.ca.certstore import NodeCredentials, credentials_from_pem
from swarmd.ca.rootca import (
    DEFAULT_NODE_CERT_EXPIRY,
    Role,
    RootCA,
    generate_key,
    key_to_pem,
    new_csr,
)
from swarmd.ca.tokens import new_join_token
from swarmd.identity import new_id


@dataclass(frozen=True, slots=True)
class ClusterBootstrap:
    """Everything a new cluster's first manager needs; `repr` hides keys and tokens."""

    cluster_id: str
    root_ca: RootCA
    worker_token: str = field(repr=False)
    manager_token: str = field(repr=False)
    credentials: NodeCredentials
    hostname: str
    addresses: tuple[str, ...]
    join_cert: tuple[bytes, bytes] = field(repr=False)

    @property
    def root_ca_message(self) -> types_pb2.RootCA:
        """The Cluster object's `root_ca`: key, certificate, digest and both join tokens."""
        return types_pb2.RootCA(
            ca_key=self.root_ca.key_pem,
            ca_cert=self.root_ca.cert_pem,
            ca_cert_hash=self.root_ca.digest,
            join_tokens=types_pb2.JoinTokens(worker=self.worker_token, manager=self.manager_token),
        )

    def cluster_object(self, spec: specs_pb2.ClusterSpec | None = None) -> objects_pb2.Cluster:
        """The cluster's one Cluster object (id = cluster id), with `spec` if given."""
        cluster = objects_pb2.Cluster(id=self.cluster_id, root_ca=self.root_ca_message)
        if spec is not None:
            cluster.spec.CopyFrom(spec)
        return cluster

    def node_object(self) -> objects_pb2.Node:
        """This manager's Node: accepted, active, manager role, certificate issued."""
        role = Role.MANAGER.to_proto()
        node = objects_pb2.Node(
            id=self.credentials.node_id,
            spec=specs_pb2.NodeSpec(
                desired_role=role,
                membership=specs_pb2.NodeSpec.MEMBERSHIP_ACCEPTED,
                availability=specs_pb2.NodeSpec.AVAILABILITY_ACTIVE,
            ),
            description=types_pb2.NodeDescription(
                hostname=self.hostname, addresses=list(self.addresses)
            ),
            certificate=types_pb2.Certificate(
                role=role,
                status=types_pb2.IssuanceStatus(state=types_pb2.IssuanceStatus.STATE_ISSUED),
                certificate=self.credentials.cert_pem,
                cn=self.credentials.node_id,
            ),
            role=role,
        )
        if self.addresses:
            node.manager_status.addr = self.addresses[0]
        return node


def init_cluster_ca(
    hostname: str,
    addresses: str | Sequence[str] = (),
    *,
    node_cert_expiry: timedelta = DEFAULT_NODE_CERT_EXPIRY,
) -> ClusterBootstrap:
    """Create a root CA, a cluster id, both join tokens and this manager's credentials.

    Args:
        hostname: this node's hostname (for its Node object).
        addresses: this manager's advertised address(es); IPs become IP SANs.
        node_cert_expiry: validity of the manager's own first certificate.
    """
    addrs = (addresses,) if isinstance(addresses, str) else tuple(addresses)
    root = RootCA.create()
    cluster_id = new_id()
    node_id = new_id()
    key = generate_key()
    cert_pem = root.sign_csr(
        new_csr(key), node_id, Role.MANAGER, cluster_id, addrs, node_cert_expiry
    )
    creds = credentials_from_pem(key_to_pem(key), cert_pem, root.cert_pem)
    return ClusterBootstrap(
        cluster_id=cluster_id,
        root_ca=root,
        worker_token=new_join_token(root.cert_pem),
        manager_token=new_join_token(root.cert_pem),
        credentials=creds,
        hostname=hostname,
        addresses=addrs,
        join_cert=root.join_server_cert(),
    )


__all__ = ["ClusterBootstrap", "init_cluster_ca"]
