"""Node failure part of the workload benchmark (swarmd only; issue 3 gives Docker Swarm's figure).

Called by bench/workload.py. A fresh manager and two workers (127.0.0.1-3, one dockerd, default
cluster settings: heartbeat period 2 s). Each repetition creates a 6-replica service, waits
until it runs 2/2/2, SIGKILLs one worker's swarmd (its containers keep running, as on a host
that lost its agent) and times, polling every 50 ms, until all 6 tasks run on the survivors;
it also notes when the node was first seen DISCONNECTED and DOWN. The killed worker is then
started again on its state dir and the service removed. A second series SIGSTOPs the worker
instead (a hung or cut-off host: its connections stay open, its heartbeats stop), so only the
heartbeat deadline can notice; it is SIGCONTed afterwards.

Then the same with both cores loaded by two spinning processes for the whole phase: first a
watch (default 60 s, ListNodes every 100 ms, no kill) that records any node that was not READY,
then the failover repetitions under that load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.harness import Machine
from bench.samples import Sample, Scenario, Timeline, poll
from bench.swarmd_cluster import SwarmdCluster, SwarmdNode
from bench.systems import Engine, SwarmdSystem
from swarmd.api import objects_pb2

REPLICAS = 6
_STATE = objects_pb2.NodeStatus.State


@dataclass
class NodeFailureResult:
    scenarios: list[Scenario] = field(default_factory=list)
    watch: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def busy_loops(n: int) -> Iterator[list[int]]:
    """n processes spinning on a core each for the duration; their pids."""
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(n)
    ]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait(10)


class NodeFailure:
    """The three-node cluster and the failover measurements on it."""

    def __init__(self, args: argparse.Namespace, engine: Engine, cluster: SwarmdCluster) -> None:
        self.args = args
        self.engine = engine
        self.cluster = cluster
        self.system = SwarmdSystem(cluster, engine.image_id)
        self._seq = 0

    async def _service(self) -> str:
        self._seq += 1
        sid = await self.system.create(f"bench-nf-{self._seq}", REPLICAS)

        async def running() -> bool:
            return sum(t.running for t in await self.system.tasks(sid)) >= REPLICAS

        await poll(running, self.args.timeout, f"{REPLICAS} running tasks")
        return sid

    async def _remove(self, sid: str, victim: SwarmdNode | None = None) -> None:
        """Remove the service and its containers; bring a killed or frozen victim back."""
        await self.system.remove(sid)
        label = self.system.service_label(sid)
        await self.engine.remove_labelled(label)
        if victim is not None:
            if victim.pid is None:
                await self.cluster.restart(victim)
            else:
                victim.resume()
                await self.cluster.wait_ready(victim)

        async def gone() -> bool:
            return not await self.system.tasks(sid)

        with contextlib.suppress(TimeoutError):
            await poll(gone, 20, "tasks of a removed service gone", interval=0.2)
        await self.engine.remove_labelled(label)

    async def _spread(self, sid: str) -> dict[str, int]:
        hosts = {n.id: h for h, n in (await self.cluster.nodes()).items()}
        tasks = await self.system.tasks(sid)
        return dict(Counter(hosts.get(t.node_id, t.node_id) for t in tasks if t.running))

    async def failover(self, rep: int, hang: bool = False) -> Sample:
        """SIGKILL (or with `hang`, SIGSTOP) a worker's swarmd; until its tasks run elsewhere."""
        sid = await self._service()
        victim = self.cluster.workers[rep % len(self.cluster.workers)]
        try:
            spread = await self._spread(sid)
            if not spread.get(victim.hostname):  # kill a worker that runs something
                victim = next(w for w in self.cluster.workers if spread.get(w.hostname))
            victim_id = (await self.cluster.nodes())[victim.hostname].id
            await asyncio.sleep(self.args.pause)
            tl = Timeline(time.time(), time.perf_counter())
            if hang:
                victim.pause()
            else:
                victim.kill()
            tl.mark("killed")

            async def moved() -> bool:
                node = (await self.cluster.nodes())[victim.hostname]
                if node.status.state != _STATE.STATE_READY:
                    tl.mark("not_ready")
                if node.status.state == _STATE.STATE_DOWN:
                    tl.mark("down")
                tasks = await self.system.tasks(sid)
                if sum(t.assigned and t.node_id != victim_id for t in tasks) >= REPLICAS:
                    tl.mark("all_assigned")
                return sum(t.running and t.node_id != victim_id for t in tasks) >= REPLICAS

            await poll(moved, self.args.timeout, "tasks running on the survivors")
            seconds = tl.now()
            tl.containers(await self.engine.times(self.system.service_label(sid)))
        except BaseException:
            await self._remove(sid, victim)
            raise
        await self._remove(sid, victim)
        detail = tl.marks | {"victim": victim.hostname, "spread_before": spread}
        return Sample("swarmd", round(seconds, 3), detail)

    async def repeat(self, name: str, reps: int, hang: bool = False) -> Scenario:
        print(f"[bench] {name}: {reps} x swarmd", flush=True)
        sc = Scenario(name)
        machine = Machine.start()
        for rep in range(reps):
            sample = await self.failover(rep, hang)
            sc.samples.append(sample)
            print(f"  {name:<14} swarmd  {sample.seconds:7.3f} s  {sample.detail}", flush=True)
        sc.machine = machine.stop()
        return sc

    async def watch(self, seconds: float) -> dict[str, Any]:
        """ListNodes every 100 ms for `seconds` with a service running; every non-READY sight."""
        print(f"[bench] loaded watch: {seconds:.0f} s, no kill", flush=True)
        sid = await self._service()
        seen: list[dict[str, Any]] = []
        latencies: list[float] = []
        machine = Machine.start()
        t0 = time.perf_counter()
        try:
            while time.perf_counter() - t0 < seconds:
                a = time.perf_counter()
                nodes = await self.cluster.nodes()
                latencies.append(time.perf_counter() - a)
                for host, node in sorted(nodes.items()):
                    if node.status.state != _STATE.STATE_READY:
                        state = _STATE.Name(node.status.state).removeprefix("STATE_")
                        seen.append({"t": round(a - t0, 2), "node": host, "state": state})
                await asyncio.sleep(0.1)
        finally:
            stats = machine.stop()
            await self._remove(sid)
        result = {
            "seconds": seconds,
            "polls": len(latencies),
            "not_ready_sightings": len(seen),
            "nodes_marked_down": sorted({s["node"] for s in seen if s["state"] == "DOWN"}),
            "nodes_not_ready": sorted({s["node"] for s in seen}),
            "first_sightings": seen[:20],
            "list_nodes_max_ms": round(1000 * max(latencies), 1),
            "machine": stats,
        }
        print(f"  loaded watch  {result}", flush=True)
        return result


