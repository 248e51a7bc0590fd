"""Single-step membership changes: which changes are valid, and what they do."""

from __future__ import annotations

import pytest

from swarmd.raft import (
    ConfChange,
    ConfChangeRejected,
    ConfChangeType,
    ConfState,
    RaftID,
    confchange,
)

ADD, LEARN, REMOVE = ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER, ConfChangeType.REMOVE_NODE


def conf(voters: set[int], learners: set[int] | None = None) -> ConfState:
    return ConfState(
        voters=frozenset(RaftID(v) for v in voters),
        learners=frozenset(RaftID(v) for v in learners or set()),
    )


@pytest.mark.parametrize(
    ("before", "change", "after"),
    [
        (conf({1}), (LEARN, 2), conf({1}, {2})),
        (conf({1}, {2}), (ADD, 2), conf({1, 2})),  # promotion
        (conf({1}), (ADD, 2), conf({1, 2})),
        (conf({1, 2}, {3}), (REMOVE, 3), conf({1, 2})),
        (conf({1, 2}), (REMOVE, 1), conf({2})),
    ],
)
def test_confchange_apply(before: ConfState, change: tuple[ConfChangeType, int], after: ConfState):
    cc = ConfChange(change[0], RaftID(change[1]))
    confchange.validate(before, cc)
    assert confchange.apply(before, cc) == after


@pytest.mark.parametrize(
    ("before", "change", "reason"),
    [
        (conf({1, 2}), (ADD, 2), "already a voter"),
        (conf({1, 2}), (LEARN, 2), "is a voter"),
        (conf({1}, {2}), (LEARN, 2), "already a learner"),
        (conf({1}), (REMOVE, 3), "not a member"),
        (conf({1}), (REMOVE, 1), "last voter"),
        (conf({1}), (ADD, 0), "invalid raft id"),
    ],
)
def test_confchange_validate_rejects(
    before: ConfState, change: tuple[ConfChangeType, int], reason: str
) -> None:
    with pytest.raises(ConfChangeRejected, match=reason):
        confchange.validate(before, ConfChange(change[0], RaftID(change[1])))


def test_confchange_apply_of_an_applied_change_is_a_noop() -> None:
    # Bootstrap entries are applied when bootstrapping and again from the first Ready.
    state = conf({1, 2})
    assert confchange.apply(state, ConfChange(ADD, RaftID(2))) == state


def test_confchange_apply_refuses_a_demotion() -> None:
    with pytest.raises(ConfChangeRejected):
        confchange.apply(conf({1, 2}), ConfChange(LEARN, RaftID(2)))


def test_confchange_marshal_round_trip() -> None:
    cc = ConfChange(REMOVE, RaftID(0x7FFF_FFFF_FFFF_FFFF), context=b"member-info")
    assert ConfChange.unmarshal(cc.marshal()) == cc
    with pytest.raises(ValueError, match="too short"):
        ConfChange.unmarshal(b"\x00")
