"""Joining a cluster: pin the root CA by the token's digest, then get a certificate.

CA layer, called once by `swarmd.node` when the state dir has no credentials and a join address
and token are given. Order matters for safety (swarmkit design 5.3, decisions.md Security):

1. Read the join port's TLS chain without trusting it and pick the self-signed certificate whose
   SHA-256 equals the token's digest. No match: stop before sending anything (no CSR, no token),
   because the server is not the cluster the token belongs to.
2. Open a TLS channel trusting only that root (server name `swarm-ca`), send a fresh P-256 CSR
   with the token, check the returned certificate chains to the root and carries our key.
3. Save the key, certificate and root under `<state_dir>/certificates/`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from grpc import aio

from swarmd import errors
from swarmd.api import ca_pb2, ca_pb2_grpc, types_pb2
from swarmd.ca import certstore
from swarmd.ca.certstore import NodeCredentials
from swarmd.ca.rootca import (
    CA_SERVER_NAME,
    RootCA,
    certificate_digest,
    generate_key,
    key_to_pem,
    new_csr,
)
from swarmd.ca.tokens import parse_join_token
from swarmd.rpc.status import from_rpc_error

_log = structlog.get_logger(component="ca")

DEFAULT_TIMEOUT = 20.0
DEFAULT_ATTEMPTS = 5
RETRY_DELAY = 2.0


@dataclass(frozen=True, slots=True)
class JoinResult:
    """What a join yields: the saved credentials and the managers the CA knows of."""

    credentials: NodeCredentials
    managers: tuple[types_pb2.WeightedPeer, ...]


def _unreachable(addr: str) -> errors.Unavailable:
    return errors.Unavailable(
        f"cannot reach manager at {addr}: TLS handshake failed or manager unreachable"
    )


def split_host_port(addr: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` to (host, port); InvalidArgument naming the address."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise errors.InvalidArgument(f"join address {addr!r} must be host:port")
    return host.strip("[]"), int(port)


def _chain_ders(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The peer's certificate chain as sent, unverified, in DER.

    Python 3.13 has a public `get_unverified_chain()`; 3.11 and 3.12 only have it on the private
    `_sslobj`, returning `_ssl.Certificate` objects.
    """
    getter = getattr(ssl_object, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if getter is None:
        raise errors.FailedPrecondition(
            "this python's ssl module cannot return the peer certificate chain "
            "(get_unverified_chain is missing); joining needs python 3.11 or later"
        )
    ders: list[bytes] = []
    for item in getter() or ():
        if isinstance(item, bytes):
            ders.append(item)
        else:  # _ssl.Certificate: public_bytes() defaults to PEM text
            pem = item.public_bytes()
            ders.append(ssl.PEM_cert_to_DER_cert(pem if isinstance(pem, str) else pem.decode()))
    return ders


async def fetch_unverified_chain(addr: str, time_limit: float = DEFAULT_TIMEOUT) -> list[bytes]:
    """Handshake with `addr` without verifying it and return the chain it presents (DER).

    Raises:
        Unavailable: no TLS connection could be made.
    """
    host, port = split_host_port(addr)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # trust comes from the token digest, checked by the caller
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["h2"])  # grpc servers refuse TLS without the h2 ALPN
    try:
        async with asyncio.timeout(time_limit):
            _, writer = await asyncio.open_connection(
                host, port, ssl=ctx, server_hostname=CA_SERVER_NAME
            )
    except (OSError, TimeoutError, ssl.SSLError) as err:
        raise _unreachable(addr) from err
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        if not isinstance(ssl_object, ssl.SSLObject):
            raise _unreachable(addr)
        return _chain_ders(ssl_object)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass  # the server may drop the connection first; we have what we need


def pick_root(chain: Sequence[bytes], digest: str) -> RootCA | None:
    """The self-signed certificate in `chain` whose SHA-256 (of DER) is `digest`, if any."""
    for der in chain:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            continue
        if certificate_digest(cert) != digest or cert.issuer != cert.subject:
            continue
        try:
            cert.verify_directly_issued_by(cert)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return RootCA(cert=cert)
    return None


