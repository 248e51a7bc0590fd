"""Protobuf messages as docker-style JSON values: PascalCase keys, readable enums and durations.

swarmctl layer, pure; used by the inspect commands (through `swarmctl.output`). Field names go
from snake_case to PascalCase with docker's acronyms (`id` -> `ID`, `ca_cert` -> `CACert`,
`nano_cpus` -> `NanoCPUs`); map keys are user data and kept as they are. Only set fields appear
(proto3 presence, like protobuf's own JSON mapping). Enums print as their lower-case short name
(`TASK_STATE_RUNNING` -> `running`), Durations as Go durations (`1m30s`), Timestamps as RFC 3339,
64-bit integers as JSON numbers and bytes as text when they are UTF-8 (PEM certificates), else
base64.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

from google.protobuf import descriptor, duration_pb2, timestamp_pb2
from google.protobuf.message import Message

from swarmctl.flags import format_duration

_ACRONYMS = {
    "id": "ID",
    "ids": "IDs",
    "ca": "CA",
    "cn": "CN",
    "csr": "CSR",
    "tls": "TLS",
    "ip": "IP",
    "ipam": "IPAM",
    "ipv6": "IPv6",
    "cpus": "CPUs",
    "dns": "DNS",
    "uid": "UID",
    "gid": "GID",
    "os": "OS",
}
_FD = descriptor.FieldDescriptor


@functools.cache
def pascal_case(name: str) -> str:
    """`task_history_retention_limit` -> `TaskHistoryRetentionLimit`, `node_id` -> `NodeID`."""
    return "".join(_ACRONYMS.get(part, part[:1].upper() + part[1:]) for part in name.split("_"))


@functools.cache
def _enum_prefix(enum: descriptor.EnumDescriptor) -> str:
    """The `TYPE_` prefix all values of a proto enum share (proto3 enums share one scope)."""
    names = [v.name for v in enum.values]
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    return prefix[: prefix.rfind("_") + 1] if "_" in prefix else ""


def enum_name(enum: descriptor.EnumDescriptor, number: int) -> str:
    """`TASK_STATE_RUNNING` -> `running`, `RESTART_CONDITION_ON_FAILURE` -> `on-failure`.

    An undeclared number (proto3 enums are open) prints as itself.
    """
    value = enum.values_by_number.get(number)
    if value is None:
        return str(number)
    return value.name[len(_enum_prefix(enum)) :].lower().replace("_", "-")


def _scalar(field: descriptor.FieldDescriptor, value: Any) -> Any:
    if field.type == _FD.TYPE_ENUM and field.enum_type is not None:
        return enum_name(field.enum_type, value)
    if field.type == _FD.TYPE_BYTES:
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if field.type in (_FD.TYPE_FLOAT,):
        return float(f"{value:.7g}")
    return value


def _value(field: descriptor.FieldDescriptor, value: Any) -> Any:
    if field.type == _FD.TYPE_MESSAGE:
        return to_dict(value)
    return _scalar(field, value)


def _is_map(field: descriptor.FieldDescriptor) -> bool:
    msg = field.message_type
    return msg is not None and msg.GetOptions().map_entry


def to_dict(msg: Message) -> Any:
    """The docker-style JSON value of `msg` (a dict, or a string for Duration/Timestamp)."""
    if isinstance(msg, duration_pb2.Duration):
        return format_duration(msg)
    if isinstance(msg, timestamp_pb2.Timestamp):
        return msg.ToJsonString()
    out: dict[str, Any] = {}
    fields: list[tuple[Any, Any]] = list(msg.ListFields())
    # An enum at its zero value is still worth showing ("Type": "bind" of a mount); other
    # scalars at zero are left out, as in protobuf's JSON mapping.
    present = {f.name for f, _ in fields}
    for field in msg.DESCRIPTOR.fields:
        if (
            field.type == _FD.TYPE_ENUM
            and not field.is_repeated
            and field.containing_oneof is None
            and field.name not in present
        ):
            fields.append((field, 0))
    fields.sort(key=lambda fv: fv[0].number)
    for field, value in fields:
        key = pascal_case(field.name)
        if field.message_type is not None and _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            out[key] = {k: _value(value_field, v) for k, v in sorted(value.items())}
        elif field.is_repeated:
            out[key] = [_value(field, v) for v in value]
        else:
            out[key] = _value(field, value)
    return out


__all__ = ["enum_name", "pascal_case", "to_dict"]
