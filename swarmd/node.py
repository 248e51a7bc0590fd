"""Node: the composition root of one swarmd process (manager and/or agent).

On start it finds or obtains this node's identity: certificates already in the state dir, a join
with `--join-addr/--join-token`, or, for an empty state dir without them, a new cluster. A manager
then opens its durable store, serves the control API, CA and dispatcher (`manager.Manager`), and
runs an agent like every node does; a worker runs only the agent. Certificates renew in the
background. Cancellation (SIGTERM) stops everything cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable

import structlog
from grpc import aio

from swarmd import errors
from swarmd.agent import Agent, Remotes, describe_host
from swarmd.agent.exec import Executor
from swarmd.agent.reporter import StatusReporter
from swarmd.agent.taskdb import TaskDB
from swarmd.agent.worker import Worker
from swarmd.api import objects_pb2, specs_pb2, types_pb2
from swarmd.ca import bootstrap, certstore, join
from swarmd.ca.renewer import Renewer
from swarmd.ca.security import SecurityConfig
from swarmd.config import NodeConfig
from swarmd.manager.controlapi.defaults import default_cluster_spec
from swarmd.manager.manager import SESSION_DRAIN, STOP_GRACE, Listeners, Manager
from swarmd.manager.replica import Replica, open_replica
from swarmd.manager.store import MemoryStore, Tx
from swarmd.rpc.channel import manager_channel

_log = structlog.get_logger(component="node")

MANAGERS_FILE = "managers.json"
# How long a stopping raft member waits for its manager's drain to end.
MANAGER_DRAIN = STOP_GRACE + SESSION_DRAIN + 1.0
TASKS_DB = "worker/tasks.db"

# Makes the node's executor from (node id, engine address); entering it starts the executor.
ExecutorFactory = Callable[[str, str], contextlib.AbstractAsyncContextManager[Executor]]


def docker_executor(
    node_id: str, engine_addr: str
) -> contextlib.AbstractAsyncContextManager[Executor]:
    """The real executor: containers on the Docker Engine at `engine_addr`."""
    from swarmd.dockerexec import DockerExecutor

    return DockerExecutor(node_id, base_url=engine_addr)


class Node:
    """One swarmd process."""

    def __init__(self, config: NodeConfig, executor_factory: ExecutorFactory | None = None) -> None:
        self._cfg = config
        self._executor_factory = executor_factory or docker_executor
        self.manager: Manager | None = None
        self.agent: Agent | None = None

    async def run(self) -> None:
        cfg = self._cfg
        creds = certstore.load(cfg.state_dir)
        fresh_cluster: bootstrap.ClusterBootstrap | None = None
        joined_managers: list[str] = []
        if creds is None and cfg.join_addr is not None:
            joined = await join.join_cluster(
                str(cfg.join_addr),
                cfg.join_token,
                cfg.state_dir,
                cfg.hostname,
                [cfg.advertised_remote_api()],
            )
            creds = joined.credentials
            joined_managers = [m.addr for m in joined.managers if m.addr]
        elif creds is None:
            fresh_cluster = bootstrap.init_cluster_ca(cfg.hostname, cfg.advertised_remote_api())
            creds = fresh_cluster.credentials
        structlog.contextvars.bind_contextvars(node_id=creds.node_id, role=creds.role_name)
        _log.info("node starting", hostname=cfg.hostname, cluster_id=creds.cluster_id)

        security = SecurityConfig(creds)
        own = [cfg.advertised_remote_api()] if creds.is_manager else []
        remotes = Remotes(cfg.state_dir / MANAGERS_FILE, own)
        if joined_managers:
            remotes.update([*remotes.addrs(), *joined_managers])

        renewer = Renewer(security, cfg.state_dir, lambda: self._renewal_channel(remotes, security))

        def on_node(node: objects_pb2.Node) -> None:
            # A promotion or demotion: the new role comes with a renewed certificate.
            if node.spec.desired_role != _cert_role(security):
                _log.info("desired role differs from the certificate; renewing")
                renewer.request_renewal()

        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                self._supervise_manager(security, fresh_cluster, joined_managers, remotes),
                name="manager-role",
            )
            tg.create_task(self._run_agent(creds.node_id, remotes, security, on_node), name="agent")
            tg.create_task(renewer.run(), name="renewer")

    async def _supervise_manager(
        self,
        security: SecurityConfig,
        fresh: bootstrap.ClusterBootstrap | None,
        joined_managers: list[str],
        remotes: Remotes,
    ) -> None:
        """Run the manager while this node's certificate says manager; follow role changes.

        A promotion (a renewed manager certificate) starts a manager that joins the raft
        cluster through the known managers; a demotion (a worker certificate, or this raft
        member removed) stops it and discards its raft state, so a later promotion joins anew.
        """
        cfg = self._cfg
        own = cfg.advertised_remote_api()
        first = True
        while True:
            if not security.credentials.is_manager:
                await security.wait_changed()
                continue
            join_through = joined_managers if first else [a for a in remotes.addrs() if a != own]
            try:
                async with asyncio.TaskGroup() as tg:
                    replica = await self._start_manager(
                        tg, security, fresh if first else None, join_through
                    )
                    await _until_demoted(security, replica)
                    raise _Demoted
            except* _Demoted:
                pass
            first = False
            self.manager = None
            _log.info("manager stopped: this node is no longer a manager")
            await asyncio.to_thread(shutil.rmtree, cfg.raft_dir, True)
            remotes.update([a for a in remotes.addrs() if a != own] or remotes.addrs())

    async def _describe(self, executor: Executor) -> types_pb2.NodeDescription:
        """The engine's view of this node, with the operator's hostname and our addresses."""
        cfg = self._cfg
        try:
            desc = await executor.describe()
        except errors.SwarmError as err:
            _log.warning("engine unavailable; describing the host instead", error=str(err))
            desc = describe_host(cfg.hostname, [])
        desc.hostname = cfg.hostname
        del desc.addresses[:]
        desc.addresses.append(cfg.advertised_remote_api())
        return desc

    async def _run_agent(
        self,
        node_id: str,
        remotes: Remotes,
        security: SecurityConfig,
        on_node: Callable[[objects_pb2.Node], None],
    ) -> None:
        cfg = self._cfg
        (cfg.state_dir / TASKS_DB).parent.mkdir(mode=0o700, exist_ok=True)
        async with contextlib.AsyncExitStack() as stack:
            executor = await stack.enter_async_context(
                self._executor_factory(node_id, cfg.engine_addr)
            )
            db = await TaskDB.open(cfg.state_dir / TASKS_DB)
            stack.push_async_callback(db.close)
            reporter = StatusReporter()
            self.agent = Agent(
                remotes,
                lambda addr: manager_channel(addr, security),
                lambda: self._describe(executor),
                Worker(executor, db, reporter),
                reporter,
                on_node,
            )
            await self.agent.run()

    @staticmethod
    def _renewal_channel(remotes: Remotes, security: SecurityConfig) -> aio.Channel:
        addr = remotes.pick()
        if addr is None:
            raise errors.Unavailable("no manager known to renew the certificate with")
        return manager_channel(addr, security)

    async def _start_manager(
        self,
        tg: asyncio.TaskGroup,
        security: SecurityConfig,
        fresh: bootstrap.ClusterBootstrap | None,
        join_through: list[str],
    ) -> Replica:
        cfg = self._cfg
        replica = await open_replica(
            cfg.raft_dir,
            security,
            cfg.advertised_remote_api(),
            new_cluster=fresh is not None,
            join_through=join_through,
            force_new_cluster=cfg.force_new_cluster,
        )
        # Set while no manager runs on this replica: on a stop the raft member waits for it.
        manager_stopped = asyncio.Event()
        manager_stopped.set()
        tg.create_task(_run_replica(replica, manager_stopped), name="raft")
        store = replica.store
        if fresh is not None:
            await replica.wait_leader()
            await self._create_cluster(store, fresh, replica.node.id)
            # Identity files are written only once the cluster they belong to is durable.
            certstore.save(cfg.state_dir, fresh.credentials)
        if replica.node.leadership.state.is_leader:
            await self._refresh_own_node(store, security.credentials.node_id)
        self.manager = Manager(
            store,
            security,
            security.credentials.cluster_id,
            Listeners(cfg.control_socket, str(cfg.listen_remote_api), str(cfg.listen_join_api)),
            leadership=replica.leadership,
            register=[replica.register],
            raft=replica.node,
            membership=replica.membership,
        )
        manager_stopped.clear()
        tg.create_task(_run_manager(self.manager, manager_stopped), name="manager")
        return replica

    async def _create_cluster(
        self, store: MemoryStore, fresh: bootstrap.ClusterBootstrap, raft_id: int
    ) -> None:
        cfg = self._cfg
        cluster = objects_pb2.Cluster(id=fresh.cluster_id, spec=default_cluster_spec())
        cluster.root_ca.CopyFrom(fresh.root_ca_message)
        node = objects_pb2.Node(
            id=fresh.credentials.node_id,
            spec=specs_pb2.NodeSpec(
                desired_role=types_pb2.NODE_ROLE_MANAGER,
                membership=specs_pb2.NodeSpec.MEMBERSHIP_ACCEPTED,
                availability=specs_pb2.NodeSpec.AVAILABILITY_ACTIVE,
            ),
            role=types_pb2.NODE_ROLE_MANAGER,
            description=describe_host(cfg.hostname, [cfg.advertised_remote_api()]),
        )
        node.manager_status.addr = cfg.advertised_remote_api()
        node.manager_status.leader = True
        node.manager_status.reachability = types_pb2.ManagerStatus.REACHABILITY_REACHABLE
        node.manager_status.raft_id = raft_id

        def fn(tx: Tx) -> None:
            tx.clusters.create(cluster)
            tx.nodes.create(node)

        await store.update(fn)
        _log.info("cluster created", cluster_id=fresh.cluster_id)

    async def _refresh_own_node(self, store: MemoryStore, node_id: str) -> None:
        """Record this manager's current address (it may have moved since the last start)."""
        addr = self._cfg.advertised_remote_api()

        def fn(tx: Tx) -> None:
            node = tx.nodes.get(node_id)
            if node is None or node.manager_status.addr == addr:
                return
            node.manager_status.addr = addr
            tx.nodes.update(node)

        await store.update(fn)