async def run(args: argparse.Namespace, engine: Engine) -> NodeFailureResult:
    result = NodeFailureResult()
    cluster = SwarmdCluster(log_level=args.log_level)
    try:
        await cluster.start_manager()
        await cluster.add_worker()
        await cluster.add_worker()
        nf = NodeFailure(args, engine, cluster)
        if args.reps_failover:
            result.scenarios.append(await nf.repeat("node failure", args.reps_failover))
        if args.reps_hang:
            # A host that stops answering without closing its connections (hung, partitioned):
            # only the heartbeat deadline can tell, not a broken session stream.
            hung = await nf.repeat("node failure, hung", args.reps_hang, hang=True)
            hung.notes.append("SIGSTOP instead of SIGKILL: the session stays open, beats stop")
            result.scenarios.append(hung)
        if args.watch or args.reps_loaded:
            with busy_loops(2):
                await asyncio.sleep(2)  # let the load average feel them
                if args.watch:
                    result.watch = await nf.watch(args.watch)
                if args.reps_loaded:
                    loaded = await nf.repeat("node failure, loaded", args.reps_loaded)
                    loaded.notes.append("2 busy-loop processes spinning for the whole phase")
                    result.scenarios.append(loaded)
    finally:
        if args.keep:
            result.notes.append(f"node-failure swarmd state and logs kept in {cluster.root}")
        await cluster.close(keep=args.keep)
    return result
