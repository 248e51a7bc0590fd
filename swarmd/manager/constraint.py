"""Placement constraints: the `key==value` / `key!=value` grammar and matching against a node.

Manager layer, pure (swarmkit manager/constraint). One parser for everybody: the control API
validates service specs with `parse_constraint` / `check_spread_descriptor`, the scheduler's
ConstraintFilter and placement preferences match nodes with `Constraint.matches` /
`node_attribute`. Imports only the generated API and swarmd.errors, so any manager package can
use it without an import cycle.

Keys: `node.id`, `node.hostname`, `node.role` (manager|worker), `node.ip` (an address or a CIDR
subnet, matched against the address the dispatcher saw the node connect from),
`node.platform.os`, `node.platform.arch`, `node.labels.<label>` (the node spec's labels, set by
operators) and `engine.labels.<label>` (the engine's labels, reported by the agent). Fixed keys
fold case; label names keep theirs (labels are case-sensitive maps). Values compare
case-insensitively; several constraints all have to hold (AND).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from swarmd import errors
from swarmd.api import objects_pb2, types_pb2

NODE_LABEL_PREFIX = "node.labels."
ENGINE_LABEL_PREFIX = "engine.labels."
LABEL_PREFIXES = (NODE_LABEL_PREFIX, ENGINE_LABEL_PREFIX)
# Order matters for the error text only (it lists them as a user would read them).
FIXED_KEYS = (
    "node.id",
    "node.hostname",
    "node.role",
    "node.ip",
    "node.platform.os",
    "node.platform.arch",
)
_FIXED = frozenset(FIXED_KEYS)
ROLES = ("manager", "worker")
_ROLE_NAMES = {types_pb2.NODE_ROLE_MANAGER: "manager", types_pb2.NODE_ROLE_WORKER: "worker"}

# swarmkit constraint.go valuePattern: no '=' or '!' inside a value.
_VALUE = re.compile(r"[a-zA-Z0-9:\-_\s.*()?+\[\]\\^$|/]+")

KEY_RULE = (
    "key must be node.id, node.hostname, node.role, node.ip, node.platform.os, "
    "node.platform.arch, node.labels.<label> or engine.labels.<label>"
)
SYNTAX_RULE = "must be <key>==<value> or <key>!=<value>"
VALUE_RULE = "value must be non-empty letters, digits, spaces and : - _ . * ( ) ? + [ ] \\ ^ $ | /"
ROLE_RULE = "node.role is manager or worker"
IP_RULE = "node.ip must be an IP address or a CIDR subnet"


class ConstraintError(errors.InvalidArgument):
    """A constraint (or spread descriptor) that does not parse.

    Attributes:
        expr: the text as given.
        rule: the rule it breaks, for callers that build their own message around it (the
            control API's `invalid <field> <value>: <rule>`).
    """

    def __init__(self, expr: str, rule: str, what: str = "constraint") -> None:
        super().__init__(f"invalid {what} {expr!r}: {rule}")
        self.expr = expr
        self.rule = rule


@dataclass(frozen=True, slots=True)
class Constraint:
    """One parsed constraint.

    Attributes:
        key: canonical key (fixed keys lowercased, label names as written).
        equal: True for `==`, False for `!=`.
        value: the value as written (compared case-insensitively).
    """

    key: str
    equal: bool
    value: str

    def __str__(self) -> str:
        return f"{self.key}{'==' if self.equal else '!='}{self.value}"

    def matches(self, node: objects_pb2.Node) -> bool:
        """Whether the node satisfies this constraint.

        A missing label reads as the empty string, so `node.labels.zone!=eu` holds on a node
        without a zone label. A node whose address is unknown satisfies no node.ip constraint,
        whatever the operator (swarmkit does the same: it cannot say where the node is).
        """
        if self.key == "node.ip":
            return self._matches_ip(node)
        actual = node_attribute(self.key, node) or ""
        return (actual.casefold() == self.value.casefold()) == self.equal

    def _matches_ip(self, node: objects_pb2.Node) -> bool:
        addr = _parse_ip(node.status.addr)
        if addr is None:
            return False
        net = ipaddress.ip_network(self.value, strict=False)
        inside = addr.version == net.version and addr in net
        return inside == self.equal


def parse_constraint(expr: str) -> Constraint:
    """Parse `key==value` or `key!=value` (spaces around key and value are ignored).

    Raises:
        ConstraintError: (an errors.InvalidArgument) naming the constraint and the rule.
    """
    positions = [(expr.find(op), op) for op in ("==", "!=") if op in expr]
    if not positions:
        raise ConstraintError(expr, SYNTAX_RULE)
    at, op = min(positions)
    key = _canonical_key(expr[:at].strip())
    if key is None:
        raise ConstraintError(expr, KEY_RULE)
    value = expr[at + 2 :].strip()
    if not value or not _VALUE.fullmatch(value):
        raise ConstraintError(expr, VALUE_RULE)
    if key == "node.role" and value.lower() not in ROLES:
        raise ConstraintError(expr, ROLE_RULE)
    if key == "node.ip":
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ConstraintError(expr, IP_RULE) from None
    return Constraint(key=key, equal=op == "==", value=value)


def parse_constraints(exprs: Iterable[str]) -> tuple[Constraint, ...]:
    """Parse every constraint, in order.

    Raises:
        ConstraintError: for the first one that does not parse.
    """
    return tuple(parse_constraint(e) for e in exprs)


def node_matches(constraints: Sequence[Constraint], node: objects_pb2.Node) -> bool:
    """Whether the node satisfies all constraints (an empty list matches every node)."""
    return all(c.matches(node) for c in constraints)


def check_spread_descriptor(descriptor: str) -> str:
    """The canonical key of a placement preference's spread descriptor (`node.labels.zone`).

    Any constraint key can be spread over; labels are what operators normally use.

    Raises:
        ConstraintError: the descriptor is not a constraint key.
    """
    key = _canonical_key(descriptor.strip())
    if key is None:
        raise ConstraintError(descriptor, "spread " + KEY_RULE, what="spread descriptor")
    return key


def node_attribute(key: str, node: objects_pb2.Node) -> str | None:
    """The node's value for a canonical key; None for a missing label or an unknown key."""
    if key.startswith(NODE_LABEL_PREFIX):
        labels = node.spec.annotations.labels
        label = key[len(NODE_LABEL_PREFIX) :]
        return labels.get(label)
    if key.startswith(ENGINE_LABEL_PREFIX):
        labels = node.description.engine.labels
        label = key[len(ENGINE_LABEL_PREFIX) :]
        return labels.get(label)
    if key == "node.id":
        return node.id
    if key == "node.hostname":
        return node.description.hostname
    if key == "node.role":
        return _ROLE_NAMES.get(node.role, "")
    if key == "node.ip":
        addr = _parse_ip(node.status.addr)
        return None if addr is None else str(addr)
    if key == "node.platform.os":
        return node.description.platform.os
    if key == "node.platform.arch":
        return node.description.platform.architecture
    return None


def _canonical_key(key: str) -> str | None:
    folded = key.lower()
    if folded in _FIXED:
        return folded
    for prefix in LABEL_PREFIXES:
        if folded.startswith(prefix) and len(key) > len(prefix):
            return prefix + key[len(prefix) :]
    return None


def _parse_ip(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP in a node address: a bare IP, `ip:port` or `[ipv6]:port`; None if there is none."""
    text = addr.strip()
    if not text:
        return None
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


__all__ = [
    "ENGINE_LABEL_PREFIX",
    "FIXED_KEYS",
    "KEY_RULE",
    "LABEL_PREFIXES",
    "NODE_LABEL_PREFIX",
    "ROLES",
    "Constraint",
    "ConstraintError",
    "check_spread_descriptor",
    "node_attribute",
    "node_matches",
    "parse_constraint",
    "parse_constraints",
]
