"""Parsers for flag values: durations, sizes, CPUs, key=value pairs, ports, mounts, references.

swarmctl layer, pure (no I/O). The argparse definitions in `swarmctl.commands` use these as
`type=` converters; each raises `argparse.ArgumentTypeError` with a one-line message naming the
value and the rule it breaks, which the parser prints as `swarmctl: error: argument --x: ...`.
Formats follow the docker CLI: durations as Go's time.ParseDuration (`1m30s`, `500ms`), memory
as docker's RAMInBytes (binary units: `64m` = `64MiB` = 64 * 2**20), ports as `8080:80/tcp` or
`mode=host,target=80,published=8080`, mounts as `type=bind,source=/a,target=/b,readonly`.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Mapping
from fractions import Fraction

from google.protobuf import duration_pb2

from swarmd.api import types_pb2

FlagError = argparse.ArgumentTypeError

_NANOS = 1_000_000_000
_DURATION_UNITS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": _NANOS,
    "m": 60 * _NANOS,
    "h": 3600 * _NANOS,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
# google.protobuf.Duration's documented range: about +-10000 years.
_MAX_DURATION_NANOS = 315_576_000_000 * _NANOS

_MEMORY_UNITS: dict[str, int] = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_MAX_CPUS = 1_000_000

_PROTOCOLS = {
    "tcp": types_pb2.PortConfig.PROTOCOL_TCP,
    "udp": types_pb2.PortConfig.PROTOCOL_UDP,
    "sctp": types_pb2.PortConfig.PROTOCOL_SCTP,
}
_PUBLISH_MODES = {
    "ingress": types_pb2.PortConfig.PUBLISH_MODE_INGRESS,
    "host": types_pb2.PortConfig.PUBLISH_MODE_HOST,
}
_MOUNT_TYPES = {
    "bind": types_pb2.Mount.MOUNT_TYPE_BIND,
    "volume": types_pb2.Mount.MOUNT_TYPE_VOLUME,
    "tmpfs": types_pb2.Mount.MOUNT_TYPE_TMPFS,
}
_TRUE = {"", "1", "true", "yes"}
_FALSE = {"0", "false", "no"}


def parse_duration_nanos(text: str) -> int:
    """Nanoseconds of a Go-style duration: `10s`, `500ms`, `1m30s`, `1.5h`, or `0`."""
    value = text.strip()
    if value == "0":
        return 0
    # Exact arithmetic: a float would lose nanoseconds beyond about 104 days.
    pos, total = 0, Fraction(0)
    while pos < len(value):
        m = _DURATION_PART.match(value, pos)
        if m is None:
            raise FlagError(
                f"invalid duration {text!r}: use a number with a unit (ns, us, ms, s, m, h), "
                "e.g. 10s, 500ms or 1m30s"
            )
        total += Fraction(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise FlagError(f"invalid duration {text!r}: empty")
    if total > _MAX_DURATION_NANOS:
        raise FlagError(f"invalid duration {text!r}: too large")
    return round(total)


def parse_duration(text: str) -> duration_pb2.Duration:
    """A Go-style duration as a protobuf Duration (see parse_duration_nanos)."""
    nanos = parse_duration_nanos(text)
    return duration_pb2.Duration(seconds=nanos // _NANOS, nanos=nanos % _NANOS)


def format_duration(d: duration_pb2.Duration | int) -> str:
    """Go's Duration.String(): `1m30s`, `500ms`, `1.5s`, `0s`."""
    nanos = d if isinstance(d, int) else d.seconds * _NANOS + d.nanos
    if nanos == 0:
        return "0s"
    sign, nanos = ("-", -nanos) if nanos < 0 else ("", nanos)
    if nanos < _NANOS:
        for unit, size in (("ms", 1_000_000), ("us", 1_000), ("ns", 1)):
            if nanos >= size:
                return f"{sign}{_trim(nanos / size)}{unit}"
    hours, rest = divmod(nanos, 3600 * _NANOS)
    minutes, rest = divmod(rest, 60 * _NANOS)
    out = sign
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + f"{_trim(rest / _NANOS)}s"


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


def parse_memory(text: str) -> int:
    """Bytes of a memory size: `1024`, `64m`, `64MiB`, `1g`, `1.5GB` (binary units)."""
    m = _MEMORY.fullmatch(text.strip())
    if m is None:
        raise FlagError(
            f"invalid memory size {text!r}: use a number with an optional unit "
            "(b, k, m, g, t), e.g. 64m, 64MiB or 1g"
        )
    size = float(m.group(1)) * _MEMORY_UNITS[m.group(2).lower()]
    if size >= 2**63:
        raise FlagError(f"invalid memory size {text!r}: too large")
    return int(size)


