"""Validation of a ContainerSpec: image, env, mounts, healthcheck, stop grace, secret/config refs.

Manager layer, pure. Whether referenced secrets and configs exist is checked by the service
handlers against the store (`controlapi.references`); here only their shape is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from swarmd.api import specs_pb2, types_pb2
from swarmd.manager.controlapi import defaults
from swarmd.manager.controlapi.validation.fieldrules import (
    check_enum,
    check_non_negative_duration,
    check_unique,
    duration_nanos,
    invalid,
    show,
)
from swarmd.manager.controlapi.validation.image import reference_error

_P = "task.container"
_ENV_KEY = re.compile(r"[^=\s\x00]+")
# docker's volume name rule (volume/local: validName), at least two characters.
_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_HEALTH_KINDS = ("NONE", "CMD", "CMD-SHELL")
_MAX_FILE_MODE = 0o7777
_Mount = types_pb2.Mount


def validate_container(c: specs_pb2.ContainerSpec) -> None:
    """Check a service's container spec; raises InvalidArgument naming the first bad field."""
    problem = reference_error(c.image)
    if problem is not None:
        raise invalid(f"{_P}.image", c.image, problem)
    _validate_env(c.env)
    check_enum(f"{_P}.init", c.init, specs_pb2.ContainerSpec.InitMode)
    _validate_mounts(c.mounts)
    if c.HasField("stop_grace_period"):
        check_non_negative_duration(f"{_P}.stop_grace_period", c.stop_grace_period)
    if c.HasField("healthcheck"):
        _validate_healthcheck(c.healthcheck)
    _validate_file_targets(
        "secrets",
        [(r.secret_id or r.secret_name, r.HasField("file"), r.file) for r in c.secrets],
    )
    _validate_file_targets(
        "configs",
        [(r.config_id or r.config_name, r.HasField("file"), r.file) for r in c.configs],
    )


def _validate_env(env: Sequence[str]) -> None:
    for i, entry in enumerate(env):
        key, sep, _ = entry.partition("=")
        if not sep or not _ENV_KEY.fullmatch(key):
            raise invalid(
                f"{_P}.env[{i}]", entry, "must be KEY=VALUE with a non-empty KEY without spaces"
            )


def _validate_mounts(mounts: Sequence[types_pb2.Mount]) -> None:
    for i, m in enumerate(mounts):
        _validate_mount(f"{_P}.mounts[{i}]", m)
    check_unique(f"{_P}.mounts.target", (m.target for m in mounts), "mount target")


def _validate_mount(field: str, m: types_pb2.Mount) -> None:
    check_enum(f"{field}.type", m.type, _Mount.MountType)
    if not m.target.startswith("/") or "\x00" in m.target:
        raise invalid(f"{field}.target", m.target, "must be an absolute path")
    if m.target.rstrip("/") == "":
        raise invalid(f"{field}.target", m.target, "cannot mount over '/'")
    if m.type == _Mount.MOUNT_TYPE_BIND:
        if not m.source.startswith("/") or "\x00" in m.source:
            raise invalid(f"{field}.source", m.source, "a bind mount needs an absolute host path")
    elif m.type == _Mount.MOUNT_TYPE_VOLUME:
        if m.source and not _VOLUME_NAME.fullmatch(m.source):
            raise invalid(
                f"{field}.source",
                m.source,
                "a volume name is 2 or more of letters, digits, '_', '.' and '-', "
                "starting with a letter or digit (empty for an anonymous volume)",
            )
    elif m.source:
        raise invalid(f"{field}.source", m.source, "a tmpfs mount has no source")
    if m.type != _Mount.MOUNT_TYPE_TMPFS and (m.tmpfs_size_bytes or m.tmpfs_mode):
        raise invalid(f"{field}.type", m.type, "tmpfs options are only allowed on tmpfs mounts")
    if m.tmpfs_size_bytes < 0:
        raise invalid(f"{field}.tmpfs_size_bytes", m.tmpfs_size_bytes, "must not be negative")
    if m.tmpfs_mode > _MAX_FILE_MODE:
        raise invalid(f"{field}.tmpfs_mode", oct(m.tmpfs_mode), "must be at most 0o7777")


def _validate_healthcheck(h: types_pb2.HealthConfig) -> None:
    field = f"{_P}.healthcheck"
    if h.test:
        kind = h.test[0]
        if kind not in _HEALTH_KINDS:
            raise invalid(f"{field}.test[0]", kind, "must be NONE, CMD or CMD-SHELL")
        if kind != "NONE" and len(h.test) < 2:
            raise invalid(f"{field}.test", " ".join(h.test), f"{kind} needs a command")
    for name, d in (
        ("interval", h.interval),
        ("timeout", h.timeout),
        ("start_period", h.start_period),
    ):
        nanos = duration_nanos(f"{field}.{name}", d)
        if nanos != 0 and nanos < defaults.MIN_HEALTHCHECK_NANOS:
            raise invalid(f"{field}.{name}", d, "must be 0 (inherit) or at least 1ms")
    if h.retries < 0:
        raise invalid(f"{field}.retries", h.retries, "must not be negative")


def _validate_file_targets(
    kind: str, refs: Sequence[tuple[str, bool, types_pb2.FileTarget]]
) -> None:
    """Each reference names its object and a unique, relative-or-absolute file target."""
    targets: dict[str, str] = {}
    for i, (ref, has_file, target) in enumerate(refs):
        field = f"{_P}.{kind}[{i}]"
        if not ref:
            raise invalid(f"{field}", "", f"a reference needs the {kind[:-1]}'s id or name")
        if not has_file or not target.name:
            raise invalid(f"{field}.file.name", target.name, "a file target name is required")
        if "\x00" in target.name:
            raise invalid(f"{field}.file.name", target.name, "must not contain NUL")
        if target.mode > _MAX_FILE_MODE:
            raise invalid(f"{field}.file.mode", oct(target.mode), "must be at most 0o7777")
        other = targets.get(target.name)
        if other is not None:
            raise invalid(
                f"{field}.file.name",
                target.name,
                f"{kind[:-1]} references {show(other)} and {show(ref)} have the same target",
            )
        targets[target.name] = ref


__all__ = ["validate_container"]