class _Demoted(Exception):
    """Ends the manager's task group when the node stops being a manager."""


def _cert_role(security: SecurityConfig) -> int:
    if security.credentials.is_manager:
        return types_pb2.NODE_ROLE_MANAGER
    return types_pb2.NODE_ROLE_WORKER


async def _until_demoted(security: SecurityConfig, replica: Replica) -> None:
    """Return once the certificate is a worker's or this raft member was removed."""
    while security.credentials.is_manager and not replica.node.removed:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await security.wait_changed()


async def _run_manager(manager: Manager, stopped: asyncio.Event) -> None:
    try:
        await manager.run()
    finally:
        stopped.set()


async def _run_replica(replica: Replica, manager_stopped: asyncio.Event) -> None:
    """Run the raft member; on a stop, only once the manager has drained (or after a bound).

    The manager's servers finish the calls in flight for up to STOP_GRACE: their writes must
    still commit, so each caller learns its write's true outcome instead of "raft member
    stopped" for a write that may be in the log already.
    """
    run = asyncio.ensure_future(replica.run())
    try:
        await asyncio.shield(run)
    except asyncio.CancelledError:
        waiter = asyncio.ensure_future(manager_stopped.wait())
        try:
            await asyncio.wait({waiter}, timeout=MANAGER_DRAIN)
        finally:
            waiter.cancel()
            run.cancel()
            await asyncio.wait({run})
        raise
    finally:
        await asyncio.shield(replica.close())


__all__ = ["Node"]
