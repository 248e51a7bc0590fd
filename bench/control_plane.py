"""Control-plane benchmark: swarmd against Docker Swarm mode on the same machine, in one run.

Measures, for each system:
  * sequential service create+remove pairs per second (N pairs after a warm-up), and the p50/p99
    of the single create and remove calls;
  * ListServices p50/p99 with M services present.

swarmd is started fresh in a temp dir (free loopback ports) and driven through the generated
grpc.aio Control client over its unix socket: one long-lived channel, no subprocess per call.
Docker Swarm runs inside the local dockerd and is driven through the Docker SDK's low-level
APIClient (HTTP over /var/run/docker.sock). If dockerd was not in swarm mode the benchmark runs
`swarm init` and leaves the swarm at the end; services it made are always removed.

Services use the local test image (by id, never pulled) and 0 replicas by default, so the numbers
are the control plane alone (store, raft/persistence, API), not container starts.

    .venv/bin/python bench/control_plane.py [--pairs 200] [--services 100] [--list-calls 200]

Prints a table and writes .bench/control_plane-<timestamp>.json (and control_plane-latest.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
# `python bench/control_plane.py` works as well as `python -m bench.control_plane`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import REPO, Machine, free_port, pid_of, process_cpu_s
from bench.results import run_report, save, show

BENCH_LABEL = "swarmd.bench"


# ----------------------------------------------------------------------------------------------
# Measurement helpers


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of non-empty samples."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summarize_ms(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "max_ms": round(max(ms), 3),
    }


@dataclass
class Result:
    system: str
    pairs: int = 0
    pairs_per_s: float = 0.0
    create: dict[str, float] = field(default_factory=dict)
    remove: dict[str, float] = field(default_factory=dict)
    services_listed: int = 0
    listing: dict[str, float] = field(default_factory=dict)
    server_cpu_s_per_pair: float | None = None
    machine_pairs: dict[str, Any] = field(default_factory=dict)
    machine_list: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


async def run_phases(
    result: Result,
    args: argparse.Namespace,
    create: Callable[[str], Awaitable[str]],
    remove: Callable[[str], Awaitable[None]],
    list_services: Callable[[], Awaitable[int]],
    server_pid: int | None,
    prefix: str,
) -> None:
    """The same three phases for both systems: warm-up, timed pairs, list with M services."""
    for i in range(args.warmup):
        await remove(await create(f"{prefix}-warm-{i}"))

    creates: list[float] = []
    removes: list[float] = []
    machine = Machine.start()
    cpu0 = process_cpu_s(server_pid)
    t0 = time.perf_counter()
    for i in range(args.pairs):
        a = time.perf_counter()
        sid = await create(f"{prefix}-pair-{i}")
        b = time.perf_counter()
        await remove(sid)
        c = time.perf_counter()
        creates.append(b - a)
        removes.append(c - b)
    elapsed = time.perf_counter() - t0
    cpu1 = process_cpu_s(server_pid)
    result.machine_pairs = machine.stop()
    result.pairs = args.pairs
    result.pairs_per_s = round(args.pairs / elapsed, 1)
    result.create = summarize_ms(creates)
    result.remove = summarize_ms(removes)
    if cpu0 is not None and cpu1 is not None:
        result.server_cpu_s_per_pair = round((cpu1 - cpu0) / args.pairs, 5)

    ids: list[str] = []
    try:
        for i in range(args.services):
            ids.append(await create(f"{prefix}-list-{i:03d}"))
        for _ in range(10):
            await list_services()
        lists: list[float] = []
        machine = Machine.start()
        for _ in range(args.list_calls):
            a = time.perf_counter()
            result.services_listed = await list_services()
            lists.append(time.perf_counter() - a)
        result.machine_list = machine.stop()
        result.listing = summarize_ms(lists)
    finally:
        for sid in ids:
            with contextlib.suppress(Exception):
                await remove(sid)


# ----------------------------------------------------------------------------------------------
# swarmd


@contextlib.contextmanager
def swarmd_process(workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    state = workdir / "state"
    sock = workdir / "swarmd.sock"
    log_path = workdir / "swarmd.log"
    cmd = [
        sys.executable,
        "-m",
        "swarmd",
        "-d",
        str(state),
        "--listen-control-api",
        str(sock),
        "--listen-remote-api",
        f"127.0.0.1:{free_port()}",
        "--listen-join-api",
        f"127.0.0.1:{free_port()}",
        "--hostname",
        "bench-swarmd",
        "--log-level",
        "warning",
    ]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
        )
    try:
        yield proc, sock, log_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


async def bench_swarmd(args: argparse.Namespace, image: str) -> Result:
    import grpc

    from swarmd.api import control_pb2, control_pb2_grpc, specs_pb2, types_pb2

    result = Result(system="swarmd")
    workdir = Path(tempfile.mkdtemp(prefix="swarmd-bench-"))
    node_ids: list[str] = []
    try:
        with swarmd_process(workdir) as (proc, sock, log_path):
            async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
                stub = control_pb2_grpc.ControlStub(channel)
                deadline = time.monotonic() + args.start_timeout
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(
                            f"swarmd exited with {proc.returncode}:\n{tail(log_path)}"
                        )
                    try:
                        if sock.exists():
                            nodes = await stub.ListNodes(control_pb2.ListNodesRequest(), timeout=2)
                            node_ids = [n.id for n in nodes.nodes]
                            break
                    except grpc.aio.AioRpcError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"swarmd did not answer in {args.start_timeout}s:\n{tail(log_path)}"
                        )
                    await asyncio.sleep(0.1)

                def spec(name: str) -> specs_pb2.ServiceSpec:
                    return specs_pb2.ServiceSpec(
                        annotations=types_pb2.Annotations(name=name, labels={BENCH_LABEL: "1"}),
                        task=specs_pb2.TaskSpec(
                            container=specs_pb2.ContainerSpec(
                                image=image, command=["sleep", "1000000"]
                            )
                        ),
                        replicated=specs_pb2.ReplicatedService(replicas=args.replicas),
                    )

                async def create(name: str) -> str:
                    resp = await stub.CreateService(
                        control_pb2.CreateServiceRequest(spec=spec(name)), timeout=30
                    )
                    return resp.service.id

                async def remove(service_id: str) -> None:
                    await stub.RemoveService(
                        control_pb2.RemoveServiceRequest(service_id=service_id), timeout=30
                    )

                async def list_services() -> int:
                    resp = await stub.ListServices(control_pb2.ListServicesRequest(), timeout=30)
                    return len(resp.services)

                await run_phases(result, args, create, remove, list_services, proc.pid, "bench")
                if proc.poll() is not None:
                    result.notes.append(f"swarmd exited with {proc.returncode} during the run")
    finally:
        remove_swarmd_containers(node_ids)
        if args.keep:
            result.notes.append(f"swarmd state and log kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def remove_swarmd_containers(node_ids: list[str]) -> None:
    """Containers the bench node's agent may have started (only with --replicas > 0)."""
    if not node_ids:
        return
    with contextlib.suppress(Exception):
        import docker

        client = docker.from_env()
        for node_id in node_ids:
            for c in client.containers.list(
                all=True, filters={"label": f"swarmd.node.id={node_id}"}
            ):
                c.remove(force=True)


