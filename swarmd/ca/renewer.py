"""Renewer: keeps a node's certificate fresh, and applies role changes, over mTLS.

CA layer; `swarmd.node` runs one per node in its TaskGroup. It sleeps until a random point in
50-80 % of the current certificate's validity (so a cluster's nodes do not renew in a herd),
asks a manager's NodeCA for a new certificate for a new key over its current mTLS identity, saves
it, and hands it to the SecurityConfig (servers use it for new handshakes, clients reconnect).
The manager chooses the role from the Node object, so `request_renewal()` after a promotion or
demotion gives the node its new role. Failures back off from 5 s to 1 h.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import grpc
import structlog
from grpc import aio

from swarmd import errors
from swarmd.api import ca_pb2, ca_pb2_grpc
from swarmd.ca import certstore
from swarmd.ca.certstore import NodeCredentials
from swarmd.ca.rootca import RootCA, generate_key, key_to_pem, new_csr
from swarmd.ca.security import SecurityConfig
from swarmd.clock import Clock, SystemClock
from swarmd.rpc.backoff import Backoff
from swarmd.rpc.status import from_rpc_error

_log = structlog.get_logger(component="ca")

RENEW_AT = (0.5, 0.8)
BACKOFF_INITIAL = 5.0
BACKOFF_MAX = 3600.0
RPC_TIMEOUT = 20.0

Connect = Callable[[], aio.Channel]


def renewal_delay(creds: NodeCredentials, now: float, rng: random.Random) -> float:
    """Seconds from `now` (epoch) to a random point in 50-80 % of the certificate's validity."""
    start = creds.not_before.timestamp()
    lifetime = creds.not_after.timestamp() - start
    return max(0.0, start + lifetime * rng.uniform(*RENEW_AT) - now)


class Renewer:
    """Renews the certificate in a SecurityConfig on schedule and on request.

    Args:
        security: the node's live credentials; updated after each renewal.
        state_dir: where certstore saves the renewed files.
        connect: returns a new mTLS channel to some manager; the renewer closes it after use.
            It may raise a SwarmError (e.g. Unavailable when no manager is known), which counts
            as a failed attempt.
        clock: time source for the schedule (tests pass a FakeClock).
        rng: randomness for the renewal point and backoff jitter.
    """

    def __init__(
        self,
        security: SecurityConfig,
        state_dir: Path,
        connect: Connect,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        rpc_timeout: float = RPC_TIMEOUT,
    ) -> None:
        self._security = security
        self._state_dir = state_dir
        self._connect = connect
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._rpc_timeout = rpc_timeout
        self._wake = asyncio.Event()

    def request_renewal(self) -> None:
        """Renew as soon as possible (role change, or the root CA changed)."""
        self._wake.set()

    async def run(self) -> None:
        """Renew forever: wait for the renewal point (or a request), renew, retry on failure."""
        backoff = Backoff(BACKOFF_INITIAL, BACKOFF_MAX, self._rng)
        while True:
            creds = self._security.credentials
            delay = renewal_delay(creds, self._clock.now(), self._rng)
            _log.debug("certificate renewal scheduled", in_seconds=round(delay, 1))
            await self._wait(delay)
            while True:
                try:
                    await self.renew()
                except errors.SwarmError as err:
                    wait = backoff.next()
                    _log.warning(
                        "certificate renewal failed", reason=err.message, retry_in=round(wait, 1)
                    )
                    await self._wait(wait)
                else:
                    backoff.reset()
                    break

    async def renew(self) -> NodeCredentials:
        """Renew once now: new key, CSR to a manager, check, save, switch.

        Raises:
            SwarmError: the manager could not be reached, refused, or returned a bad certificate.
        """
        current = self._security.credentials
        key = generate_key()
        key_pem = key_to_pem(key)
        request = ca_pb2.IssueNodeCertificateRequest(csr=new_csr(key))
        channel = self._connect()
        try:
            resp = await ca_pb2_grpc.NodeCAStub(channel).IssueNodeCertificate(
                request, timeout=self._rpc_timeout
            )
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err
        finally:
            await channel.close()
        renewed = self._check(current, resp, key_pem)
        await asyncio.to_thread(certstore.save, self._state_dir, renewed)
        self._security.update(renewed)
        if renewed.role is not current.role:
            _log.info("node role changed", old=current.role.value, new=renewed.role.value)
        return renewed

    @staticmethod
    def _check(
        current: NodeCredentials, resp: ca_pb2.IssueNodeCertificateResponse, key_pem: bytes
    ) -> NodeCredentials:
        # Keep trusting our own root: root rotation is not implemented, and a renewal must not be
        # a way to swap the trust anchor.
        try:
            renewed = certstore.credentials_from_pem(key_pem, resp.certificate, current.root_pem)
        except errors.SwarmError as err:
            raise errors.Unauthenticated(
                f"the manager returned an unusable certificate: {err}"
            ) from err
        RootCA.from_pem(current.root_pem).verify(renewed.certificate)
        if (renewed.node_id, renewed.cluster_id) != (current.node_id, current.cluster_id):
            raise errors.Unauthenticated("the manager returned a certificate for another identity")
        return renewed

    async def _wait(self, seconds: float) -> None:
        """Sleep on the clock for `seconds`, or less if `request_renewal()` is called."""
        sleep = asyncio.ensure_future(self._clock.sleep(seconds))
        wake = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleep, wake}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleep, wake):
                task.cancel()
            await asyncio.gather(sleep, wake, return_exceptions=True)
        self._wake.clear()


__all__ = ["RENEW_AT", "Connect", "Renewer", "renewal_delay"]
