"""A node's TLS credentials on disk under `<state_dir>/certificates/`.

CA layer. Written by `join.join` (first certificate), `bootstrap` callers (the first manager) and
the `Renewer`; read at node start. Files: `swarm-node.key` (PKCS8 PEM, mode 0600),
`swarm-node.crt`, `swarm-root-ca.crt`. Each file is written atomically (temp file, fsync, rename,
directory fsync) so a crash leaves the old or the new file, never a torn one; `load` checks the key
matches the certificate, which catches a crash between the key and the certificate renames.
Functions here block: call them through `asyncio.to_thread` from the loop. Key material is never
logged.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from swarmd import errors
from swarmd.ca.rootca import Role, load_certificate

_log = structlog.get_logger(component="ca")

CERT_DIR = "certificates"
KEY_FILE = "swarm-node.key"
CERT_FILE = "swarm-node.crt"
ROOT_FILE = "swarm-root-ca.crt"


@dataclass(frozen=True, slots=True)
class NodeCredentials:
    """A node's key, certificate and trusted root, with the identity parsed from the certificate.

    Build with `credentials_from_pem`, which parses and checks; `repr` never shows the key.
    """

    key_pem: bytes = field(repr=False)
    cert_pem: bytes
    root_pem: bytes
    node_id: str
    role: Role
    cluster_id: str
    not_before: datetime
    not_after: datetime
    serial: int

    @property
    def role_name(self) -> str:
        """The role as written in the certificate (`swarm-manager` or `swarm-worker`)."""
        return self.role.value

    @property
    def is_manager(self) -> bool:
        """True for a manager certificate."""
        return self.role is Role.MANAGER

    @property
    def certificate(self) -> x509.Certificate:
        """The parsed node certificate."""
        return x509.load_pem_x509_certificate(self.cert_pem)


def _subject_value(cert: x509.Certificate, oid: x509.ObjectIdentifier, what: str) -> str:
    attrs = cert.subject.get_attributes_for_oid(oid)
    if len(attrs) != 1:
        raise errors.Unauthenticated(f"certificate subject has no single {what}")
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode()


def identity_of(cert: x509.Certificate) -> tuple[str, Role, str]:
    """(node id, role, cluster id) from a node certificate's CN, OU and O.

    Raises:
        Unauthenticated: a part is missing or the OU is not a swarm role.
    """
    node_id = _subject_value(cert, NameOID.COMMON_NAME, "common name")
    ou = _subject_value(cert, NameOID.ORGANIZATIONAL_UNIT_NAME, "organizational unit")
    cluster_id = _subject_value(cert, NameOID.ORGANIZATION_NAME, "organization")
    try:
        role = Role(ou)
    except ValueError as err:
        raise errors.Unauthenticated(
            f"certificate of node {node_id} has unknown role {ou}"
        ) from err
    return node_id, role, cluster_id


def credentials_from_pem(key_pem: bytes, cert_pem: bytes, root_pem: bytes) -> NodeCredentials:
    """Parse and cross-check a key, its certificate and the root.

    Raises:
        InvalidArgument: a PEM does not parse, the key does not match the certificate, or the
            root did not sign the certificate.
        Unauthenticated: the certificate carries no swarm identity.
    """
    cert = load_certificate(cert_pem, "node certificate")
    root = load_certificate(root_pem, "root ca certificate")
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature) as err:
        raise errors.InvalidArgument("node certificate was not issued by the root ca") from err
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as err:
        raise errors.InvalidArgument("node key is not a valid pem private key") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise errors.InvalidArgument("node key does not match the node certificate")
    node_id, role, cluster_id = identity_of(cert)
    return NodeCredentials(
        key_pem=key_pem,
        cert_pem=cert_pem,
        root_pem=root_pem,
        node_id=node_id,
        role=role,
        cluster_id=cluster_id,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=cert.serial_number,
    )


def certificates_dir(state_dir: Path) -> Path:
    """Where a node keeps its TLS files."""
    return Path(state_dir) / CERT_DIR


def save(state_dir: Path, creds: NodeCredentials) -> None:
    """Write the three files atomically; the directory is 0700 and the key 0600."""
    d = certificates_dir(state_dir)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Root first, key last but one: a node that crashes midway still trusts the right root, and
    # load() refuses a key/certificate pair that does not match rather than serving it.
    _write_atomic(d / ROOT_FILE, creds.root_pem, 0o644)
    _write_atomic(d / KEY_FILE, creds.key_pem, 0o600)
    _write_atomic(d / CERT_FILE, creds.cert_pem, 0o644)
    _fsync_dir(d)
    _log.info("node credentials saved", node_id=creds.node_id, role=creds.role.value)


def load(state_dir: Path) -> NodeCredentials | None:
    """Read and check the saved credentials; None when the node has none yet.

    Raises:
        FailedPrecondition: only some of the three files exist.
        InvalidArgument: they do not parse or do not belong together.
    """
    d = certificates_dir(state_dir)
    paths = [d / KEY_FILE, d / CERT_FILE, d / ROOT_FILE]
    present = [p.is_file() for p in paths]
    if not any(present):
        return None
    if not all(present):
        missing = ", ".join(p.name for p, ok in zip(paths, present, strict=True) if not ok)
        raise errors.FailedPrecondition(
            f"node credentials in {d} are incomplete (missing {missing}); "
            "remove the directory and join again"
        )
    key_pem, cert_pem, root_pem = (p.read_bytes() for p in paths)
    return credentials_from_pem(key_pem, cert_pem, root_pem)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp creates 0600; widen only after the content is written, never narrow later.
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "CERT_DIR",
    "CERT_FILE",
    "KEY_FILE",
    "ROOT_FILE",
    "NodeCredentials",
    "certificates_dir",
    "credentials_from_pem",
    "identity_of",
    "load",
    "save",
]