# ----------------------------------------------------------------------------------------------
# Docker Swarm


async def bench_docker_swarm(args: argparse.Namespace, image_id: str) -> Result:
    import docker
    from docker.types import ContainerSpec, ServiceMode, TaskTemplate

    result = Result(system="docker-swarm")
    client = docker.from_env(timeout=60)
    api: Any = client.api  # the SDK's low-level client is untyped
    state = client.info()["Swarm"]["LocalNodeState"]
    initialised = False
    had_gwbridge = bool(client.networks.list(names=["docker_gwbridge"]))
    if state == "inactive":
        client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
        initialised = True
        result.notes.append("ran `docker swarm init` for the run and left the swarm afterwards")
    elif state != "active":
        raise RuntimeError(f"dockerd swarm state is {state!r}; expected inactive or active")
    else:
        result.notes.append("dockerd was already in swarm mode; only this run's services removed")

    template = TaskTemplate(
        container_spec=ContainerSpec(image=image_id, command=["sleep", "1000000"])
    )
    mode = ServiceMode("replicated", replicas=args.replicas)

    # The SDK is blocking; the calls are sequential, so calling it on the loop thread is the same
    # as calling it from a plain script (no thread hop added to the timings).
    async def create(name: str) -> str:
        resp = api.create_service(template, name=name, labels={BENCH_LABEL: "1"}, mode=mode)
        return str(resp["ID"])

    async def remove(service_id: str) -> None:
        api.remove_service(service_id)

    async def list_services() -> int:
        return len(api.services())

    try:
        await run_phases(result, args, create, remove, list_services, pid_of("dockerd"), "bench")
    finally:
        with contextlib.suppress(Exception):
            for svc in api.services(filters={"label": BENCH_LABEL}):
                api.remove_service(svc["ID"])
        if initialised:
            client.swarm.leave(force=True)
            if not had_gwbridge:
                remove_gwbridge(client)
        client.close()
    return result


