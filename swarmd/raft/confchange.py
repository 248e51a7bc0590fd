"""Single-step membership changes: what a ConfChange does to a ConfState, and when it is valid.

Raft core layer; the leader validates a change when it is proposed (`roles/leader.py`), and
every member applies it when the driver hands back the committed entry
(`RawNode.apply_conf_change`). Changing one member at a time keeps any two consecutive
majorities overlapping (Raft dissertation §4.1), so no joint consensus is needed. Supported:
add a learner, promote a learner (or add a new member directly) to voter, remove a member.
Demoting a voter to learner is not: it would need two steps anyway (remove, then add).
"""

from __future__ import annotations

from swarmd.raft.errors import ConfChangeRejected
from swarmd.raft.types import ConfChange, ConfChangeType, ConfState, RaftID


def validate(conf_state: ConfState, change: ConfChange) -> None:
    """Check that `change` makes sense for `conf_state`.

    Raises:
        ConfChangeRejected: the change is a no-op, a demotion, or removes the last voter.
    """
    node = change.node_id
    if node <= 0:
        raise ConfChangeRejected(f"conf change names invalid raft id {node}")
    if change.type is ConfChangeType.ADD_NODE:
        if node in conf_state.voters:
            raise ConfChangeRejected(f"raft member {node:x} is already a voter")
    elif change.type is ConfChangeType.ADD_LEARNER:
        if node in conf_state.voters:
            raise ConfChangeRejected(
                f"raft member {node:x} is a voter; demote it by removing it first"
            )
        if node in conf_state.learners:
            raise ConfChangeRejected(f"raft member {node:x} is already a learner")
    elif change.type is ConfChangeType.REMOVE_NODE:
        if node not in conf_state.voters and node not in conf_state.learners:
            raise ConfChangeRejected(f"raft member {node:x} is not a member")
        if conf_state.voters == {node}:
            raise ConfChangeRejected(f"raft member {node:x} is the last voter")


def is_noop(conf_state: ConfState, change: ConfChange) -> bool:
    """Does `change` leave `conf_state` as it is (already applied, say after a bootstrap)?"""
    node = change.node_id
    if change.type is ConfChangeType.ADD_NODE:
        return node in conf_state.voters
    if change.type is ConfChangeType.ADD_LEARNER:
        return node in conf_state.learners
    return node not in conf_state.voters and node not in conf_state.learners


def apply(conf_state: ConfState, change: ConfChange) -> ConfState:
    """The membership after `change`; a change that is already in effect changes nothing.

    Raises:
        ConfChangeRejected: the change is invalid for `conf_state` (a demotion, removing
            the last voter).
    """
    if is_noop(conf_state, change):
        return conf_state
    validate(conf_state, change)
    voters = set(conf_state.voters)
    learners = set(conf_state.learners)
    node: RaftID = change.node_id
    if change.type is ConfChangeType.ADD_NODE:
        learners.discard(node)
        voters.add(node)
    elif change.type is ConfChangeType.ADD_LEARNER:
        learners.add(node)
    else:
        voters.discard(node)
        learners.discard(node)
    return ConfState(voters=frozenset(voters), learners=frozenset(learners))
