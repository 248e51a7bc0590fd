"""Joining over the join port: roles from tokens, Node objects, refusals, pinning before sending."""

from __future__ import annotations

import socket
import stat

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from swarmd import errors
from swarmd.api import ca_pb2, ca_pb2_grpc, specs_pb2, types_pb2
from swarmd.ca import certstore, join
from swarmd.ca.rootca import Role, RootCA
from swarmd.ca.tokens import new_join_token
from tests.component.ca.harness import Manager


def _ou(creds: certstore.NodeCredentials) -> str:
    cert = x509.load_pem_x509_certificate(creds.cert_pem)
    value = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value
    assert isinstance(value, str)
    return value


async def test_join_worker_token_gets_worker_certificate(manager: Manager, tmp_path):
    creds = await join.join(
        manager.join_addr, manager.boot.worker_token, tmp_path, "wrk-1", ["10.0.0.7:4242"]
    )
    assert _ou(creds) == "swarm-worker"
    assert creds.role is Role.WORKER
    assert creds.cluster_id == manager.boot.cluster_id
    node = manager.store.view(lambda tx: tx.nodes.get(creds.node_id))
    assert node is not None
    assert node.spec.desired_role == types_pb2.NODE_ROLE_WORKER
    assert node.spec.membership == specs_pb2.NodeSpec.MEMBERSHIP_ACCEPTED
    assert node.spec.availability == specs_pb2.NodeSpec.AVAILABILITY_ACTIVE
    assert node.role == types_pb2.NODE_ROLE_WORKER
    assert node.description.hostname == "wrk-1"
    assert list(node.description.addresses) == ["10.0.0.7:4242"]
    assert node.certificate.status.state == types_pb2.IssuanceStatus.STATE_ISSUED
    assert node.certificate.cn == creds.node_id
    assert node.certificate.certificate == creds.cert_pem


async def test_join_manager_token_gets_manager_certificate(manager: Manager, tmp_path):
    result = await join.join_cluster(
        manager.join_addr, manager.boot.manager_token, tmp_path, "mgr-2", ["10.0.0.8:4242"]
    )
    creds = result.credentials
    assert _ou(creds) == "swarm-manager"
    node = manager.store.view(lambda tx: tx.nodes.get(creds.node_id))
    assert node is not None
    assert node.role == types_pb2.NODE_ROLE_MANAGER
    # The first manager advertised its address, so the joiner learns where to connect.
    assert [m.addr for m in result.managers] == ["127.0.0.1:4242"]


async def test_join_saves_credentials_with_private_key_0600(manager: Manager, tmp_path):
    creds = await join.join(manager.join_addr, manager.boot.worker_token, tmp_path, "w", [])
    d = certstore.certificates_dir(tmp_path)
    assert stat.S_IMODE((d / certstore.KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert certstore.load(tmp_path) == creds
    assert (d / certstore.ROOT_FILE).read_bytes() == manager.root.cert_pem


async def test_join_with_wrong_secret_is_unauthenticated(manager: Manager, tmp_path):
    forged = manager.boot.worker_token[:-25] + "0" * 25
    with pytest.raises(errors.Unauthenticated, match="invalid join token"):
        await join.join(manager.join_addr, forged, tmp_path, "w", [])
    assert manager.store.view(lambda tx: tx.nodes.count()) == 1
    assert not certstore.certificates_dir(tmp_path).exists()


async def test_join_with_rotated_away_token_is_unauthenticated(manager: Manager, tmp_path):
    old = manager.boot.worker_token
    fresh = new_join_token(manager.root.cert_pem)
    await manager.set_join_tokens(worker=fresh)
    with pytest.raises(errors.Unauthenticated, match="invalid join token"):
        await join.join(manager.join_addr, old, tmp_path / "a", "w", [])
    creds = await join.join(manager.join_addr, fresh, tmp_path / "b", "w", [])
    assert creds.role is Role.WORKER


async def test_join_refuses_digest_mismatch_before_sending_csr(manager: Manager, tmp_path):
    other = RootCA.create()
    token = new_join_token(other.cert_pem)
    with pytest.raises(errors.Unauthenticated) as exc:
        await join.join(manager.join_addr, token, tmp_path, "w", [])
    assert str(exc.value) == (
        "root CA digest mismatch: the join token does not belong to the cluster at "
        f"{manager.join_addr}"
    )
    assert manager.node_ca.issue_calls == 0
    assert manager.store.view(lambda tx: tx.nodes.count()) == 1


async def test_join_malformed_token_is_invalid_argument(manager: Manager, tmp_path):
    with pytest.raises(errors.InvalidArgument, match="SWMTKN-1"):
        await join.join(manager.join_addr, "not-a-token", tmp_path, "w", [])
    assert manager.node_ca.issue_calls == 0


async def test_join_unreachable_manager_says_so(tmp_path):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{s.getsockname()[1]}"
    token = new_join_token(RootCA.create().cert_pem)
    with pytest.raises(errors.Unavailable) as exc:
        await join.join(addr, token, tmp_path, "w", [], attempts=1, time_limit=2)
    assert str(exc.value) == (
        f"cannot reach manager at {addr}: TLS handshake failed or manager unreachable"
    )


async def test_node_certificate_status_over_join_port(manager: Manager, tmp_path):
    creds = await join.join(manager.join_addr, manager.boot.worker_token, tmp_path, "w", [])
    chain_root = manager.root.cert_pem
    import grpc
    from grpc import aio

    cc = grpc.ssl_channel_credentials(root_certificates=chain_root)
    opts = [("grpc.ssl_target_name_override", "swarm-ca")]
    async with aio.secure_channel(manager.join_addr, cc, options=opts) as ch:
        stub = ca_pb2_grpc.NodeCAStub(ch)
        resp = await stub.NodeCertificateStatus(
            ca_pb2.NodeCertificateStatusRequest(node_id=creds.node_id), timeout=5
        )
        assert resp.status.state == types_pb2.IssuanceStatus.STATE_ISSUED
        assert resp.certificate.certificate == creds.cert_pem
        with pytest.raises(aio.AioRpcError) as exc:
            await stub.NodeCertificateStatus(
                ca_pb2.NodeCertificateStatusRequest(node_id="nope"), timeout=5
            )
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        # No token on the join port: refused, nothing created.
        with pytest.raises(aio.AioRpcError) as exc:
            await stub.IssueNodeCertificate(ca_pb2.IssueNodeCertificateRequest(csr=b"x"), timeout=5)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
