"""The cluster's root certificate authority: create, load, and sign node CSRs.

CA layer. `bootstrap.init_cluster_ca` creates the root at cluster init; managers load it from the
Cluster object (`root_ca.ca_cert`/`ca_key`) and hand it to the NodeCA servicer, which calls
`sign_csr` for joins and renewals. Identity lives in the subject (swarmkit design 5.1): CN = node
id, OU = role, O = cluster id. Only the CSR's public key is trusted; every other field comes from
the CA's own data.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from swarmd import errors
from swarmd.api import types_pb2

ROOT_CN = "swarm-ca"
# Clients joining verify the join port with this name; managers carry it as a SAN too.
CA_SERVER_NAME = "swarm-ca"
ROOT_VALIDITY = timedelta(days=20 * 365)
DEFAULT_NODE_CERT_EXPIRY = timedelta(hours=2160)
# Tolerate clock skew between the CA and the nodes (swarmkit backdates by the same hour).
BACKDATE = timedelta(hours=1)
_MIN_RSA_BITS = 2048


class Role(enum.StrEnum):
    """A node's role as written in its certificate's OU (and used as a SAN and TLS server name)."""

    MANAGER = "swarm-manager"
    WORKER = "swarm-worker"

    def to_proto(self) -> types_pb2.NodeRole.ValueType:
        """The api NodeRole value for this role."""
        if self is Role.MANAGER:
            return types_pb2.NODE_ROLE_MANAGER
        return types_pb2.NODE_ROLE_WORKER

    @classmethod
    def from_proto(cls, role: types_pb2.NodeRole.ValueType) -> Role:
        """The role for an api NodeRole value."""
        return cls.MANAGER if role == types_pb2.NODE_ROLE_MANAGER else cls.WORKER


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 private key (the only key type swarmd generates)."""
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Unencrypted PKCS8 PEM, the format grpc and the cert store expect."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_to_pem(cert: x509.Certificate) -> bytes:
    """PEM encoding of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_digest(cert: x509.Certificate) -> str:
    """Hex SHA-256 of the certificate's DER encoding: the digest join tokens pin."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def new_csr(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A PEM CSR carrying only the public key; the CA fills in the identity itself."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def load_certificate(pem: bytes, what: str = "certificate") -> x509.Certificate:
    """Parse one PEM certificate, raising InvalidArgument naming `what` when it is not one."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as err:
        raise errors.InvalidArgument(f"{what} is not a valid pem certificate") from err


def ip_sans(addresses: Sequence[str]) -> list[x509.GeneralName]:
    """IP SANs for the addresses that are IPs (optionally with a port); other entries are ignored.

    Only IPs are accepted because the addresses come from the requesting node: letting it pick DNS
    names would let a worker claim `swarm-manager` and pass managers' TLS name checks.
    """
    out: list[x509.GeneralName] = []
    seen: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for addr in addresses:
        ip = _parse_ip(addr)
        if ip is not None and ip not in seen:
            seen.add(ip)
            out.append(x509.IPAddress(ip))
    return out


def _parse_ip(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    host = addr.strip()
    if host.startswith("["):  # [v6]:port
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:  # v4:port or name:port
        host = host.split(":", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _checked_public_key(
    csr: x509.CertificateSigningRequest,
) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
            raise errors.InvalidArgument(f"csr key curve {key.curve.name} is not supported")
        return key
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= _MIN_RSA_BITS:
        return key
    raise errors.InvalidArgument("csr key must be ecdsa p-256/p-384 or rsa of at least 2048 bits")


@dataclass(frozen=True, slots=True)
class RootCA:
    """The root certificate, and its private key when this process may sign.

    Build with `RootCA.create()` (cluster init) or `RootCA.from_pem()` (from the Cluster object or
    a node's `swarm-root-ca.crt`, without a key).
    """

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)

    @classmethod
    def create(cls, now: datetime | None = None) -> RootCA:
        """A new self-signed ECDSA P-256 root, CN `swarm-ca`, valid 20 years."""
        key = generate_key()
        start = (now or datetime.now(UTC)) - BACKDATE
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ROOT_CN)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + ROOT_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key)

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes | None = None) -> RootCA:
        """Load a root (and optionally its PKCS8 key); InvalidArgument when they do not match."""
        cert = load_certificate(cert_pem, "root ca certificate")
        key = None
        if key_pem:
            try:
                loaded = serialization.load_pem_private_key(key_pem, password=None)
            except (ValueError, TypeError) as err:
                raise errors.InvalidArgument("root ca key is not a valid pem private key") from err
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise errors.InvalidArgument("root ca key must be an ecdsa key")
            if loaded.public_key().public_numbers() != _ec_public(cert).public_numbers():
                raise errors.InvalidArgument("root ca key does not match the root ca certificate")
            key = loaded
        return cls(cert=cert, key=key)

    @property
    def cert_pem(self) -> bytes:
        """The root certificate as PEM."""
        return cert_to_pem(self.cert)

    @property
    def key_pem(self) -> bytes:
        """The root key as PKCS8 PEM; FailedPrecondition when this RootCA has no key."""
        return key_to_pem(self._signer())

    @property
    def digest(self) -> str:
        """Hex SHA-256 of the root certificate's DER encoding."""
        return certificate_digest(self.cert)

    def _signer(self) -> ec.EllipticCurvePrivateKey:
        if self.key is None:
            raise errors.FailedPrecondition("root ca has no private key on this node")
        return self.key

    def sign_csr(
        self,
        csr_pem: bytes,
        node_id: str,
        role: Role,
        cluster_id: str,
        addresses: Sequence[str] = (),
        expiry: timedelta = DEFAULT_NODE_CERT_EXPIRY,
        *,
        now: datetime | None = None,
    ) -> bytes:
        """Sign a node certificate for the CSR's public key and return it as PEM.

        Args:
            csr_pem: the node's CSR; its signature must verify, and only its key is used.
            node_id: becomes the CN and a DNS SAN.
            role: becomes the OU and a DNS SAN (managers also get `swarm-ca`).
            cluster_id: becomes the O.
            addresses: the node's addresses; the IPs among them become IP SANs.
            expiry: validity, counted from now (the 1 h backdate comes on top).
            now: the current time, for tests.

        Raises:
            InvalidArgument: the CSR does not parse, its signature fails, or its key is weak.
            FailedPrecondition: this RootCA has no private key.
        """
        signer = self._signer()
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as err:
            raise errors.InvalidArgument("csr is not a valid pem certificate request") from err
        try:
            valid = csr.is_signature_valid
        except InvalidSignature:  # some key types raise instead of returning False
            valid = False
        if not valid:
            raise errors.InvalidArgument("csr signature does not verify")
        public_key = _checked_public_key(csr)
        dns = [role.value, node_id]
        if role is Role.MANAGER:
            dns.append(CA_SERVER_NAME)
        sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
        sans.extend(ip_sans(addresses))
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_id),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
                x509.NameAttribute(NameOID.COMMON_NAME, node_id),
            ]
        )
        return self._sign_leaf(public_key, subject, sans, expiry, now, signer)

    def issue_server_certificate(
        self,
        key: ec.EllipticCurvePrivateKey,
        dns_names: Sequence[str],
        expiry: timedelta,
        *,
        now: datetime | None = None,
    ) -> bytes:
        """A leaf for a TLS server that only has DNS names (the join port's `swarm-ca` cert)."""
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])])
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        return self._sign_leaf(key.public_key(), subject, sans, expiry, now, self._signer())

    def join_server_cert(self, *, now: datetime | None = None) -> tuple[bytes, bytes]:
        """A fresh key and chain (leaf, root) for the join port, as `rpc.server.join_server` takes.

        The leaf's only name is `swarm-ca`, the name joining nodes verify. It lives until the
        root expires: it is made from the root key at every manager start and its key stays in
        memory, and joiners trust it only after pinning the root by their token's digest.
        """
        key = generate_key()
        leaf = self.issue_server_certificate(key, [CA_SERVER_NAME], ROOT_VALIDITY, now=now)
        return key_to_pem(key), leaf + self.cert_pem

    def _sign_leaf(
        self,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        subject: x509.Name,
        sans: list[x509.GeneralName],
        expiry: timedelta,
        now: datetime | None,
        signer: ec.EllipticCurvePrivateKey,
    ) -> bytes:
        start = (now or datetime.now(UTC)) - BACKDATE
        end = min(start + BACKDATE + expiry, self.cert.not_valid_after_utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
            .sign(signer, hashes.SHA256())
        )
        return cert_to_pem(cert)

    def verify(self, cert: x509.Certificate) -> None:
        """Check that `cert` was signed by this root and is valid now; Unauthenticated if not."""
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature) as err:
            raise errors.Unauthenticated(
                "certificate was not issued by the cluster root ca"
            ) from err
        now = datetime.now(UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise errors.Unauthenticated("certificate is not valid at the current time")


def _ec_public(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise errors.InvalidArgument("root ca certificate must carry an ecdsa key")
    return key


__all__ = [
    "BACKDATE",
    "CA_SERVER_NAME",
    "DEFAULT_NODE_CERT_EXPIRY",
    "ROOT_CN",
    "ROOT_VALIDITY",
    "Role",
    "RootCA",
    "cert_to_pem",
    "certificate_digest",
    "generate_key",
    "ip_sans",
    "key_to_pem",
    "load_certificate",
    "new_csr",
]
