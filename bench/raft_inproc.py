"""In-process Raft benchmarks: commit throughput of three RaftNodes over mTLS, and snapshots.

Called by bench/raft.py. `commit_throughput` builds three `RaftNode`s in this one process (one
event loop), each with its own SQLite raft state, cluster-port server (mutual TLS, certificates
from a fresh cluster CA) and `GrpcTransport`, exactly the pieces a manager wires (see
swarmd/manager/raftnode/README.md), then runs N concurrent proposers on the leader for a fixed
time. Three paths are measured:

- `store`: `MemoryStore.update(create a secret)`, the path every control API write takes;
- `propose`: `RaftNode.propose([one StoreAction])` directly, the raft log alone (the store then
  applies each entry as a committed one);
- `batch`: `MemoryStore.batch` of `BATCH_UNITS` secret creations per call, committed as
  transactions of 200 actions (swarmkit's MaxChangesPerTransaction), one caller: batching as
  the orchestrators do it. Its rate is reported in store actions per second too.

`InProcessCluster` is also used by bench/raft_snapshot.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from grpc import aio

from bench.harness import Machine, free_port
from swarmd.api import objects_pb2, raft_pb2_grpc, store_pb2, types_pb2
from swarmd.ca import bootstrap
from swarmd.ca.certstore import credentials_from_pem
from swarmd.ca.rootca import Role, generate_key, key_to_pem, new_csr
from swarmd.ca.security import SecurityConfig
from swarmd.manager.raftnode import GrpcTransport, RaftNode, RaftServicer
from swarmd.manager.raftnode.settings import RaftSettings
from swarmd.manager.store import Batch, MemoryStore, Tx
from swarmd.rpc import server as rpcserver


def member_pems(boot: bootstrap.ClusterBootstrap, node_id: str) -> tuple[bytes, bytes, bytes]:
    """A manager's key, certificate and the root, as PEM (what a child process is given)."""
    key = generate_key()
    cert = boot.root_ca.sign_csr(
        new_csr(key), node_id, Role.MANAGER, boot.cluster_id, ["127.0.0.1"]
    )
    return key_to_pem(key), cert, boot.root_ca.cert_pem


def _security(boot: bootstrap.ClusterBootstrap, node_id: str) -> SecurityConfig:
    return SecurityConfig(credentials_from_pem(*member_pems(boot, node_id)))


async def start_member(
    root: Path,
    member: types_pb2.RaftMember,
    founders: list[types_pb2.RaftMember],
    security: SecurityConfig,
    cluster_id: str,
    settings: RaftSettings,
) -> tuple[RaftNode, MemoryStore, aio.Server, asyncio.Task[None]]:
    """Open, bootstrap (as one of `founders`), serve and run one member, as a manager does."""
    node = await RaftNode.open(
        root / member.node_id, GrpcTransport(security), settings, member=member
    )
    await node.bootstrap(founders)
    store = MemoryStore(proposer=node)
    await node.recover(store)
    server, _ = rpcserver.cluster_server(security, cluster_id, member.addr)
    raft_pb2_grpc.add_RaftServicer_to_server(RaftServicer(node, node.address_book.get), server)
    await server.start()
    task = asyncio.create_task(node.run(), name=f"raft-{member.raft_id}")
    return node, store, server, task


BATCH_UNITS = 1000


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_summary(samples: list[float]) -> dict[str, float]:
    """p50/p99/max of latencies in seconds, reported in milliseconds."""
    return {
        "p50_ms": round(1000 * statistics.median(samples), 2),
        "p99_ms": round(1000 * _pct(samples, 0.99), 2),
        "max_ms": round(1000 * max(samples), 2),
    }