def remove_gwbridge(client: Any) -> None:
    """`swarm init` creates the docker_gwbridge network and `swarm leave` keeps it: remove it."""
    for _ in range(20):
        nets = client.networks.list(names=["docker_gwbridge"])
        if not nets:
            return
        try:
            nets[0].remove()
            return
        except Exception:  # still in use by the ingress sandbox for a moment after leaving
            time.sleep(0.5)


# ----------------------------------------------------------------------------------------------
# Report


def speedup(better: float, worse: float) -> str:
    return f"{better / worse:.2f}x" if worse else "-"


def render(results: list[Result]) -> str:
    """A table, one column per system; with both, a column of swarmd's speed-up over Docker."""

    def ms(d: dict[str, float]) -> str:
        return f"{d['p50_ms']:.2f} / {d['p99_ms']:.2f}"

    def cpu(r: Result) -> str:
        per_pair = r.server_cpu_s_per_pair
        return "-" if per_pair is None else f"{1000 * per_pair:.2f}"

    rows: list[tuple[str, Callable[[Result], str], Callable[[Result, Result], str] | None]] = [
        (
            "create+remove pairs/s",
            lambda r: f"{r.pairs_per_s:.1f}",
            lambda s, d: speedup(s.pairs_per_s, d.pairs_per_s),
        ),
        ("create p50 / p99 ms", lambda r: ms(r.create), None),
        ("remove p50 / p99 ms", lambda r: ms(r.remove), None),
        (
            "list p50 ms",
            lambda r: f"{r.listing['p50_ms']:.2f}",
            lambda s, d: speedup(d.listing["p50_ms"], s.listing["p50_ms"]),
        ),
        (
            "list p99 ms",
            lambda r: f"{r.listing['p99_ms']:.2f}",
            lambda s, d: speedup(d.listing["p99_ms"], s.listing["p99_ms"]),
        ),
        ("services listed", lambda r: str(r.services_listed), None),
        ("server CPU ms / pair", cpu, None),
        ("load avg 1m after pairs", lambda r: f"{r.machine_pairs['loadavg_after'][0]:.2f}", None),
        ("CPU steal % during pairs", lambda r: f"{r.machine_pairs['steal_pct']:.1f}", None),
    ]
    both = len(results) == 2
    width = 26
    header = f"{'':{width}}" + "".join(f"{r.system:>18}" for r in results)
    out = [header + (f"{'swarmd speed-up':>18}" if both else "")]
    for label, fmt, compare in rows:
        line = f"{label:{width}}" + "".join(f"{fmt(r):>18}" for r in results)
        if both and compare is not None:
            line += f"{compare(results[0], results[1]):>18}"
        out.append(line)
    return "\n".join(out)


def local_image_id(name: str) -> str:
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"image {name} not found: run `make image` first ({out.stderr.strip()})")
    return out.stdout.strip()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", type=int, default=200, help="timed create+remove pairs (200)")
    p.add_argument("--warmup", type=int, default=20, help="untimed pairs first (20)")
    p.add_argument("--services", type=int, default=100, help="services present while listing")
    p.add_argument("--list-calls", type=int, default=200, help="timed list calls (200)")
    p.add_argument("--replicas", type=int, default=0, help="replicas per service (0)")
    p.add_argument("--image", default="swarmd-busybox:latest", help="local image (never pulled)")
    p.add_argument("--only", choices=["swarmd", "docker-swarm"], help="run one system only")
    p.add_argument("--start-timeout", type=float, default=60.0, help="seconds to wait for swarmd")
    p.add_argument("--out", type=Path, default=REPO / ".bench", help="directory for JSON results")
    p.add_argument("--keep", action="store_true", help="keep swarmd's temp state dir and log")
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    started = time.time()
    image_id = local_image_id(args.image)
    results: list[Result] = []
    if args.only in (None, "swarmd"):
        print(
            f"[bench] swarmd: {args.warmup} warm-up + {args.pairs} pairs, "
            f"{args.services} services x {args.list_calls} lists",
            flush=True,
        )
        results.append(await bench_swarmd(args, image_id))
    if args.only in (None, "docker-swarm"):
        print("[bench] docker swarm: same phases", flush=True)
        results.append(await bench_docker_swarm(args, image_id))

    report = run_report(
        "control_plane", args, started, image_id=image_id, results=[asdict(r) for r in results]
    )
    notes = [f"({r.system}) {note}" for r in results for note in r.notes]
    show(render(results), notes, save(report, args.out))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the finally blocks still remove services and leave the swarm.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    raise SystemExit(main())
