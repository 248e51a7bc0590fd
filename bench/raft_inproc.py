"""In-process Raft benchmarks: commit throughput of three RaftNodes over mTLS, and snapshots.

Called by bench/raft.py. `commit_throughput` builds three `RaftNode`s in this one process (one
event loop), each with its own SQLite raft state, cluster-port server (mutual TLS, certificates
from a fresh cluster CA) and `GrpcTransport`, exactly the pieces a manager wires (see
swarmd/manager/raftnode/README.md), then runs N concurrent proposers on the leader for a fixed
time. Two paths are measured:

- `store`: `MemoryStore.update(create a secret)`, the path every control API write takes;
- `propose`: `RaftNode.propose([one StoreAction])` directly, the raft log alone (the store then
  applies each entry as a committed one).

`snapshot_100k` fills a MemoryStore with 100,000 tasks and times the snapshot path of a manager:
take the store snapshot, serialize it as the raft node does, write it durably (RaftStorage),
send it to a peer over GrpcTransport (chunked, 4 MiB threshold), parse it and restore it into a
fresh store.
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
from swarmd.manager.raftnode import DurableStorage, GrpcTransport, RaftNode, RaftServicer
from swarmd.manager.raftnode.settings import RaftSettings
from swarmd.manager.store import MemoryStore
from swarmd.raft import (
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    RaftID,
    Snapshot,
    SnapshotMetadata,
)
from swarmd.rpc import server as rpcserver

SNAPSHOT_FORMAT = 1


def _security(boot: bootstrap.ClusterBootstrap, node_id: str) -> SecurityConfig:
    key = generate_key()
    cert = boot.root_ca.sign_csr(
        new_csr(key), node_id, Role.MANAGER, boot.cluster_id, ["127.0.0.1"]
    )
    return SecurityConfig(credentials_from_pem(key_to_pem(key), cert, boot.root_ca.cert_pem))


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


class InProcessCluster:
    """Three RaftNodes over GrpcTransport with real mTLS on 127.0.0.1, in this process."""

    def __init__(self, root: Path, settings: RaftSettings | None = None) -> None:
        self.root = root
        self.settings = settings or RaftSettings()
        self.nodes: dict[int, RaftNode] = {}
        self.stores: dict[int, MemoryStore] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._servers: list[aio.Server] = []

    async def start(self) -> None:
        boot = bootstrap.init_cluster_ca("mgr-1", "127.0.0.1")
        ports = {i: free_port() for i in (1, 2, 3)}
        members = [
            types_pb2.RaftMember(raft_id=i, node_id=f"node-{i}", addr=f"127.0.0.1:{ports[i]}")
            for i in (1, 2, 3)
        ]
        for m in members:
            security = _security(boot, m.node_id)
            node = await RaftNode.open(
                self.root / m.node_id, GrpcTransport(security), self.settings, member=m
            )
            await node.bootstrap(members)
            store = MemoryStore(proposer=node)
            await node.recover(store)
            server, _ = rpcserver.cluster_server(security, boot.cluster_id, m.addr)
            raft_pb2_grpc.add_RaftServicer_to_server(
                RaftServicer(node, node.address_book.get), server
            )
            await server.start()
            self._servers.append(server)
            self.nodes[m.raft_id], self.stores[m.raft_id] = node, store
        for i, node in self.nodes.items():
            self._tasks.append(asyncio.create_task(node.run(), name=f"raft-{i}"))

    async def leader(self, within: float = 30.0) -> int:
        deadline = time.monotonic() + within
        while True:
            leaders = [i for i, n in self.nodes.items() if n.leadership.state.is_leader]
            if len(leaders) == 1:
                return leaders[0]
            if time.monotonic() > deadline:
                raise RuntimeError("no single raft leader within {within}s")
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


async def commit_throughput(
    concurrencies: list[int], duration: float, root: Path | None = None
) -> list[dict[str, Any]]:
    """Both paths (`store`, `propose`) at each concurrency, on one fresh 3-node cluster."""
    tmp = root or Path(tempfile.mkdtemp(prefix="swarmd-bench-raft-"))
    cluster = InProcessCluster(tmp)
    results: list[dict[str, Any]] = []
    try:
        await cluster.start()
        lead = await cluster.leader()
        store, node = cluster.stores[lead], cluster.nodes[lead]
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
                results.append({"path": path, **r})
                print(
                    f"  in-process {path:7s} x{n:<3d} {r['per_s']:8.1f}/s "
                    f"p50 {r.get('p50_ms', '-')} ms p99 {r.get('p99_ms', '-')} ms "
                    f"errors {r['errors']}",
                    flush=True,
                )
    finally:
        await cluster.close()
        if root is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return results


def _task(i: int) -> objects_pb2.Task:
    """A task as the orchestrator and dispatcher leave it: spec, node, status, names."""
    t = objects_pb2.Task(
        id=f"{i:025x}",
        service_id=f"svc{i // 1000:022x}",
        slot=i % 1000 + 1,
        node_id=f"node{i % 50:021x}",
        desired_state=types_pb2.TASK_STATE_RUNNING,
    )
    t.spec.container.image = "swarmd-busybox:latest"
    t.spec.container.command.extend(["sleep", "100000"])
    t.annotations.name = f"web-{i // 1000}.{i % 1000 + 1}"
    t.service_annotations.name = f"web-{i // 1000}"
    t.status.state = types_pb2.TASK_STATE_RUNNING
    t.status.message = "started"
    t.status.container.container_id = f"{i:064x}"
    t.status.timestamp.FromNanoseconds(1_700_000_000_000_000_000 + i)
    return t


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


class _Receiver:
    """A RaftHandler that notes when the (reassembled) snapshot message arrives."""

    def __init__(self) -> None:
        self.got: asyncio.Future[tuple[Message, float]] = asyncio.get_running_loop().create_future()

    def receive(self, msg: Message) -> None:
        if msg.type is MessageType.SNAP and not self.got.done():
            self.got.set_result((msg, time.perf_counter()))

    def report_unreachable(self, peer: RaftID) -> None: ...

    def report_snapshot(self, peer: RaftID, *, failed: bool) -> None: ...


async def snapshot_100k(tasks: int = 100_000, root: Path | None = None) -> dict[str, Any]:
    """Size and times of a store snapshot of `tasks` tasks: take, write, send, install."""
    tmp = root or Path(tempfile.mkdtemp(prefix="swarmd-bench-snap-"))
    machine = Machine.start()
    out: dict[str, Any] = {"tasks": tasks}
    try:
        store = MemoryStore()
        t0 = time.perf_counter()
        for start in range(0, tasks, 1000):
            actions = [
                store_pb2.StoreAction(action=store_pb2.STORE_ACTION_KIND_CREATE, task=_task(i))
                for i in range(start, min(tasks, start + 1000))
            ]
            store.apply_committed(actions, store.version + 1)
        out["fill_s"] = round(time.perf_counter() - t0, 2)
        index = store.version

        snap, out["take_s"] = _timed(store.snapshot)
        data, out["serialize_s"] = _timed(
            lambda: store_pb2.Snapshot(
                version=SNAPSHOT_FORMAT, store=snap, store_version=index
            ).SerializeToString()
        )
        out["bytes"] = len(data)
        out["mib"] = round(len(data) / 2**20, 1)

        storage = await DurableStorage.open(tmp / "leader")
        # the log holds the entries the snapshot covers (one per 1,000-task transaction)
        entries = [Entry(term=1, index=i) for i in range(1, index + 1)]
        await storage.append(entries, HardState(term=1, vote=RaftID(1), commit=index))
        t0 = time.perf_counter()
        await storage.create_snapshot(index, ConfState(voters=frozenset({RaftID(1)})), data, keep=0)
        out["write_s"] = round(time.perf_counter() - t0, 3)
        await storage.close()

        # the leader -> new member transfer over mTLS gRPC, in chunks (4 MiB threshold)
        boot = bootstrap.init_cluster_ca("mgr-1", "127.0.0.1")
        sec1, sec2 = _security(boot, "node-1"), _security(boot, "node-2")
        port = free_port()
        server, _ = rpcserver.cluster_server(sec2, boot.cluster_id, f"127.0.0.1:{port}")
        receiver = _Receiver()
        book = {1: types_pb2.RaftMember(raft_id=1, node_id="node-1", addr="127.0.0.1:1")}
        raft_pb2_grpc.add_RaftServicer_to_server(RaftServicer(receiver, book.get), server)
        await server.start()
        transport = GrpcTransport(sec1)
        sender = asyncio.create_task(transport.run(_Receiver()))
        try:
            transport.set_peer(RaftID(2), f"127.0.0.1:{port}")
            # a heartbeat first so the channel is up: the figure is the transfer itself
            transport.send(Message(type=MessageType.HEARTBEAT, to=RaftID(2), from_=RaftID(1)))
            await asyncio.sleep(1.0)
            meta = SnapshotMetadata(index=index, term=1, conf_state=ConfState(frozenset({1, 2})))
            msg = Message(
                type=MessageType.SNAP,
                to=RaftID(2),
                from_=RaftID(1),
                term=1,
                snapshot=Snapshot(metadata=meta, data=data),
            )
            t0 = time.perf_counter()
            transport.send(msg)
            got, arrived = await asyncio.wait_for(receiver.got, 120)
            out["send_s"] = round(arrived - t0, 3)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            await server.stop(None)

        # install on the new member: durable first (as RaftNode._persist), then the store
        assert got.snapshot is not None
        storage2 = await DurableStorage.open(tmp / "joiner")
        t0 = time.perf_counter()
        await storage2.apply_snapshot(got.snapshot)
        out["install_write_s"] = round(time.perf_counter() - t0, 3)
        await storage2.close()
        payload, out["parse_s"] = _timed(lambda: store_pb2.Snapshot.FromString(got.snapshot.data))
        fresh = MemoryStore()
        _, out["restore_s"] = _timed(lambda: fresh.restore(payload.store, index))
        restored = fresh.view(lambda tx: len(tx.tasks.list()))
        if restored != tasks:
            raise RuntimeError(f"restored store holds {restored} tasks, not {tasks}")
        out["restored_tasks"] = restored
        for k in ("take_s", "serialize_s", "parse_s", "restore_s"):
            out[k] = round(out[k], 3)
        out["take_total_s"] = round(out["take_s"] + out["serialize_s"] + out["write_s"], 3)
        out["install_total_s"] = round(
            out["send_s"] + out["install_write_s"] + out["parse_s"] + out["restore_s"], 3
        )
    finally:
        out["machine"] = machine.stop()
        if root is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return out
