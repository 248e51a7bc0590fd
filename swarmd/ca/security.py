"""SecurityConfig: a node's live TLS credentials, shared by its servers, its clients and renewal.

CA layer. The node creates one at start from `certstore.load_credentials` (or the result of
`join.join`/`bootstrap.init_cluster_ca`); `rpc.server.cluster_server` reads
`server_certificate_configuration()` on every new TLS handshake (grpc's dynamic server
credentials), so a renewed certificate reaches new connections without a restart; clients build
channels from `credentials` (grpc has no client-side reload: after a renewal, open a new channel,
which `wait_changed()` tells them). The `Renewer` is the writer.
"""

from __future__ import annotations

import asyncio

import grpc
import structlog

from swarmd.ca.certstore import NodeCredentials

_log = structlog.get_logger(component="ca")


class SecurityConfig:
    """Holds the current NodeCredentials; loop-confined except `server_certificate_configuration`.

    The grpc handshake callback may run on a C-core thread; it only reads one attribute, which
    `update` replaces in a single assignment, so no lock is needed.
    """

    def __init__(self, credentials: NodeCredentials) -> None:
        self._credentials = credentials
        self._server_config = _server_config(credentials)
        self._changed = asyncio.Event()

    @property
    def credentials(self) -> NodeCredentials:
        """The credentials in force now."""
        return self._credentials

    def update(self, credentials: NodeCredentials) -> None:
        """Switch to renewed credentials: new handshakes present them, waiters wake up."""
        self._server_config = _server_config(credentials)
        self._credentials = credentials
        _log.info(
            "node certificate updated",
            node_id=credentials.node_id,
            role=credentials.role.value,
            serial=f"{credentials.serial:x}",
            not_after=credentials.not_after.isoformat(),
        )
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_changed(self) -> NodeCredentials:
        """Suspend until the next `update`, then return the new credentials."""
        await self._changed.wait()
        return self._credentials

    def server_certificate_configuration(self) -> grpc.ServerCertificateConfiguration:
        """The cluster port's key, certificate and client-trust root, for grpc's fetcher."""
        return self._server_config

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """mTLS client credentials trusting the cluster root and presenting our certificate."""
        c = self._credentials
        return grpc.ssl_channel_credentials(
            root_certificates=c.root_pem, private_key=c.key_pem, certificate_chain=c.cert_pem
        )


def _server_config(credentials: NodeCredentials) -> grpc.ServerCertificateConfiguration:
    # Chain = leaf only: node certificates are signed directly by the root, which clients trust.
    return grpc.ssl_server_certificate_configuration(
        [(credentials.key_pem, credentials.cert_pem)], root_certificates=credentials.root_pem
    )


__all__ = ["SecurityConfig"]
