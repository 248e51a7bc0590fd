"""Event-stream latency: from a store change to its event on a subscribed Watch client.

Starts one swarmd manager (bench/swarmd_cluster.py) in a temp dir, subscribes a Watch client to
service changes over the unix socket, then makes N sequential service updates (a label change,
0 replicas: control plane only) through the Control API. For each event the latency is the
client's receive time minus the object's `meta.updated_at`, which the store stamps *before*
proposing the change: so the figure includes proposal, raft commit with fsync, apply, the watch
queue and the gRPC stream. Also run with `--writers K` concurrent writers to see it under load.

    .venv/bin/python bench/events.py [--changes 500] [--writers 1]

Prints min / p50 / p99 / max and writes .bench/events-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc

from bench.harness import REPO, Machine, host_info
from bench.swarmd_cluster import SwarmdCluster
from swarmd.api import control_pb2, specs_pb2, watch_pb2, watch_pb2_grpc

GOAL_P99_MS = 100.0


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def _writer(cluster: SwarmdCluster, service_id: str, changes: int, tag: int) -> None:
    stub = cluster.stub
    for i in range(changes):
        svc = (await stub.GetService(control_pb2.GetServiceRequest(service_id=service_id))).service
        svc.spec.annotations.labels["bench"] = f"{tag}-{i}"
        try:
            await stub.UpdateService(
                control_pb2.UpdateServiceRequest(
                    service_id=service_id, service_version=svc.meta.version, spec=svc.spec
                )
            )
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.FAILED_PRECONDITION:  # a concurrent writer won
                raise


async def run(changes: int, writers: int) -> dict[str, object]:
    cluster = SwarmdCluster()
    await cluster.start_manager()
    try:
        assert cluster.manager is not None
        stub = cluster.stub
        ids = []
        for w in range(writers):
            spec = specs_pb2.ServiceSpec()
            spec.annotations.name = f"events-{w}"
            spec.task.container.image = "swarmd-busybox:latest"
            spec.replicated.replicas = 0
            resp = await stub.CreateService(control_pb2.CreateServiceRequest(spec=spec))
            ids.append(resp.service.id)
        channel = grpc.aio.insecure_channel(f"unix:{cluster.manager.socket}")
        watch = watch_pb2_grpc.WatchStub(channel)
        call = watch.Watch(
            watch_pb2.WatchRequest(entries=[watch_pb2.WatchEntry(kind="service", action=2)])
        )
        latencies: list[float] = []
        total = changes * writers

        async def consume() -> None:
            async for msg in call:
                now = time.time()
                for ev in msg.events:
                    stamped = ev.object.service.meta.updated_at
                    latencies.append(now - (stamped.seconds + stamped.nanos / 1e9))
                if len(latencies) >= total:
                    return

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.5)
        machine = Machine.start()
        started = time.monotonic()
        await asyncio.gather(*(_writer(cluster, ids[w], changes, w) for w in range(writers)))
        try:
            await asyncio.wait_for(consumer, 30)
        except TimeoutError:
            call.cancel()
        elapsed = time.monotonic() - started
        call.cancel()
        await channel.close()
        ms = [x * 1000 for x in latencies]
        return {
            "changes": len(ms),
            "writers": writers,
            "changes_per_s": round(len(ms) / elapsed, 1),
            "min_ms": round(min(ms), 2),
            "p50_ms": round(_pct(ms, 50), 2),
            "p99_ms": round(_pct(ms, 99), 2),
            "max_ms": round(max(ms), 2),
            "goal_p99_ms": GOAL_P99_MS,
            "machine": machine.stop(),
        }
    finally:
        await cluster.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--changes", type=int, default=500, help="changes per writer")
    p.add_argument("--writers", type=int, nargs="+", default=[1, 8], help="writer counts to run")
    args = p.parse_args()
    results = [asyncio.run(run(args.changes, w)) for w in args.writers]
    print(f"{'writers':>8} {'changes':>8} {'chg/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in results:
        print(
            f"{r['writers']:>8} {r['changes']:>8} {r['changes_per_s']:>8} {r['p50_ms']:>8} "
            f"{r['p99_ms']:>8} {r['max_ms']:>8}"
        )
    out = REPO / ".bench"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    doc = {"benchmark": "events", "host": host_info(), "results": results}
    (out / f"events-{stamp}.json").write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
