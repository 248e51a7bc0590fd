"""Manager: serves the control API, CA and dispatcher on its three listeners, over one store.

Built and run by `swarmd.node.Node` for manager nodes. Listeners: the local control socket
(swarmctl, no TLS, 0600), the cluster port (mutual TLS for everything: control for manager
certificates, dispatcher, CA renewal) and the join port (TLS with server auth only: root CA and
join-token issuance). Until Raft replication lands, one manager holds the whole store, persisted
by its LocalProposer, and runs the leader's components (`leader.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from grpc import aio

from swarmd.api import (
    ca_pb2_grpc,
    control_pb2_grpc,
    dispatcher_pb2_grpc,
    logs_pb2_grpc,
    objects_pb2,
    watch_pb2_grpc,
)
from swarmd.ca.rootca import RootCA
from swarmd.ca.security import SecurityConfig
from swarmd.ca.server import CAServicer, NodeCAServicer
from swarmd.ca.tokens import new_join_token
from swarmd.clock import Clock, SystemClock
from swarmd.manager.controlapi import ControlServicer
from swarmd.manager.dispatcher import DispatcherServicer
from swarmd.manager.leader import Component, leader_components
from swarmd.manager.leadership import (
    Leadership,
    StaticLeadership,
    retarget_leader_channels,
    run_while_leader,
)
from swarmd.manager.logbroker import LogBroker, LogBrokerServicer, LogsServicer
from swarmd.manager.managerstatus import ManagerStatusReporter, RaftView
from swarmd.manager.raftnode.membership import Membership, Promoter
from swarmd.manager.rolemanager import RoleManager
from swarmd.manager.store import MemoryStore
from swarmd.manager.watchapi import WatchServicer
from swarmd.rpc import server as rpcserver
from swarmd.rpc.forward import ForwardInterceptor, LeaderChannels
from swarmd.rpc.identity import ANONYMOUS, LOCAL_OPERATOR

_log = structlog.get_logger(component="manager")

STOP_GRACE = 2.0
# After the servers stopped: how long the node-status writes of the closed sessions may take.
SESSION_DRAIN = 1.0


@dataclass(frozen=True, slots=True)
class Listeners:
    """Where the manager listens; ports may be 0 in tests (the bound ones are reported back)."""

    control_socket: Path
    remote_api: str
    join_api: str


class Manager:
    """One manager's servers and leader components around a store."""

    def __init__(
        self,
        store: MemoryStore,
        security: SecurityConfig,
        cluster_id: str,
        listeners: Listeners,
        clock: Clock | None = None,
        leadership: Leadership | None = None,
        register: Sequence[Callable[[aio.Server], None]] = (),
        raft: RaftView | None = None,
        membership: Membership | None = None,
    ) -> None:
        self._store = store
        self._security = security
        self._cluster_id = cluster_id
        self._listeners = listeners
        self._clock = clock or SystemClock()
        # A single voter always leads; the Raft driver will hand in its own LeadershipCell.
        self._leadership: Leadership = leadership or StaticLeadership(security.credentials.node_id)
        #: Routes `service logs` subscriptions to the agents (a leader component).
        self.log_broker = LogBroker(store, self._clock)
        # More services for the cluster port (the Raft service of this manager's replica).
        self._register = list(register)
        self._raft = raft
        self._membership = membership
        self.ready = asyncio.Event()
        self.remote_port = 0
        self.join_port = 0

    async def _start_join_port(
        self,
        ca: CAServicer,
        node_ca: NodeCAServicer,
        leadership: Leadership,
        channels: LeaderChannels,
    ) -> aio.Server:
        cluster = await wait_for_cluster(self._store)
        root = RootCA.from_pem(cluster.root_ca.ca_cert, cluster.root_ca.ca_key)
        key_pem, chain_pem = root.join_server_cert()
        join, self.join_port = rpcserver.join_server(
            key_pem,
            chain_pem,
            self._listeners.join_api,
            [ForwardInterceptor(leadership, channels, principal=ANONYMOUS)],
        )
        ca_pb2_grpc.add_CAServicer_to_server(ca, join)
        ca_pb2_grpc.add_NodeCAServicer_to_server(node_ca, join)
        await join.start()
        return join

    async def run(self) -> None:
        """Serve until cancelled, then stop the listeners gracefully.

        The control socket and the cluster port serve at once (the Raft service must answer
        while a manager that just joined catches up); the join port, whose certificate comes
        from the root CA key in the cluster object, opens once that object is in the store.
        """
        control = ControlServicer(
            self._store, token_factory=new_join_token, membership=self._membership
        )
        root_pem = self._security.credentials.root_pem
        dispatcher = DispatcherServicer(self._store, root_pem, self._clock)
        ca = CAServicer(RootCA.from_pem(root_pem))
        node_ca = NodeCAServicer(self._store)

        watch = WatchServicer(self._store)
        broker = self.log_broker
        logs = LogsServicer(broker)
        leadership = self._leadership
        channels = LeaderChannels.mtls(self._security)
        local = rpcserver.control_server(
            self._listeners.control_socket,
            [ForwardInterceptor(leadership, channels, principal=LOCAL_OPERATOR)],
        )
        control_pb2_grpc.add_ControlServicer_to_server(control, local)
        watch_pb2_grpc.add_WatchServicer_to_server(watch, local)
        logs_pb2_grpc.add_LogsServicer_to_server(logs, local)

        cluster, self.remote_port = rpcserver.cluster_server(
            self._security,
            self._cluster_id,
            self._listeners.remote_api,
            extra_interceptors=[ForwardInterceptor(leadership, channels)],
        )
        control_pb2_grpc.add_ControlServicer_to_server(control, cluster)
        watch_pb2_grpc.add_WatchServicer_to_server(watch, cluster)
        logs_pb2_grpc.add_LogsServicer_to_server(logs, cluster)
        logs_pb2_grpc.add_LogBrokerServicer_to_server(LogBrokerServicer(broker), cluster)
        dispatcher_pb2_grpc.add_DispatcherServicer_to_server(dispatcher, cluster)
        ca_pb2_grpc.add_CAServicer_to_server(ca, cluster)
        ca_pb2_grpc.add_NodeCAServicer_to_server(node_ca, cluster)
        for add in self._register:
            add(cluster)

        servers: list[aio.Server] = [local, cluster]
        try:
            for srv in servers:
                await srv.start()
            join = await self._start_join_port(ca, node_ca, leadership, channels)
            servers.append(join)
            _log.info(
                "manager serving",
                control_socket=str(self._listeners.control_socket),
                remote_port=self.remote_port,
                join_port=self.join_port,
            )
            self.ready.set()

            def components() -> list[Component]:
                made = leader_components(self._store, self._clock, dispatcher)
                made.append(Component("log-broker", broker.run))
                if self._raft is not None:
                    reporter = ManagerStatusReporter(self._store, self._raft)
                    made.append(Component("manager-status", reporter.run))
                if self._membership is not None:
                    promoter = Promoter(self._membership)
                    roles = RoleManager(self._store, self._membership, self._clock)
                    made.append(Component("raft-promoter", promoter.run))
                    made.append(Component("role-manager", roles.run))
                return made

            async with asyncio.TaskGroup() as tg:
                tg.create_task(run_while_leader(leadership, components), name="leadership")
                tg.create_task(retarget_leader_channels(leadership, channels), name="retarget")
        finally:
            await asyncio.shield(
                asyncio.gather(*(srv.stop(STOP_GRACE) for srv in servers), return_exceptions=True)
            )
            await asyncio.shield(dispatcher.drain(SESSION_DRAIN))
            await asyncio.shield(channels.close())
            _log.info("manager stopped")


async def wait_for_cluster(store: MemoryStore) -> objects_pb2.Cluster:
    """The cluster object, waiting for it while this manager catches up (after a join)."""
    async with store.watch(kinds={"cluster"}) as sub:
        while True:
            clusters = store.view(lambda tx: tx.clusters.list())
            if clusters:
                return clusters[0]
            _log.info("waiting for the cluster state from the leader")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await anext(sub)


__all__ = ["Listeners", "Manager", "wait_for_cluster"]
