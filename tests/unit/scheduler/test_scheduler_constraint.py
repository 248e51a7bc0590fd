"""Placement constraints (swarmd/manager/constraint.py): grammar, errors, matching per key."""

from __future__ import annotations

import pytest
from schedbuild import node

from swarmd import errors
from swarmd.manager.constraint import (
    Constraint,
    ConstraintError,
    check_spread_descriptor,
    node_attribute,
    node_matches,
    parse_constraint,
    parse_constraints,
)


@pytest.mark.parametrize(
    ("expr", "key", "equal", "value"),
    [
        ("node.hostname==web-1", "node.hostname", True, "web-1"),
        (" Node.Role == Manager ", "node.role", True, "Manager"),
        ("node.labels.Zone!=eu-1", "node.labels.Zone", False, "eu-1"),
        ("engine.labels.storage==ssd", "engine.labels.storage", True, "ssd"),
        ("node.ip==10.0.0.0/8", "node.ip", True, "10.0.0.0/8"),
        ("node.ip!=fd00::1", "node.ip", False, "fd00::1"),
        ("NODE.PLATFORM.OS==linux", "node.platform.os", True, "linux"),
        ("node.platform.arch!=arm64", "node.platform.arch", False, "arm64"),
        ("node.id==abc123", "node.id", True, "abc123"),
    ],
)
def test_constraint_parse(expr: str, key: str, equal: bool, value: str) -> None:
    c = parse_constraint(expr)
    assert (c.key, c.equal, c.value) == (key, equal, value)


def test_constraint_renders_canonically() -> None:
    assert str(parse_constraint(" node.labels.zone == eu ")) == "node.labels.zone==eu"
    assert str(parse_constraint("Node.Role!=worker")) == "node.role!=worker"


@pytest.mark.parametrize(
    ("expr", "rule"),
    [
        ("node.role", "must be <key>==<value> or <key>!=<value>"),
        ("node.colour==red", "key must be node.id, node.hostname, node.role, node.ip"),
        ("node.labels.==x", "key must be node.id"),
        ("node.role==boss", "node.role is manager or worker"),
        ("node.hostname==", "value must be non-empty"),
        ("node.hostname==a=b", "value must be non-empty"),
        ("node.ip==10.0.0.300", "node.ip must be an IP address or a CIDR subnet"),
        ("node.ip==somewhere", "node.ip must be an IP address or a CIDR subnet"),
    ],
)
def test_constraint_parse_errors_name_the_constraint(expr: str, rule: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        parse_constraint(expr)
    err = caught.value
    assert isinstance(err, ConstraintError)
    assert str(err).startswith(f"invalid constraint {expr!r}: ")
    assert rule in str(err)
    assert err.expr == expr
    assert rule in err.rule


def test_constraint_parse_constraints_reports_the_first_bad_one() -> None:
    with pytest.raises(ConstraintError) as caught:
        parse_constraints(["node.role==worker", "zone=eu", "node.x==1"])
    assert caught.value.expr == "zone=eu"


LABELLED = node(
    "n1",
    hostname="Web-1",
    labels={"zone": "EU-West", "Tier": "front"},
    engine_labels={"storage": "ssd"},
    manager=True,
    addr="10.1.2.3",
    os="linux",
    arch="x86_64",
)


@pytest.mark.parametrize(
    ("expr", "matches"),
    [
        ("node.id==n1", True),
        ("node.id==N1", True),
        ("node.id!=n1", False),
        ("node.hostname==web-1", True),
        ("node.hostname!=web-2", True),
        ("node.role==manager", True),
        ("node.role==worker", False),
        ("node.role!=worker", True),
        ("node.labels.zone==eu-west", True),
        ("node.labels.zone==eu", False),
        ("node.labels.zone!=eu", True),
        ("node.labels.Tier==front", True),
        # Label names are case-sensitive (they are map keys); a missing label reads as "".
        ("node.labels.tier==front", False),
        ("node.labels.tier!=front", True),
        ("node.labels.missing!=x", True),
        ("engine.labels.storage==SSD", True),
        ("engine.labels.zone==eu-west", False),
        ("node.platform.os==Linux", True),
        ("node.platform.arch==x86_64", True),
        ("node.platform.arch!=x86_64", False),
        ("node.ip==10.1.2.3", True),
        ("node.ip==10.1.2.4", False),
        ("node.ip!=10.1.2.4", True),
        ("node.ip==10.0.0.0/8", True),
        ("node.ip==10.1.2.3/32", True),
        ("node.ip==192.168.0.0/16", False),
        ("node.ip!=192.168.0.0/16", True),
        ("node.ip==fd00::/8", False),
    ],
)
def test_constraint_matches_node(expr: str, matches: bool) -> None:
    assert parse_constraint(expr).matches(LABELLED) is matches


@pytest.mark.parametrize(
    ("addr", "expr", "matches"),
    [
        ("10.0.0.5:4242", "node.ip==10.0.0.5", True),
        ("[fd00::5]:4242", "node.ip==fd00::/64", True),
        ("fd00::5", "node.ip==fd00::5", True),
        ("fd00::5", "node.ip!=10.0.0.0/8", True),
        # An unknown address satisfies no node.ip constraint, whichever the operator.
        ("", "node.ip==10.0.0.5", False),
        ("", "node.ip!=10.0.0.5", False),
        ("not-an-ip", "node.ip!=10.0.0.0/8", False),
    ],
)
def test_constraint_node_ip_forms(addr: str, expr: str, matches: bool) -> None:
    assert parse_constraint(expr).matches(node("n", addr=addr)) is matches


def test_constraint_all_must_hold() -> None:
    both = parse_constraints(["node.role==manager", "node.labels.zone==eu-west"])
    one_wrong = parse_constraints(["node.role==manager", "node.labels.zone==us"])
    assert node_matches(both, LABELLED)
    assert not node_matches(one_wrong, LABELLED)
    assert node_matches((), LABELLED)


def test_constraint_node_attribute_and_spread_descriptors() -> None:
    assert node_attribute("node.labels.zone", LABELLED) == "EU-West"
    assert node_attribute("node.labels.rack", LABELLED) is None
    assert node_attribute("engine.labels.storage", LABELLED) == "ssd"
    assert node_attribute("node.role", LABELLED) == "manager"
    assert node_attribute("node.ip", node("x", addr="10.0.0.1:4242")) == "10.0.0.1"
    assert check_spread_descriptor("Node.Labels.zone") == "node.labels.zone"
    assert check_spread_descriptor("node.platform.arch") == "node.platform.arch"
    with pytest.raises(ConstraintError) as caught:
        check_spread_descriptor("zone")
    assert str(caught.value).startswith("invalid spread descriptor 'zone': spread key must be")


def test_constraint_is_a_value() -> None:
    assert parse_constraint("node.role==worker") == Constraint("node.role", True, "worker")