async def _issue(
    addr: str, root: RootCA, request: ca_pb2.IssueNodeCertificateRequest, time_limit: float
) -> ca_pb2.IssueNodeCertificateResponse:
    creds = grpc.ssl_channel_credentials(root_certificates=root.cert_pem)
    options = [("grpc.ssl_target_name_override", CA_SERVER_NAME)]
    async with aio.secure_channel(addr, creds, options=options) as channel:
        try:
            return await ca_pb2_grpc.NodeCAStub(channel).IssueNodeCertificate(
                request, timeout=time_limit
            )
        except aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNAVAILABLE:
                raise _unreachable(addr) from err
            raise from_rpc_error(err) from err


def _check_issued(
    root: RootCA, resp: ca_pb2.IssueNodeCertificateResponse, key_pem: bytes
) -> NodeCredentials:
    try:
        creds = certstore.credentials_from_pem(key_pem, resp.certificate, root.cert_pem)
    except errors.SwarmError as err:
        raise errors.Unauthenticated(
            f"the manager returned an unusable certificate: {err}"
        ) from err
    root.verify(creds.certificate)
    if creds.node_id != resp.node_id or (resp.cluster_id and creds.cluster_id != resp.cluster_id):
        raise errors.Unauthenticated("the manager returned a certificate for another identity")
    return creds


async def _fetch_with_retries(addr: str, time_limit: float, attempts: int) -> list[bytes]:
    attempt = 1
    while True:
        try:
            return await fetch_unverified_chain(addr, time_limit)
        except errors.Unavailable:
            if attempt >= attempts:
                raise
            _log.warning("join port unreachable, retrying", addr=addr, attempt=attempt)
            attempt += 1
            await asyncio.sleep(RETRY_DELAY)


async def join_cluster(
    join_addr: str,
    token: str,
    state_dir: Path,
    hostname: str,
    addresses: Sequence[str],
    *,
    time_limit: float = DEFAULT_TIMEOUT,
    attempts: int = DEFAULT_ATTEMPTS,
) -> JoinResult:
    """Join the cluster at `join_addr` (its join port) and save the new credentials.

    Args:
        join_addr: a manager's join port, `host:port`.
        token: the worker or manager join token; it decides the role.
        state_dir: the node's state dir; credentials go to `certificates/` under it.
        hostname: recorded on the new Node object.
        addresses: this node's addresses (IPs become IP SANs).
        time_limit: per attempt, for the TLS probe and for the RPC.
        attempts: tries while the manager is unreachable, RETRY_DELAY apart.

    Raises:
        InvalidArgument: the token is malformed.
        Unauthenticated: the manager is not the token's cluster, or refused the token.
        Unavailable: the manager could not be reached.
    """
    parsed = parse_join_token(token)
    chain = await _fetch_with_retries(join_addr, time_limit, attempts)
    root = pick_root(chain, parsed.digest)
    if root is None:
        raise errors.Unauthenticated(
            f"root CA digest mismatch: the join token does not belong to the cluster at {join_addr}"
        )
    key = generate_key()
    key_pem = key_to_pem(key)
    request = ca_pb2.IssueNodeCertificateRequest(
        csr=new_csr(key), token=token.strip(), addresses=list(addresses), hostname=hostname
    )
    resp = await _issue(join_addr, root, request, time_limit)
    creds = _check_issued(root, resp, key_pem)
    await asyncio.to_thread(certstore.save, state_dir, creds)
    _log.info(
        "joined cluster",
        node_id=creds.node_id,
        role=creds.role.value,
        cluster_id=creds.cluster_id,
        root_digest=root.digest,
    )
    return JoinResult(credentials=creds, managers=tuple(resp.managers))


async def join(
    join_addr: str,
    token: str,
    state_dir: Path,
    hostname: str,
    addresses: Sequence[str],
    *,
    time_limit: float = DEFAULT_TIMEOUT,
    attempts: int = DEFAULT_ATTEMPTS,
) -> NodeCredentials:
    """`join_cluster`, returning only the saved credentials."""
    result = await join_cluster(
        join_addr, token, state_dir, hostname, addresses, time_limit=time_limit, attempts=attempts
    )
    return result.credentials


__all__ = [
    "JoinResult",
    "fetch_unverified_chain",
    "join",
    "join_cluster",
    "pick_root",
    "split_host_port",
]