def parse_cpus(text: str) -> int:
    """Nano-CPUs of a CPU count: `0.5` -> 500000000."""
    try:
        cpus = float(text)
    except ValueError:
        raise FlagError(f"invalid cpu count {text!r}: use a number, e.g. 0.5 or 2") from None
    if not math.isfinite(cpus) or cpus <= 0 or cpus > _MAX_CPUS:
        raise FlagError(f"invalid cpu count {text!r}: must be a positive number")
    return round(cpus * _NANOS)


def format_cpus(nano_cpus: int) -> str:
    """`500000000` -> `0.5`."""
    return _trim(nano_cpus / _NANOS)


def parse_non_negative_int(text: str) -> int:
    """A whole number >= 0."""
    try:
        value = int(text, 10)
    except ValueError:
        raise FlagError(f"invalid number {text!r}: must be a whole number") from None
    if value < 0:
        raise FlagError(f"invalid number {text!r}: must not be negative")
    return value


def parse_int(text: str) -> int:
    """A whole number, negative allowed."""
    try:
        return int(text, 10)
    except ValueError:
        raise FlagError(f"invalid number {text!r}: must be a whole number") from None


def parse_ratio(text: str) -> float:
    """A fraction between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise FlagError(f"invalid ratio {text!r}: must be a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise FlagError(f"invalid ratio {text!r}: must be between 0 and 1")
    return value


def parse_key_value(text: str) -> tuple[str, str]:
    """`KEY=VALUE` (a label may omit `=VALUE`: the value is then empty)."""
    key, _, value = text.partition("=")
    if not key or key != key.strip():
        raise FlagError(f"invalid key=value {text!r}: the key must be non-empty without spaces")
    return key, value


def parse_env(text: str) -> str:
    """`KEY=VALUE` for the container environment."""
    key, sep, _ = text.partition("=")
    if not sep or not key or any(c.isspace() for c in key):
        raise FlagError(f"invalid environment variable {text!r}: must be KEY=VALUE")
    return text


def choice(kind: str, table: Mapping[str, int]) -> Callable[[str], int]:
    """A converter from one of the names of `table` (case-insensitive) to its value."""

    def convert(text: str) -> int:
        value = table.get(text.lower())
        if value is None:
            raise FlagError(f"invalid {kind} {text!r}: must be one of {', '.join(table)}")
        return value

    convert.__name__ = kind
    return convert


def _csv_fields(text: str, what: str) -> dict[str, str]:
    """`a=1,b=2,flag` -> {"a": "1", "b": "2", "flag": ""}; keys lowercased."""
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            raise FlagError(f"invalid {what} {text!r}: empty field")
        key, _, value = part.partition("=")
        out[key.strip().lower()] = value.strip()
    return out


def _port_number(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 65535:
        raise FlagError(f"invalid port {text!r} in {spec!r}: must be 1-65535")
    return int(text)


def _protocol(text: str, spec: str) -> types_pb2.PortConfig.Protocol.ValueType:
    proto = _PROTOCOLS.get(text.lower())
    if proto is None:
        raise FlagError(f"invalid protocol {text!r} in {spec!r}: must be tcp, udp or sctp")
    return proto


def parse_port(text: str) -> types_pb2.PortConfig:
    """`[PUBLISHED:]TARGET[/PROTO]` or `target=80,published=8080,protocol=tcp,mode=host`."""
    if "=" in text:
        return _parse_long_port(text)
    ports, _, proto = text.partition("/")
    published, sep, target = ports.rpartition(":")
    port = types_pb2.PortConfig(
        target_port=_port_number(target, text), protocol=_protocol(proto or "tcp", text)
    )
    if sep:
        port.published_port = _port_number(published, text)
    return port


def _parse_long_port(text: str) -> types_pb2.PortConfig:
    fields = _csv_fields(text, "port")
    port = types_pb2.PortConfig()
    for key, value in fields.items():
        if key == "target":
            port.target_port = _port_number(value, text)
        elif key == "published":
            port.published_port = _port_number(value, text)
        elif key == "protocol":
            port.protocol = _protocol(value, text)
        elif key == "mode":
            mode = _PUBLISH_MODES.get(value.lower())
            if mode is None:
                raise FlagError(f"invalid mode {value!r} in {text!r}: must be ingress or host")
            port.publish_mode = mode
        elif key == "name":
            port.name = value
        else:
            raise FlagError(
                f"invalid port {text!r}: unknown field {key!r} "
                "(use target, published, protocol, mode, name)"
            )
    if not port.target_port:
        raise FlagError(f"invalid port {text!r}: target= is required")
    return port


def parse_port_ref(text: str) -> tuple[int, int]:
    """`TARGET[/PROTO]` naming a published port to remove: (target port, protocol)."""
    target, _, proto = text.partition("/")
    return _port_number(target, text), _protocol(proto or "tcp", text)


def _bool_field(key: str, value: str, spec: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise FlagError(f"invalid {key} {value!r} in {spec!r}: must be true or false")


def parse_mount(text: str) -> types_pb2.Mount:
    """`type=bind|volume|tmpfs,source=SRC,target=DST[,readonly][,tmpfs-size=64m]...`."""
    fields = _csv_fields(text, "mount")
    mount = types_pb2.Mount(type=types_pb2.Mount.MOUNT_TYPE_VOLUME)
    for key, value in fields.items():
        if key == "type":
            kind = _MOUNT_TYPES.get(value.lower())
            if kind is None:
                raise FlagError(
                    f"invalid type {value!r} in {text!r}: must be bind, volume or tmpfs"
                )
            mount.type = kind
        elif key in ("source", "src"):
            mount.source = value
        elif key in ("target", "destination", "dst"):
            mount.target = value
        elif key in ("readonly", "ro"):
            mount.readonly = _bool_field(key, value, text)
        elif key == "tmpfs-size":
            mount.tmpfs_size_bytes = parse_memory(value)
        elif key == "tmpfs-mode":
            mount.tmpfs_mode = _file_mode(value, text)
        elif key == "volume-driver":
            mount.volume_driver = value
        elif key == "volume-label":
            label, label_value = parse_key_value(value)
            mount.volume_labels[label] = label_value
        else:
            raise FlagError(
                f"invalid mount {text!r}: unknown field {key!r} (use type, source, target, "
                "readonly, tmpfs-size, tmpfs-mode, volume-driver, volume-label)"
            )
    if not mount.target:
        raise FlagError(f"invalid mount {text!r}: target= is required")
    return mount


def _file_mode(text: str, spec: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise FlagError(f"invalid mode {text!r} in {spec!r}: must be octal, e.g. 0444") from None
    if not 0 <= mode <= 0o7777:
        raise FlagError(f"invalid mode {text!r} in {spec!r}: must be at most 07777")
    return mode


def parse_file_reference(text: str) -> tuple[str, types_pb2.FileTarget]:
    """`NAME` or `source=NAME,target=FILE,uid=0,gid=0,mode=0444`: (name, file target).

    The file defaults to the object's name, owned by root and mode 0444, as in docker.
    """
    if "=" not in text:
        name = text.strip()
        if not name:
            raise FlagError("invalid reference '': a name is required")
        return name, types_pb2.FileTarget(name=name, uid="0", gid="0", mode=0o444)
    fields = _csv_fields(text, "reference")
    name = fields.pop("source", "") or fields.pop("src", "")
    if not name:
        raise FlagError(f"invalid reference {text!r}: source= is required")
    target = types_pb2.FileTarget(name=name, uid="0", gid="0", mode=0o444)
    for key, value in fields.items():
        if key == "target":
            target.name = value
        elif key == "uid":
            target.uid = value
        elif key == "gid":
            target.gid = value
        elif key == "mode":
            target.mode = _file_mode(value, text)
        else:
            raise FlagError(
                f"invalid reference {text!r}: unknown field {key!r} "
                "(use source, target, uid, gid, mode)"
            )
    return name, target


def parse_placement_pref(text: str) -> types_pb2.PlacementPreference:
    """`spread=node.labels.zone`."""
    strategy, sep, descriptor = text.partition("=")
    if strategy.strip().lower() != "spread" or not sep or not descriptor.strip():
        raise FlagError(
            f"invalid placement preference {text!r}: must be spread=<label>, "
            "e.g. spread=node.labels.zone"
        )
    return types_pb2.PlacementPreference(
        spread=types_pb2.SpreadOver(spread_descriptor=descriptor.strip())
    )


def parse_scale(text: str) -> tuple[str, int]:
    """`SERVICE=REPLICAS` for `service scale`."""
    name, sep, count = text.rpartition("=")
    if not sep or not name:
        raise FlagError(f"invalid scale {text!r}: must be SERVICE=REPLICAS, e.g. web=5")
    try:
        return name, parse_non_negative_int(count)
    except FlagError:
        raise FlagError(
            f"invalid replica count {count!r} in {text!r}: must be a whole number >= 0"
        ) from None


def parse_revision(text: str) -> int:
    """`--to REVISION` for `service rollback`: a revision number from `service history`."""
    value = parse_non_negative_int(text)
    if value < 1:
        raise FlagError(f"invalid revision {text!r}: revisions start at 1")
    return value


__all__ = [
    "FlagError",
    "choice",
    "format_cpus",
    "format_duration",
    "parse_cpus",
    "parse_duration",
    "parse_duration_nanos",
    "parse_env",
    "parse_file_reference",
    "parse_int",
    "parse_key_value",
    "parse_memory",
    "parse_mount",
    "parse_non_negative_int",
    "parse_placement_pref",
    "parse_port",
    "parse_port_ref",
    "parse_ratio",
    "parse_revision",
    "parse_scale",
]
