"""Snapshot benchmarks of a store holding 100,000 tasks: the pieces, and a member catching up.

Called by bench/raft.py. `snapshot_100k` times each step of a manager's snapshot path on a
MemoryStore filled directly with 100,000 tasks: take the references to the stored objects (on
the loop) and encode them (on a worker thread) as `Snapshotter.maybe_snapshot` (snapshots.py)
does, write it durably (`DurableStorage.create_snapshot`: SQLite + an fsynced file), send it over
`GrpcTransport` with mTLS (chunked above 4 MiB), write it on the receiver
(`DurableStorage.apply_snapshot`), parse it and build tables (worker thread), and have a fresh
store adopt them (on the loop), as `Snapshotter.install` (snapshots.py) does.

`snapshot_catch_up` is the same path end to end through real RaftNodes (bench/raft_inproc.py):
two members of a three-member cluster commit 100,000 tasks (`MemoryStore.batch`), snapshot and
compact their logs; then the third member starts empty and is caught up by the leader's snapshot.
A probe coroutine records the longest stall of the (shared) event loop meanwhile: a manager's
loop blocked longer than the election timeout (1 s by default) misses its heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import Machine, free_port
from bench.raft_inproc import InProcessCluster, _secret_action, _security
from swarmd.api import objects_pb2, raft_pb2_grpc, store_pb2, types_pb2
from swarmd.ca import bootstrap
from swarmd.manager.raftnode import DurableStorage, GrpcTransport, RaftServicer, snapshots
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

        # As Snapshotter.maybe_snapshot: references on the loop, encoding on a worker thread.
        refs, out["take_s"] = _timed(store.snapshot_refs)
        data, out["serialize_s"] = _timed(
            lambda: snapshots.encode(refs, store_pb2.ClusterSnapshot(), index)
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
            meta = SnapshotMetadata(
                index=index, term=1, conf_state=ConfState(frozenset({RaftID(1), RaftID(2)}))
            )
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
        snapshot = got.snapshot
        assert snapshot is not None
        storage2 = await DurableStorage.open(tmp / "joiner")
        t0 = time.perf_counter()
        await storage2.apply_snapshot(snapshot)
        out["install_write_s"] = round(time.perf_counter() - t0, 3)
        await storage2.close()
        # As Snapshotter.install: parse and build tables on a worker thread, adopt on
        # the loop.
        payload, out["parse_s"] = _timed(lambda: store_pb2.Snapshot.FromString(snapshot.data))
        fresh = MemoryStore()
        built, out["build_s"] = _timed(lambda: MemoryStore.build_tables(payload.store))
        _, out["adopt_s"] = _timed(lambda: fresh.restore_built(built, index))
        out["restore_s"] = out["build_s"] + out["adopt_s"]
        restored = fresh.view(lambda tx: len(tx.tasks.list()))
        if restored != tasks:
            raise RuntimeError(f"restored store holds {restored} tasks, not {tasks}")
        out["restored_tasks"] = restored
        out["on_loop_s"] = round(out["take_s"] + out["adopt_s"], 3)
        for k in ("take_s", "serialize_s", "parse_s", "build_s", "adopt_s", "restore_s"):
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


@dataclass
class LoopProbe:
    """Sleeps `period` s in a loop and keeps the longest gap beyond it (an event-loop stall)."""

    period: float = 0.01
    worst: float = 0.0
    last: float = 0.0

    async def run(self) -> None:
        self.last = time.monotonic()
        while True:
            await asyncio.sleep(self.period)
            self._note()

    def _note(self) -> None:
        now = time.monotonic()
        self.worst = max(self.worst, now - self.last - self.period)
        self.last = now

    def take(self) -> float:
        """The longest stall since the last take, counting one that just ended (the probe may
        not have run yet after it)."""
        self._note()
        worst, self.worst = self.worst, 0.0
        return round(max(worst, 0.0), 3)


async def _until(pred: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


async def snapshot_catch_up(tasks: int = 100_000, root: Path | None = None) -> dict[str, Any]:
    """A new member caught up by a snapshot of `tasks` tasks, through real RaftNodes."""
    tmp = root or Path(tempfile.mkdtemp(prefix="swarmd-bench-catchup-"))
    # keep_entries=0: the log before the snapshot is gone, so member 3 needs the snapshot
    snap_every = 1000
    cluster = InProcessCluster(tmp, RaftSettings(snapshot_interval=snap_every, keep_entries=0))
    probe = LoopProbe()
    prober = asyncio.create_task(probe.run())
    machine = Machine.start()
    out: dict[str, Any] = {"tasks": tasks, "snapshot_interval": snap_every}
    try:
        await cluster.start(ids=(1, 2))
        lead = await cluster.leader()
        store, node = cluster.stores[lead], cluster.nodes[lead]
        t0 = time.perf_counter()

        def fill(b: Any) -> None:
            for i in range(tasks):
                task = _task(i)
                b.update(lambda tx, task=task: tx.tasks.create(task))

        await store.batch(fill)
        out["fill_s"] = round(time.perf_counter() - t0, 2)
        out["fill_entries"] = node.applied
        out["fill_stall_s"] = probe.take()
        # small writes until the applied index reaches the snapshot interval
        t0 = time.perf_counter()
        k = 0
        while node.applied < snap_every:
            await node.propose([_secret_action(f"pad-{k}")])
            k += 1
        await _until(
            lambda: all(n.status().applied >= snap_every for n in cluster.nodes.values()),
            60,
            "the snapshot index",
        )
        await _until(
            lambda: node._storage.snapshot().metadata.index >= snap_every,
            120,
            "the leader's snapshot",
        )
        out["snapshot_taken_s"] = round(time.perf_counter() - t0, 2)
        out["snapshot_stall_s"] = probe.take()
        term_before = node.status().hard_state.term
        version = store.version
        t0 = time.perf_counter()
        await cluster.start_member(3)
        joiner = cluster.stores[3]
        await _until(lambda: joiner.version >= version, 300, "member 3 to catch up")
        out["catch_up_s"] = round(time.perf_counter() - t0, 2)
        out["catch_up_stall_s"] = probe.take()
        count = joiner.view(lambda tx: len(tx.tasks.list()))
        if count != tasks:
            raise RuntimeError(f"member 3 holds {count} tasks, not {tasks}")
        out["term_before"] = term_before
        out["term_after"] = max(n.status().hard_state.term for n in cluster.nodes.values())
    finally:
        prober.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await prober
        out["machine"] = machine.stop()
        await cluster.close()
        if root is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return out
