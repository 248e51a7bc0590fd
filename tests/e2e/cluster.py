"""Several swarmd hosts on one machine, sharing the one dockerd, for workload tests.

A `Cluster` starts a manager on 127.0.0.1 and workers on 127.0.0.2, 127.0.0.3, ... (each its own
swarmd process and state dir, as `multihost.md` describes for the cheap variant). Tests drive it
with swarmctl like an operator and read the cluster's state through the control API (a sync
gRPC client on the manager's unix socket, so polling costs milliseconds, not a subprocess each)
and the containers through the Docker CLI. Every container a test's nodes made is removed after
the test.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from swarmd.api import control_pb2, control_pb2_grpc, objects_pb2, types_pb2
from tests.e2e.harness import SwarmdProcess, wait_for

IMAGE = "swarmd-busybox:latest"
RUNNING = types_pb2.TASK_STATE_RUNNING


def docker(*args: str, check: bool = True) -> str:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def containers(**labels: str) -> list[dict[str, Any]]:
    """Inspect output of the running containers carrying all `labels` (label=value)."""
    flt = [f"--filter=label={k}={v}" for k, v in labels.items()] or [
        "--filter=label=swarmd.node.id"
    ]
    ids = docker("ps", "-q", *flt).split()
    if not ids:
        return []
    # A container may go between `ps` and `inspect`; inspect still prints the others.
    out = docker("inspect", *ids, check=False)
    found = [c for c in json.loads(out or "[]") if c.get("State", {}).get("Running")]
    return found


def remove_node_containers(node_ids: list[str]) -> None:
    for node_id in node_ids:
        ids = docker("ps", "-aq", f"--filter=label=swarmd.node.id={node_id}").split()
        if ids:
            docker("rm", "-f", *ids, check=False)


@dataclass
class Cluster:
    root: Path
    manager: SwarmdProcess | None = None
    workers: list[SwarmdProcess] = field(default_factory=list)
    _channel: grpc.Channel | None = None
    _node_ids: set[str] = field(default_factory=set)

    def start_manager(self, heartbeat: str = "1s") -> SwarmdProcess:
        self.manager = SwarmdProcess(self.root / "mgr", hostname="mgr").start()
        self._channel = grpc.insecure_channel(f"unix:{self.manager.socket}")
        if heartbeat:
            r = self.ctl("cluster", "update", "--heartbeat-period", heartbeat)
            assert r.rc == 0, r.err
        self._remember_nodes()
        return self.manager

    def worker_token(self) -> str:
        cluster = self.stub().ListClusters(control_pb2.ListClustersRequest(), timeout=10)
        return str(cluster.clusters[0].root_ca.join_tokens.worker)

    def add_worker(self, name: str | None = None, wait: bool = True) -> SwarmdProcess:
        assert self.manager is not None
        idx = len(self.workers) + 2
        name = name or f"wrk{idx - 1}"
        w = SwarmdProcess(
            self.root / name,
            hostname=name,
            host=f"127.0.0.{idx}",
            join_addr=self.manager.join_api,
            join_token=self.worker_token(),
        ).start(wait=False)
        self.workers.append(w)
        if wait:
            self.wait_node_ready(name)
        return w

    def ctl(self, *args: str, stdin: str | None = None) -> Any:
        assert self.manager is not None
        return self.manager.ctl(*args, stdin=stdin)

    def stub(self) -> control_pb2_grpc.ControlStub:
        assert self._channel is not None
        return control_pb2_grpc.ControlStub(self._channel)

    # ---- reads through the control API

    def nodes(self) -> dict[str, objects_pb2.Node]:
        resp = self.stub().ListNodes(control_pb2.ListNodesRequest(), timeout=10)
        nodes = {n.description.hostname: n for n in resp.nodes}
        self._node_ids.update(n.id for n in resp.nodes)
        return nodes

    def _remember_nodes(self) -> None:
        self.nodes()

    def node_id(self, hostname: str) -> str:
        return self.nodes()[hostname].id

    def wait_node_ready(self, hostname: str, timeout: float = 30) -> objects_pb2.Node:
        return wait_for(
            lambda: (
                (n := self.nodes().get(hostname)) is not None
                and n.status.state == objects_pb2.NodeStatus.STATE_READY
                and n
            ),
            timeout=timeout,
            what=f"node {hostname} READY",
        )

    def service(self, name: str) -> objects_pb2.Service:
        resp = self.stub().ListServices(control_pb2.ListServicesRequest(), timeout=10)
        for s in resp.services:
            if s.spec.annotations.name == name:
                return s
        raise AssertionError(f"no service {name}")

    def tasks(self, service: str) -> list[objects_pb2.Task]:
        svc = self.service(service)
        req = control_pb2.ListTasksRequest()
        req.service_ids.append(svc.id)
        return list(self.stub().ListTasks(req, timeout=10).tasks)

    def running(self, service: str) -> list[objects_pb2.Task]:
        """Tasks that should run and do run."""
        return [
            t
            for t in self.tasks(service)
            if t.desired_state == RUNNING and t.status.state == RUNNING
        ]

    def spread(self, service: str) -> Counter[str]:
        """Running tasks per node hostname."""
        names = {n.id: h for h, n in self.nodes().items()}
        return Counter(names.get(t.node_id, t.node_id) for t in self.running(service))

    def wait_running(self, service: str, count: int, timeout: float = 60) -> list[objects_pb2.Task]:
        def ok() -> list[objects_pb2.Task] | None:
            run = self.running(service)
            live = [t for t in self.tasks(service) if t.desired_state <= RUNNING]
            return run if len(run) == count and len(live) == count else None

        return wait_for(
            ok, timeout=timeout, interval=0.2, what=f"{count} running tasks of {service}"
        )

    def wait_containers(
        self, service: str, count: int, timeout: float = 60
    ) -> list[dict[str, Any]]:
        return wait_for(
            lambda: len(c := containers(**{"swarmd.service.name": service})) == count and c,
            timeout=timeout,
            interval=0.3,
            what=f"{count} containers of {service}",
        )

    def close(self) -> None:
        procs = [p for p in [self.manager, *self.workers] if p is not None]
        for p in procs:
            if p.proc is not None and p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait(10)
        if self._channel is not None:
            self._channel.close()
        remove_node_containers(sorted(self._node_ids))