async def run_load(
    call: Callable[[int, int], Awaitable[None]], concurrency: int, duration: float
) -> dict[str, Any]:
    """Run `call(worker, seq)` in `concurrency` loops for `duration` s: rate and latencies."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop_at = time.monotonic() + duration

    async def worker(w: int) -> None:
        seq = 0
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            try:
                await call(w, seq)
            except Exception as err:
                errors[type(err).__name__] = errors.get(type(err).__name__, 0) + 1
            else:
                latencies.append(time.monotonic() - t0)
            seq += 1

    machine = Machine.start()
    t0 = time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.monotonic() - t0
    out: dict[str, Any] = {
        "concurrency": concurrency,
        "duration_s": round(elapsed, 2),
        "committed": len(latencies),
        "per_s": round(len(latencies) / elapsed, 1),
        "errors": errors,
        "machine": machine.stop(),
    }
    if latencies:
        out.update(latency_summary(latencies))
    return out


def _secret_action(name: str) -> store_pb2.StoreAction:
    s = objects_pb2.Secret(id=name)
    s.spec.annotations.name = name
    s.spec.data = b"x" * 32
    return store_pb2.StoreAction(action=store_pb2.STORE_ACTION_KIND_CREATE, secret=s)


def _create_secret(secret: objects_pb2.Secret) -> Callable[[Tx], objects_pb2.Secret]:
    return lambda tx: tx.secrets.create(secret)


class InProcessCluster:
    """Three RaftNodes over GrpcTransport with real mTLS on 127.0.0.1, in this process."""

    def __init__(self, root: Path, settings: RaftSettings | None = None) -> None:
        self.root = root
        self.settings = settings or RaftSettings()
        self.nodes: dict[int, RaftNode] = {}
        self.stores: dict[int, MemoryStore] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._servers: list[aio.Server] = []
        self.members: dict[int, types_pb2.RaftMember] = {}

    async def start(self, ids: tuple[int, ...] = (1, 2, 3)) -> None:
        """Create the CA and the three members' identities; start the members in `ids`."""
        self._boot = bootstrap.init_cluster_ca("mgr-1", "127.0.0.1")
        ports = {i: free_port() for i in (1, 2, 3)}
        self.members = {
            i: types_pb2.RaftMember(raft_id=i, node_id=f"node-{i}", addr=f"127.0.0.1:{ports[i]}")
            for i in (1, 2, 3)
        }
        for i in ids:
            await self.start_member(i)

    async def start_member(self, i: int) -> RaftNode:
        """Open, bootstrap (all three are founders), serve and run member `i`."""
        m = self.members[i]
        node, store, server, task = await start_member(
            self.root,
            m,
            list(self.members.values()),
            _security(self._boot, m.node_id),
            self._boot.cluster_id,
            self.settings,
        )
        self._servers.append(server)
        self.nodes[i], self.stores[i] = node, store
        self._tasks.append(task)
        return node

    async def leader(self, within: float = 30.0) -> int:
        deadline = time.monotonic() + within
        while True:
            leaders = [i for i, n in self.nodes.items() if n.leadership.state.is_leader]
            if len(leaders) == 1:
                return leaders[0]
            if time.monotonic() > deadline:
                raise RuntimeError(f"no single raft leader within {within}s")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for node in self.nodes.values():
            await node.close()
        for server in self._servers:
            await server.stop(None)


def _print(where: str, path: str, r: dict[str, Any], actions_per_s: float) -> None:
    print(
        f"  {where} {path:7s} x{r['concurrency']:<3d} {actions_per_s:8.1f} actions/s "
        f"({r['per_s']} calls/s) p50 {r.get('p50_ms', '-')} ms p99 {r.get('p99_ms', '-')} ms "
        f"errors {r['errors']}",
        flush=True,
    )


async def commit_throughput(
    concurrencies: list[int], duration: float, root: Path | None = None
) -> list[dict[str, Any]]:
    """`store` and `propose` at each concurrency, then `batch`, on one fresh 3-node cluster."""
    tmp = root or Path(tempfile.mkdtemp(prefix="swarmd-bench-raft-"))
    cluster = InProcessCluster(tmp)
    try:
        await cluster.start()
        lead = await cluster.leader()
        return await measure_paths(
            cluster.stores[lead], cluster.nodes[lead], concurrencies, duration
        )
    finally:
        await cluster.close()
        if root is None:
            shutil.rmtree(tmp, ignore_errors=True)


async def measure_paths(
    store: MemoryStore,
    node: RaftNode,
    concurrencies: list[int],
    duration: float,
    where: str = "in-process",
) -> list[dict[str, Any]]:
    """The three paths (store, propose, batch) against a leader's store and raft node."""
    results: list[dict[str, Any]] = []
    # warm up channels and SQLite before timing
    for k in range(20):
        await node.propose([_secret_action(f"warm-{k}")])
    for path in ("store", "propose"):
        for n in concurrencies:
            tag = f"{path}-{n}"

            async def via_store(w: int, seq: int, tag: str = tag) -> None:
                action = _secret_action(f"{tag}-{w}-{seq}")
                await store.update(lambda tx: tx.secrets.create(action.secret))

            async def via_propose(w: int, seq: int, tag: str = tag) -> None:
                await node.propose([_secret_action(f"{tag}-{w}-{seq}")])

            r = await run_load(via_store if path == "store" else via_propose, n, duration)
            results.append({"path": path, "actions_per_s": r["per_s"], **r})
            _print(where, path, r, r["per_s"])

    async def via_batch(w: int, seq: int) -> None:
        def units(b: Batch) -> None:
            for j in range(BATCH_UNITS):
                b.update(_create_secret(_secret_action(f"batch-{w}-{seq}-{j}").secret))

        await store.batch(units)

    r = await run_load(via_batch, 1, duration)
    rate = round(r["per_s"] * BATCH_UNITS, 1)
    results.append({"path": "batch", "units_per_call": BATCH_UNITS, "actions_per_s": rate, **r})
    _print(where, "batch", r, rate)
    return results
