"""Task -> Docker container configuration, and inspect output -> task runtime status. Pure.

DockerController calls create_kwargs() once per task (the result goes to
`DockerClient.containers.create(**kwargs)`) and reads inspect output back with
published_ports(), health_state() and the small State helpers. Nothing here does I/O, so it is
table-tested (tests/unit/agent_exec/test_dockerexec_container.py).

Naming and labels follow decisions.md "Images and containers": the container of a replicated
task is `<service>.<slot>.<task id>`, of a global one `<service>.<node id>.<task id>`, and every
container carries the swarmd.* labels below; executors only ever touch containers labelled with
their own node id.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from docker.types import DriverConfig, LogConfig, Mount

from swarmd.agent.exec import InvalidTask
from swarmd.api import objects_pb2, specs_pb2, types_pb2

LABEL_NODE_ID = "swarmd.node.id"
LABEL_SERVICE_ID = "swarmd.service.id"
LABEL_SERVICE_NAME = "swarmd.service.name"
LABEL_TASK_ID = "swarmd.task.id"
LABEL_TASK_SLOT = "swarmd.task.slot"

#: Seconds between the stop signal and SIGKILL when the spec sets no stop_grace_period.
DEFAULT_STOP_GRACE = 10.0

_MOUNT_TYPES = {
    types_pb2.Mount.MOUNT_TYPE_BIND: "bind",
    types_pb2.Mount.MOUNT_TYPE_VOLUME: "volume",
    types_pb2.Mount.MOUNT_TYPE_TMPFS: "tmpfs",
}
_PROTOCOLS = {
    types_pb2.PortConfig.PROTOCOL_TCP: "tcp",
    types_pb2.PortConfig.PROTOCOL_UDP: "udp",
    types_pb2.PortConfig.PROTOCOL_SCTP: "sctp",
}
_HEALTH = {
    "starting": types_pb2.HEALTH_STATE_STARTING,
    "healthy": types_pb2.HEALTH_STATE_HEALTHY,
    "unhealthy": types_pb2.HEALTH_STATE_UNHEALTHY,
}
# Docker's zero time: a container whose StartedAt is this has never been started.
_NEVER = "0001-01-01T00:00:00Z"


def container_name(task: objects_pb2.Task, node_id: str) -> str:
    """`<service>.<slot>.<task id>`, or `<service>.<node id>.<task id>` for global tasks."""
    service = task.service_annotations.name or task.service_id or "task"
    middle = str(task.slot) if task.slot else (task.node_id or node_id)
    return f"{service}.{middle}.{task.id}"


def container_labels(task: objects_pb2.Task, node_id: str) -> dict[str, str]:
    """The user's container labels plus ours (ours win: the agent relies on them)."""
    labels = dict(task.spec.container.labels)
    labels.update(
        {
            LABEL_NODE_ID: node_id,
            LABEL_SERVICE_ID: task.service_id,
            LABEL_SERVICE_NAME: task.service_annotations.name,
            LABEL_TASK_ID: task.id,
            LABEL_TASK_SLOT: str(task.slot),
        }
    )
    return labels


def stop_grace_seconds(spec: specs_pb2.ContainerSpec) -> int:
    """The stop timeout for `docker stop`, in whole seconds (Docker's unit), rounded up."""
    if spec.HasField("stop_grace_period"):
        seconds = spec.stop_grace_period.ToNanoseconds() / 1e9
    else:
        seconds = DEFAULT_STOP_GRACE
    return max(0, math.ceil(seconds))


def healthcheck(spec: specs_pb2.ContainerSpec) -> dict[str, Any] | None:
    """Docker's healthcheck dict (durations in nanoseconds), or None to keep the image's."""
    if not spec.HasField("healthcheck") or not spec.healthcheck.test:
        return None
    hc = spec.healthcheck
    out: dict[str, Any] = {"test": list(hc.test)}
    for key, duration in (
        ("interval", hc.interval),
        ("timeout", hc.timeout),
        ("start_period", hc.start_period),
    ):
        if duration.ToNanoseconds() > 0:
            out[key] = duration.ToNanoseconds()
    if hc.retries > 0:
        out["retries"] = hc.retries
    return out


