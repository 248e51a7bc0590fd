"""Raft commit throughput with each of the three managers in a process of its own.

Called by bench/raft.py (phase `procs`). The leader, member 1, runs in the bench process with
the proposers; members 2 and 3 each run in a child process (multiprocessing, spawn) with their
own event loop, SQLite raft state, cluster-port server (mutual TLS, certificates from a fresh
cluster CA) and GrpcTransport. These are the pieces of `InProcessCluster` (raft_inproc.py),
but as in a real three-manager cluster the followers persist and apply on their own
interpreters instead of taking the leader's. The followers are given a 10 s election timeout
so that member 1, at the default 1 s, leads. Every process uses swarmd's garbage-collector
settings (`swarmd.gctuning`), as a manager process does. The same paths as the in-process phase are
measured on the leader (`measure_paths`): MemoryStore.update, RaftNode.propose and
MemoryStore.batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import free_port
from bench.raft_inproc import measure_paths, member_pems, start_member
from swarmd import gctuning
from swarmd.api import types_pb2
from swarmd.ca import bootstrap
from swarmd.ca.certstore import credentials_from_pem
from swarmd.ca.security import SecurityConfig
from swarmd.manager.raftnode.settings import RaftSettings

FOLLOWER_ELECTION_TICK = 100  # 10 s at the default tick: member 1 campaigns first


def _follower(
    root: str,
    index: int,
    members: list[bytes],
    pems: tuple[bytes, bytes, bytes],
    cluster_id: str,
) -> None:
    """A child process: run member `index` until terminated."""
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    gctuning.configure()  # as swarmd's main does
    founders = [types_pb2.RaftMember.FromString(m) for m in members]
    security = SecurityConfig(credentials_from_pem(*pems))
    settings = RaftSettings(election_tick=FOLLOWER_ELECTION_TICK)

    async def run() -> None:
        _, _, _, task = await start_member(
            Path(root), founders[index], founders, security, cluster_id, settings
        )
        await task

    asyncio.run(run())


async def commit_throughput_procs(
    concurrencies: list[int], duration: float, root: Path | None = None
) -> list[dict[str, Any]]:
    """The in-process phase's paths, with the two followers in processes of their own."""
    tmp = root or Path(tempfile.mkdtemp(prefix="swarmd-bench-raftp-"))
    boot = bootstrap.init_cluster_ca("mgr-1", "127.0.0.1")
    founders = [
        types_pb2.RaftMember(raft_id=i, node_id=f"node-{i}", addr=f"127.0.0.1:{free_port()}")
        for i in (1, 2, 3)
    ]
    encoded = [m.SerializeToString() for m in founders]
    ctx = multiprocessing.get_context("spawn")
    children = [
        ctx.Process(
            target=_follower,
            args=(str(tmp), i, encoded, member_pems(boot, founders[i].node_id), boot.cluster_id),
            daemon=True,
        )
        for i in (1, 2)
    ]
    for child in children:
        child.start()
    node, store, server, task = await start_member(
        tmp,
        founders[0],
        founders,
        SecurityConfig(credentials_from_pem(*member_pems(boot, "node-1"))),
        boot.cluster_id,
        RaftSettings(),
    )
    try:
        deadline = time.monotonic() + 30
        while not node.leadership.state.is_leader:
            if time.monotonic() > deadline:
                raise RuntimeError("member 1 did not become the raft leader within 30 s")
            await asyncio.sleep(0.05)
        results = await measure_paths(store, node, concurrencies, duration, "3 processes")
        for r in results:
            r["followers"] = "own processes"
        return results
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await node.close()
        await server.stop(None)
        for child in children:
            child.terminate()
            child.join(10)
        if root is None:
            shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["commit_throughput_procs"]
