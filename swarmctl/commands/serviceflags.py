"""The flags of `service create` and `service update`, and how they change a ServiceSpec.

swarmctl layer, pure (no I/O); `swarmctl.commands.service` adds them to its parsers and calls
`apply` on a fresh spec (create) or on the service's current spec (update, read-modify-write).
Flags map only to fields of the ServiceSpec proto. Create takes list flags whole (`--env`,
`--label`, `--mount`, ...); update edits lists with `-add`/`-rm` pairs (`--env-add A=1`,
`--env-rm A`), as the docker CLI does. A flag that was not given leaves its field untouched.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable, MutableSequence, Sequence

from google.protobuf import duration_pb2

from swarmctl import flags
from swarmd import errors
from swarmd.api import specs_pb2, types_pb2

_Restart = types_pb2.RestartPolicy
_Update = types_pb2.UpdateConfig
_Init = specs_pb2.ContainerSpec.InitMode

RESTART_CONDITIONS = {
    "any": _Restart.RESTART_CONDITION_ANY,
    "none": _Restart.RESTART_CONDITION_NONE,
    "on-failure": _Restart.RESTART_CONDITION_ON_FAILURE,
}
UPDATE_ORDERS = {
    "stop-first": _Update.UPDATE_ORDER_STOP_FIRST,
    "start-first": _Update.UPDATE_ORDER_START_FIRST,
}
FAILURE_ACTIONS = {
    "pause": _Update.FAILURE_ACTION_PAUSE,
    "continue": _Update.FAILURE_ACTION_CONTINUE,
    "rollback": _Update.FAILURE_ACTION_ROLLBACK,
}
# A rollback that fails cannot roll back again.
ROLLBACK_FAILURE_ACTIONS = {k: v for k, v in FAILURE_ACTIONS.items() if k != "rollback"}

_LIST_FLAGS: tuple[tuple[str, str, Callable[[str], object], str], ...] = (
    ("label", "KEY=VALUE", flags.parse_key_value, "service label"),
    ("env", "KEY=VALUE", flags.parse_env, "environment variable"),
    ("constraint", "EXPR", str, "placement constraint, e.g. node.role==worker"),
    ("placement-pref", "PREF", flags.parse_placement_pref, "placement preference spread=LABEL"),
    ("publish", "PORT", flags.parse_port, "published port [PUBLISHED:]TARGET[/PROTO] or mode=.."),
    ("mount", "MOUNT", flags.parse_mount, "mount type=bind|volume|tmpfs,source=..,target=.."),
    ("secret", "SECRET", flags.parse_file_reference, "secret NAME or source=NAME,target=FILE"),
    ("config", "CONFIG", flags.parse_file_reference, "config NAME or source=NAME,target=FILE"),
)
# What an `-rm` flag takes: a key, a target path, a port, a name.
_RM_TYPES: dict[str, tuple[str, Callable[[str], object]]] = {
    "label": ("KEY", str),
    "env": ("KEY", str),
    "constraint": ("EXPR", str),
    "placement-pref": ("PREF", flags.parse_placement_pref),
    "publish": ("TARGET[/PROTO]", flags.parse_port_ref),
    "mount": ("TARGET", str),
    "secret": ("NAME", str),
    "config": ("NAME", str),
}


_DURATION = ("DURATION", flags.parse_duration)
_COUNT = ("N", flags.parse_non_negative_int)
_CPUS = ("CPUS", flags.parse_cpus)
_BYTES = ("BYTES", flags.parse_memory)
_TEXT: tuple[str, Callable[[str], object]] = ("TEXT", str)
# (flag, (metavar, converter), help) of the flags that set one field.
_SCALAR_FLAGS: tuple[tuple[str, tuple[str, Callable[[str], object]], str], ...] = (
    ("image", ("IMAGE", str), "image of the container"),
    ("replicas", _COUNT, "number of tasks (replicated mode)"),
    ("command", ("COMMAND", str), "command to run, replacing the image's entrypoint"),
    ("hostname", _TEXT, "container hostname"),
    ("user", ("USER[:GROUP]", str), "user to run as"),
    ("workdir", ("DIR", str), "working directory"),
    ("stop-grace-period", _DURATION, "time to wait before killing the container"),
    ("stop-signal", ("SIGNAL", str), "signal to stop the container"),
    ("reserve-cpu", _CPUS, "CPUs reserved, e.g. 0.5"),
    ("reserve-memory", _BYTES, "memory reserved, e.g. 64MiB"),
    ("limit-cpu", _CPUS, "CPU limit"),
    ("limit-memory", _BYTES, "memory limit"),
    (
        "restart-condition",
        ("any|none|on-failure", flags.choice("restart condition", RESTART_CONDITIONS)),
        "when to restart a task",
    ),
    ("restart-delay", _DURATION, "delay between restarts"),
    ("restart-max-attempts", _COUNT, "restarts before giving up"),
    ("restart-window", _DURATION, "window to evaluate the restart policy"),
    ("update-parallelism", _COUNT, "tasks updated at once (0: all)"),
    ("update-delay", _DURATION, "delay between updates"),
    (
        "update-order",
        ("stop-first|start-first", flags.choice("update order", UPDATE_ORDERS)),
        "stop the old task first, or start the new one first",
    ),
    (
        "update-failure-action",
        ("pause|continue|rollback", flags.choice("failure action", FAILURE_ACTIONS)),
        "what to do when an update fails",
    ),
    ("update-monitor", _DURATION, "time to monitor an updated task for failure"),
    ("update-max-failure-ratio", ("RATIO", flags.parse_ratio), "failures tolerated (0 to 1)"),
    ("rollback-parallelism", _COUNT, "tasks rolled back at once (0: all)"),
    ("rollback-delay", _DURATION, "delay between rollbacks"),
    (
        "rollback-order",
        ("stop-first|start-first", flags.choice("rollback order", UPDATE_ORDERS)),
        "stop the old task first, or start the new one first, when rolling back",
    ),
    (
        "rollback-failure-action",
        ("pause|continue", flags.choice("rollback failure action", ROLLBACK_FAILURE_ACTIONS)),
        "what to do when a rollback fails",
    ),
    ("rollback-monitor", _DURATION, "time to monitor a rolled-back task for failure"),
    (
        "rollback-max-failure-ratio",
        ("RATIO", flags.parse_ratio),
        "failures tolerated during a rollback (0 to 1)",
    ),
    ("health-cmd", ("COMMAND", str), "healthcheck command (run by the shell)"),
    ("health-interval", _DURATION, "time between checks"),
    ("health-timeout", _DURATION, "time a check may take"),
    ("health-retries", _COUNT, "failures before unhealthy"),
    ("health-start-period", _DURATION, "grace period after start"),
)


def add_spec_flags(parser: argparse.ArgumentParser, *, update: bool) -> None:
    """The flags shared by create and update, plus the list flags of the one or the other."""
    for name, (metavar, kind), what in _SCALAR_FLAGS:
        parser.add_argument(f"--{name}", type=kind, default=None, metavar=metavar, help=what)
    parser.add_argument(
        "--args", action="append", default=None, metavar="ARG", help="an argument (repeatable)"
    )
    parser.add_argument(
        "--no-healthcheck", action="store_true", default=False, help="disable the healthcheck"
    )
    parser.add_argument(
        "--init",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run an init process in the container",
    )
    if update:
        _add_edit_flags(parser)
    else:
        _add_list_flags(parser)


def _add_list_flags(parser: argparse.ArgumentParser) -> None:
    for name, metavar, kind, what in _LIST_FLAGS:
        short = {"env": ["-e"], "publish": ["-p"]}.get(name, [])
        parser.add_argument(
            *short,
            f"--{name}",
            action="append",
            type=kind,
            default=None,
            metavar=metavar,
            help=f"{what} (repeatable)",
        )


def _add_edit_flags(parser: argparse.ArgumentParser) -> None:
    for name, metavar, kind, what in _LIST_FLAGS:
        parser.add_argument(
            f"--{name}-add", action="append", type=kind, metavar=metavar, help=f"add a {what}"
        )
        rm_metavar, rm_kind = _RM_TYPES[name]
        parser.add_argument(
            f"--{name}-rm",
            action="append",
            type=rm_kind,
            metavar=rm_metavar,
            help=f"remove a {name} by {rm_metavar.lower()}",
        )


def _get(ns: argparse.Namespace, name: str) -> object:
    return getattr(ns, name, None)


def _list(ns: argparse.Namespace, name: str) -> list[object]:
    value = getattr(ns, name, None)
    return list(value) if value else []


def apply(ns: argparse.Namespace, spec: specs_pb2.ServiceSpec) -> None:
    """Write every given flag into `spec` (in place).

    Raises:
        errors.InvalidArgument: flags that contradict each other or the service's mode.
    """
    _apply_mode(ns, spec)
    _apply_container(ns, spec.task.container)
    _apply_lists(ns, spec)
    _apply_resources(ns, spec.task.resources)
    _apply_restart(ns, spec.task)
    _apply_update_config(ns, spec)
    _apply_healthcheck(ns, spec.task.container)


def _apply_mode(ns: argparse.Namespace, spec: specs_pb2.ServiceSpec) -> None:
    replicas = _get(ns, "replicas")
    if replicas is None:
        return
    if spec.WhichOneof("mode") == "global":
        raise errors.InvalidArgument(
            f"--replicas cannot be used with global service {spec.annotations.name or ''}".strip()
        )
    if isinstance(replicas, int):
        spec.replicated.replicas = replicas


def _apply_container(ns: argparse.Namespace, c: specs_pb2.ContainerSpec) -> None:
    for flag, field in (
        ("image", "image"),
        ("hostname", "hostname"),
        ("user", "user"),
        ("workdir", "dir"),
        ("stop_signal", "stop_signal"),
    ):
        value = _get(ns, flag)
        if value is not None:
            setattr(c, field, value)
    command = _get(ns, "command")
    if isinstance(command, str):
        try:
            words = shlex.split(command)
        except ValueError as err:
            raise errors.InvalidArgument(f"invalid --command {command!r}: {err}") from err
        _replace(c.command, words)
    args = _get(ns, "args")
    if isinstance(args, list):
        _replace(c.args, [str(a) for a in args])
    grace = _get(ns, "stop_grace_period")
    if isinstance(grace, duration_pb2.Duration):
        c.stop_grace_period.CopyFrom(grace)
    init = _get(ns, "init")
    if init is not None:
        c.init = _Init.INIT_MODE_ENABLED if init else _Init.INIT_MODE_DISABLED


def _replace(field: MutableSequence[str], values: Sequence[str]) -> None:
    """Set a repeated field, leaving it alone (and its parents unset) when nothing changes."""
    if list(field) != list(values):
        field[:] = values


def _apply_lists(ns: argparse.Namespace, spec: specs_pb2.ServiceSpec) -> None:
    c = spec.task.container
    labels = spec.annotations.labels
    for key, value in _pairs(_list(ns, "label") + _list(ns, "label_add")):
        labels[key] = value
    for label in _list(ns, "label_rm"):
        labels.pop(str(label), None)
    env = _env_set(list(c.env), [str(e) for e in _list(ns, "env") + _list(ns, "env_add")])
    removed = {str(k).partition("=")[0] for k in _list(ns, "env_rm")}
    _replace(c.env, [e for e in env if e.partition("=")[0] not in removed])
    constraints = [str(x) for x in _list(ns, "constraint") + _list(ns, "constraint_add")]
    gone = {str(x) for x in _list(ns, "constraint_rm")}
    kept = [x for x in spec.task.placement.constraints if x not in gone]
    if constraints or gone:
        _replace(spec.task.placement.constraints, kept + [x for x in constraints if x not in kept])
    _apply_prefs(ns, spec.task.placement)
    _apply_ports(ns, spec.endpoint)
    _apply_mounts(ns, c)
    _apply_references(ns, c)


def _pairs(values: list[object]) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in (p for p in values if isinstance(p, tuple))]


def _env_set(current: list[str], added: list[str]) -> list[str]:
    """`current` with each of `added` replacing the entry of the same key, else appended."""
    out = list(current)
    for entry in added:
        key = entry.partition("=")[0]
        out = [e for e in out if e.partition("=")[0] != key]
        out.append(entry)
    return out


def _apply_prefs(ns: argparse.Namespace, placement: types_pb2.Placement) -> None:
    added = _list(ns, "placement_pref") + _list(ns, "placement_pref_add")
    gone = {
        p.spread.spread_descriptor
        for p in _list(ns, "placement_pref_rm")
        if isinstance(p, types_pb2.PlacementPreference)
    }
    if not added and not gone:
        return
    keep = [p for p in placement.preferences if p.spread.spread_descriptor not in gone]
    del placement.preferences[:]
    placement.preferences.extend(keep)
    placement.preferences.extend(p for p in added if isinstance(p, types_pb2.PlacementPreference))


def _apply_ports(ns: argparse.Namespace, endpoint: specs_pb2.EndpointSpec) -> None:
    added = _list(ns, "publish") + _list(ns, "publish_add")
    added_ports = [p for p in added if isinstance(p, types_pb2.PortConfig)]
    gone = {p for p in _list(ns, "publish_rm") if isinstance(p, tuple)}
    gone |= {(p.target_port, p.protocol) for p in added_ports}
    if not added_ports and not gone:
        return
    keep = [p for p in endpoint.ports if (p.target_port, p.protocol) not in gone]
    del endpoint.ports[:]
    endpoint.ports.extend(keep + added_ports)


def _apply_mounts(ns: argparse.Namespace, c: specs_pb2.ContainerSpec) -> None:
    added = [
        m for m in _list(ns, "mount") + _list(ns, "mount_add") if isinstance(m, types_pb2.Mount)
    ]
    gone = {str(t).rstrip("/") for t in _list(ns, "mount_rm")} | {m.target for m in added}
    if not added and not gone:
        return
    keep = [m for m in c.mounts if m.target.rstrip("/") not in gone]
    del c.mounts[:]
    c.mounts.extend(keep + added)


def _apply_references(ns: argparse.Namespace, c: specs_pb2.ContainerSpec) -> None:
    secrets = _refs(_list(ns, "secret") + _list(ns, "secret_add"))
    gone = {str(n) for n in _list(ns, "secret_rm")} | {name for name, _ in secrets}
    if secrets or gone:
        keep = [r for r in c.secrets if r.secret_name not in gone and r.secret_id not in gone]
        del c.secrets[:]
        c.secrets.extend(keep)
        for name, target in secrets:
            c.secrets.add(secret_name=name, file=target)
    configs = _refs(_list(ns, "config") + _list(ns, "config_add"))
    gone = {str(n) for n in _list(ns, "config_rm")} | {name for name, _ in configs}
    if configs or gone:
        kept = [r for r in c.configs if r.config_name not in gone and r.config_id not in gone]
        del c.configs[:]
        c.configs.extend(kept)
        for name, target in configs:
            c.configs.add(config_name=name, file=target)


def _refs(values: list[object]) -> list[tuple[str, types_pb2.FileTarget]]:
    out = []
    for v in values:
        if isinstance(v, tuple) and isinstance(v[1], types_pb2.FileTarget):
            out.append((str(v[0]), v[1]))
    return out


def _apply_resources(ns: argparse.Namespace, r: types_pb2.ResourceRequirements) -> None:
    for flag, res, field in (
        ("reserve_cpu", r.reservations, "nano_cpus"),
        ("reserve_memory", r.reservations, "memory_bytes"),
        ("limit_cpu", r.limits, "nano_cpus"),
        ("limit_memory", r.limits, "memory_bytes"),
    ):
        value = _get(ns, flag)
        if value is not None:
            setattr(res, field, value)


def _set_duration(target: duration_pb2.Duration, value: object) -> None:
    if isinstance(value, duration_pb2.Duration):
        target.CopyFrom(value)


def _apply_restart(ns: argparse.Namespace, task: specs_pb2.TaskSpec) -> None:
    condition = _get(ns, "restart_condition")
    if isinstance(condition, int):
        task.restart.condition = condition  # type: ignore[assignment]
    attempts = _get(ns, "restart_max_attempts")
    if isinstance(attempts, int):
        task.restart.max_attempts = attempts
    if _get(ns, "restart_delay") is not None:
        _set_duration(task.restart.delay, _get(ns, "restart_delay"))
    if _get(ns, "restart_window") is not None:
        _set_duration(task.restart.window, _get(ns, "restart_window"))


def _apply_update_config(ns: argparse.Namespace, spec: specs_pb2.ServiceSpec) -> None:
    # The same flags for the update config and, prefixed rollback-, the rollback config.
    for prefix, config in (("update", spec.update), ("rollback", spec.rollback)):
        for flag, field in (
            ("parallelism", "parallelism"),
            ("order", "order"),
            ("failure_action", "failure_action"),
            ("max_failure_ratio", "max_failure_ratio"),
        ):
            value = _get(ns, f"{prefix}_{flag}")
            if value is not None:
                setattr(config, field, value)
        if _get(ns, f"{prefix}_delay") is not None:
            _set_duration(config.delay, _get(ns, f"{prefix}_delay"))
        if _get(ns, f"{prefix}_monitor") is not None:
            _set_duration(config.monitor, _get(ns, f"{prefix}_monitor"))


_HEALTH_FLAGS = (
    "health_cmd",
    "health_interval",
    "health_timeout",
    "health_retries",
    "health_start_period",
)


def _apply_healthcheck(ns: argparse.Namespace, c: specs_pb2.ContainerSpec) -> None:
    given = [f for f in _HEALTH_FLAGS if _get(ns, f) is not None]
    if _get(ns, "no_healthcheck"):
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise errors.InvalidArgument(f"--no-healthcheck conflicts with {flag}")
        c.healthcheck.CopyFrom(types_pb2.HealthConfig(test=["NONE"]))
        return
    if not given:
        return
    h = c.healthcheck
    cmd = _get(ns, "health_cmd")
    if isinstance(cmd, str):
        _replace(h.test, ["CMD-SHELL", cmd])
    retries = _get(ns, "health_retries")
    if isinstance(retries, int):
        h.retries = retries
    for flag, target in (
        ("health_interval", h.interval),
        ("health_timeout", h.timeout),
        ("health_start_period", h.start_period),
    ):
        if _get(ns, flag) is not None:
            _set_duration(target, _get(ns, flag))


__all__ = ["FAILURE_ACTIONS", "RESTART_CONDITIONS", "UPDATE_ORDERS", "add_spec_flags", "apply"]