def _mount(task_id: str, m: types_pb2.Mount) -> Mount:
    kind = _MOUNT_TYPES.get(m.type)
    if kind is None:
        raise InvalidTask(task_id, f"mount {m.target!r}: unsupported mount type {m.type}")
    if not m.target:
        raise InvalidTask(task_id, "mount without a target path")
    if kind == "bind" and not m.source:
        raise InvalidTask(task_id, f"bind mount {m.target!r} has no source")
    if kind == "tmpfs":
        return Mount(
            m.target,
            None,
            type="tmpfs",
            read_only=m.readonly,
            tmpfs_size=m.tmpfs_size_bytes or None,
            tmpfs_mode=m.tmpfs_mode or None,
        )
    if kind == "volume":
        return Mount(
            m.target,
            m.source or None,
            type="volume",
            read_only=m.readonly,
            labels=dict(m.volume_labels) or None,
            driver_config=DriverConfig(m.volume_driver) if m.volume_driver else None,
        )
    return Mount(m.target, m.source, type="bind", read_only=m.readonly)


def host_ports(task: objects_pb2.Task) -> dict[str, int | list[int | None] | None]:
    """Host-mode published ports as `containers.create(ports=...)` wants them.

    `{"80/tcp": 8080}`; None lets the engine pick a free host port, and a list publishes one
    target port on several host ports. Ingress-mode ports are not published here: swarmd has no
    routing mesh.
    """
    grouped: dict[str, list[int | None]] = {}
    for p in task.endpoint.spec.ports:
        if p.publish_mode != types_pb2.PortConfig.PUBLISH_MODE_HOST or not p.target_port:
            continue
        key = f"{p.target_port}/{_PROTOCOLS.get(p.protocol, 'tcp')}"
        grouped.setdefault(key, []).append(p.published_port or None)
    return {k: v[0] if len(v) == 1 else v for k, v in grouped.items()}


def _extra_hosts(task_id: str, hosts: list[str]) -> dict[str, str]:
    # ContainerSpec.hosts entries are "IP HOSTNAME [ALIAS...]", as in /etc/hosts.
    out: dict[str, str] = {}
    for entry in hosts:
        parts = entry.split()
        if len(parts) < 2:
            raise InvalidTask(task_id, f"hosts entry {entry!r} is not 'IP HOSTNAME [ALIAS...]'")
        for name in parts[1:]:
            out[name] = parts[0]
    return out


def _process_kwargs(task_id: str, spec: specs_pb2.ContainerSpec) -> dict[str, Any]:
    # What runs and as whom: entrypoint/command, environment, identity, terminal.
    kw: dict[str, Any] = {}
    if spec.command:
        kw["entrypoint"] = list(spec.command)
    if spec.args:
        kw["command"] = list(spec.args)
    if spec.env:
        kw["environment"] = list(spec.env)
    for key, value in (
        ("hostname", spec.hostname),
        ("working_dir", spec.dir),
        ("user", spec.user),
        ("stop_signal", spec.stop_signal),
    ):
        if value:
            kw[key] = value
    if spec.groups:
        kw["group_add"] = list(spec.groups)
    for key, flag in (("tty", spec.tty), ("stdin_open", spec.open_stdin)):
        if flag:
            kw[key] = True
    if spec.hosts:
        kw["extra_hosts"] = _extra_hosts(task_id, list(spec.hosts))
    return kw


def _host_kwargs(task: objects_pb2.Task) -> dict[str, Any]:
    # Host-side settings: filesystem, init, resource limits, ports, health, logging.
    spec = task.spec.container
    kw: dict[str, Any] = {"restart_policy": {"Name": "no"}}
    if spec.read_only:
        kw["read_only"] = True
    if spec.mounts:
        kw["mounts"] = [_mount(task.id, m) for m in spec.mounts]
    if spec.init != specs_pb2.ContainerSpec.INIT_MODE_DEFAULT:
        kw["init"] = spec.init == specs_pb2.ContainerSpec.INIT_MODE_ENABLED
    limits = task.spec.resources.limits
    if limits.nano_cpus > 0:
        kw["nano_cpus"] = limits.nano_cpus
    if limits.memory_bytes > 0:
        kw["mem_limit"] = limits.memory_bytes
    if ports := host_ports(task):
        kw["ports"] = ports
    if (hc := healthcheck(spec)) is not None:
        kw["healthcheck"] = hc
    driver = task.log_driver if task.log_driver.name else task.spec.log_driver
    if driver.name:
        kw["log_config"] = LogConfig(type=driver.name, config=dict(driver.options))
    return kw


def create_kwargs(task: objects_pb2.Task, node_id: str) -> dict[str, Any]:
    """Keyword arguments for `DockerClient.containers.create()` that run `task`.

    `command` replaces the image's entrypoint and `args` its command, as in SwarmKit. The
    restart policy is always "no": restarting is the orchestrator's job, with a new task.
    Raises InvalidTask for a task without a container image or with an invalid mount or hosts
    entry.
    """
    spec = task.spec.container
    if not task.spec.HasField("container") or not spec.image:
        raise InvalidTask(task.id, "the task has no container image")
    return {
        "image": spec.image,
        "name": container_name(task, node_id),
        "labels": container_labels(task, node_id),
        **_process_kwargs(task.id, spec),
        **_host_kwargs(task),
    }


