"""RootCA: the root's fields and every field sign_csr puts in a node certificate."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from swarmd import errors
from swarmd.ca.rootca import Role, RootCA, generate_key, new_csr

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def root() -> RootCA:
    return RootCA.create(now=NOW)


def _sign(root: RootCA, role: Role, addresses=("10.0.0.1:4242", "fe80::1", "host.example")):
    pem = root.sign_csr(
        new_csr(generate_key()), "nodeid123", role, "cluster9", list(addresses), now=NOW
    )
    return x509.load_pem_x509_certificate(pem)


def _name(cert: x509.Certificate, oid) -> str:
    value = cert.subject.get_attributes_for_oid(oid)[0].value
    assert isinstance(value, str)
    return value


def test_root_is_a_p256_ca_for_twenty_years(root: RootCA):
    cert = root.cert
    assert _name(cert, NameOID.COMMON_NAME) == "swarm-ca"
    assert cert.issuer == cert.subject
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign
    assert ku.crl_sign
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert life == timedelta(days=20 * 365)


def test_root_round_trips_through_pem_and_keeps_its_digest(root: RootCA):
    loaded = RootCA.from_pem(root.cert_pem, root.key_pem)
    assert loaded.digest == root.digest
    assert len(root.digest) == 64
    assert RootCA.from_pem(root.cert_pem).key is None


def test_root_refuses_a_key_that_is_not_its_own(root: RootCA):
    other = RootCA.create()
    with pytest.raises(errors.InvalidArgument, match="does not match"):
        RootCA.from_pem(root.cert_pem, other.key_pem)


def test_root_without_key_cannot_sign(root: RootCA):
    with pytest.raises(errors.FailedPrecondition, match="no private key"):
        RootCA.from_pem(root.cert_pem).sign_csr(new_csr(generate_key()), "n", Role.WORKER, "c")


def test_sign_csr_subject_is_node_role_cluster(root: RootCA):
    cert = _sign(root, Role.WORKER)
    assert _name(cert, NameOID.COMMON_NAME) == "nodeid123"
    assert _name(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == "swarm-worker"
    assert _name(cert, NameOID.ORGANIZATION_NAME) == "cluster9"
    assert cert.issuer == root.cert.subject
    cert.verify_directly_issued_by(root.cert)


def test_sign_csr_sans_manager_has_swarm_ca(root: RootCA):
    san = _sign(root, Role.MANAGER).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["swarm-manager", "nodeid123", "swarm-ca"]
    assert san.value.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.1"),
        ipaddress.ip_address("fe80::1"),
    ]


def test_sign_csr_sans_worker_has_no_swarm_ca_and_no_dns_from_addresses(root: RootCA):
    san = _sign(root, Role.WORKER, ["swarm-manager", "1.2.3.4"]).extensions
    names = san.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["swarm-worker", "nodeid123"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("1.2.3.4")]


def test_sign_csr_usages_and_validity(root: RootCA):
    cert = _sign(root, Role.WORKER)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature
    assert ku.key_encipherment
    assert not ku.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_before_utc == NOW - timedelta(hours=1)
    assert cert.not_valid_after_utc == NOW + timedelta(hours=2160)


def test_sign_csr_custom_expiry(root: RootCA):
    pem = root.sign_csr(
        new_csr(generate_key()), "n", Role.WORKER, "c", expiry=timedelta(hours=5), now=NOW
    )
    assert x509.load_pem_x509_certificate(pem).not_valid_after_utc == NOW + timedelta(hours=5)


def test_sign_csr_uses_only_the_csr_public_key(root: RootCA):
    key = generate_key()
    # A CSR that asks for another identity: it is ignored.
    from cryptography.hazmat.primitives import hashes, serialization

    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    cert = x509.load_pem_x509_certificate(root.sign_csr(csr, "n1", Role.WORKER, "c"))
    assert _name(cert, NameOID.COMMON_NAME) == "n1"
    assert cert.public_key() == key.public_key()


def test_sign_csr_rejects_garbage(root: RootCA):
    with pytest.raises(errors.InvalidArgument, match="csr is not a valid"):
        root.sign_csr(b"nope", "n", Role.WORKER, "c")


def test_join_server_cert_is_leaf_then_root(root: RootCA):
    key_pem, chain_pem = root.join_server_cert()
    certs = x509.load_pem_x509_certificates(chain_pem)
    assert [c.subject for c in certs][1] == root.cert.subject
    san = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["swarm-ca"]
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