# -- reading inspect output back ---------------------------------------------------------------


def _state(info: Mapping[str, Any]) -> Mapping[str, Any]:
    state = info.get("State")
    return state if isinstance(state, Mapping) else {}


def is_running(info: Mapping[str, Any]) -> bool:
    """The container's process is running (or restarting/paused: it has not exited)."""
    st = _state(info)
    return bool(st.get("Running")) or bool(st.get("Restarting"))


def has_started(info: Mapping[str, Any]) -> bool:
    """The container was started at least once (tasks never start a container twice)."""
    started = _state(info).get("StartedAt") or _NEVER
    return is_running(info) or not str(started).startswith(_NEVER[:10])


def exit_code(info: Mapping[str, Any]) -> int:
    """State.ExitCode (0 while running)."""
    return int(_state(info).get("ExitCode") or 0)


def oom_killed(info: Mapping[str, Any]) -> bool:
    """The kernel killed the container for exceeding its memory limit."""
    return bool(_state(info).get("OOMKilled"))


def health_state(info: Mapping[str, Any]) -> types_pb2.HealthState.ValueType:
    """State.Health.Status as a HealthState (NONE without a health check)."""
    health = _state(info).get("Health")
    status = health.get("Status") if isinstance(health, Mapping) else None
    return _HEALTH.get(str(status), types_pb2.HEALTH_STATE_NONE)


def has_healthcheck(info: Mapping[str, Any]) -> bool:
    """The container has an active health check (from the task or from its image)."""
    config = info.get("Config")
    hc = config.get("Healthcheck") if isinstance(config, Mapping) else None
    test = hc.get("Test") if isinstance(hc, Mapping) else None
    return isinstance(test, list) and bool(test) and test[0] != "NONE"


def container_status(info: Mapping[str, Any]) -> types_pb2.ContainerStatus:
    """Container id, pid (0 when not running) and exit code."""
    return types_pb2.ContainerStatus(
        container_id=str(info.get("Id", "")),
        pid=int(_state(info).get("Pid") or 0),
        exit_code=exit_code(info),
    )


def published_ports(
    info: Mapping[str, Any], task: objects_pb2.Task
) -> tuple[types_pb2.PortConfig, ...]:
    """Host ports actually bound (NetworkSettings.Ports), one per target port and host port.

    The port name comes from the task's endpoint spec; IPv4 and IPv6 bindings of the same
    host port count once.
    """
    settings = info.get("NetworkSettings")
    ports = settings.get("Ports") if isinstance(settings, Mapping) else None
    if not isinstance(ports, Mapping):
        return ()
    names = {
        (p.target_port, _PROTOCOLS.get(p.protocol, "tcp")): p.name for p in task.endpoint.spec.ports
    }
    by_name = {v: k for k, v in _PROTOCOLS.items()}
    seen: set[tuple[int, str, int]] = set()
    out: list[types_pb2.PortConfig] = []
    for key, bindings in ports.items():
        if not bindings:
            continue
        target_s, _, proto = str(key).partition("/")
        proto = proto or "tcp"
        for b in bindings:
            host = int(b.get("HostPort") or 0)
            ident = (int(target_s), proto, host)
            if not host or ident in seen:
                continue
            seen.add(ident)
            out.append(
                types_pb2.PortConfig(
                    name=names.get((int(target_s), proto), ""),
                    protocol=by_name.get(proto, types_pb2.PortConfig.PROTOCOL_TCP),
                    target_port=int(target_s),
                    published_port=host,
                    publish_mode=types_pb2.PortConfig.PUBLISH_MODE_HOST,
                )
            )
    out.sort(key=lambda p: (p.target_port, p.protocol, p.published_port))
    return tuple(out)


__all__ = [
    "DEFAULT_STOP_GRACE",
    "LABEL_NODE_ID",
    "LABEL_SERVICE_ID",
    "LABEL_SERVICE_NAME",
    "LABEL_TASK_ID",
    "LABEL_TASK_SLOT",
    "container_labels",
    "container_name",
    "container_status",
    "create_kwargs",
    "exit_code",
    "has_healthcheck",
    "has_started",
    "health_state",
    "healthcheck",
    "host_ports",
    "is_running",
    "oom_killed",
    "published_ports",
    "stop_grace_seconds",
]
