"""Founding: the membership written into a raft log before its driver runs.

Manager layer, raft node; called by `RaftNode.bootstrap`, `RaftNode.force_new_cluster` and
`RaftNode.has_membership` (node.py), between `RaftNode.open` and `RaftNode.recover`, when
nothing else touches the storage. Three cases: founding a new cluster (the founders' ADD_NODE
entries, committed), adopting the single-voter log of earlier releases (`LocalProposer`: store
entries, no membership), and swarmkit's `--force-new-cluster` after quorum loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from swarmd import errors
from swarmd.api import types_pb2
from swarmd.manager.raftnode.durable import DurableStorage
from swarmd.raft import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    RaftID,
)

Logger = structlog.typing.FilteringBoundLogger


def has_membership(storage: DurableStorage) -> bool:
    """Does the stored state name any raft member (snapshot or conf-change entry)?

    False for an empty state and for a log written by `LocalProposer` (entries, no
    membership): both need `bootstrap` unless this manager joins an existing cluster.
    """
    _, conf = storage.initial_state()
    if conf.voters or conf.learners:
        return True
    first, last = storage.first_index(), storage.last_index()
    if last < first:
        return False
    entries = storage.entries(first, last + 1, 1 << 62)
    return any(e.type is EntryType.CONF_CHANGE for e in entries)


async def bootstrap(
    storage: DurableStorage, me: RaftID, founders: Sequence[types_pb2.RaftMember], log: Logger
) -> None:
    """Found a new cluster: write its membership as committed log entries.

    On an empty log, the founders' ADD_NODE entries become entries 1..n; every founder
    bootstraps the same list. Unlike `RawNode.bootstrap`, each entry carries the founder's
    RaftMember as context, so every member learns the addresses from the log. On a log
    without membership (written by `LocalProposer`, the single-voter log of earlier
    releases) this member, the only founder, is added after the last entry: the cluster
    keeps its data and goes on as a one-manager raft cluster.

    Raises:
        errors.FailedPrecondition: the log already has a membership.
        errors.InvalidArgument: `me` is not among the founders, or a log without membership
            is adopted by more than one founder.
    """
    if has_membership(storage):
        raise errors.FailedPrecondition(f"raft member {me:x} already has a membership")
    ordered = sorted(founders, key=lambda m: m.raft_id)
    if me not in {m.raft_id for m in ordered}:
        raise errors.InvalidArgument(f"raft member {me:x} is not among the founders")
    if not storage.is_empty():
        await _adopt_log(storage, ordered, log)
        return
    entries = [
        Entry(term=1, index=i + 1, type=EntryType.CONF_CHANGE, data=_add_node(m))
        for i, m in enumerate(ordered)
    ]
    await storage.append(entries, HardState(term=1, commit=len(entries)))
    log.info("raft cluster bootstrapped", founders=len(entries))


async def _adopt_log(
    storage: DurableStorage, founders: list[types_pb2.RaftMember], log: Logger
) -> None:
    if len(founders) != 1:
        raise errors.InvalidArgument(
            "a raft log without membership can only be adopted by a single founder"
        )
    last = storage.last_index()
    hard, _ = storage.initial_state()
    term = max(storage.term(last), hard.term, 1)
    entry = Entry(
        term=term, index=last + 1, type=EntryType.CONF_CHANGE, data=_add_node(founders[0])
    )
    await storage.append([entry], HardState(term=term, vote=hard.vote, commit=last + 1))
    log.info("single-voter raft log adopted", last_index=last)


async def force_new_cluster(
    storage: DurableStorage, member: types_pb2.RaftMember, log: Logger
) -> None:
    """Make `member` the only voter of its log, to recover a cluster that lost quorum.

    swarmkit's `--force-new-cluster` (storage.go loadAndStart): the log is cut back to its
    committed index (an uncommitted tail may never have reached a quorum), then one
    REMOVE_NODE entry per other member is appended and committed by fiat, in a term above
    any this member has seen. Every store entry before the cut is kept, so services,
    secrets and nodes survive; the removed members' raft ids are remembered as removed, so
    the other managers must join again with a fresh raft state.

    Raises:
        errors.FailedPrecondition: the log has no membership, or `member` is not in it.
    """
    me = RaftID(member.raft_id)
    if not has_membership(storage):
        raise errors.FailedPrecondition(
            f"raft member {me:x} has no membership to force a new cluster from"
        )
    hard, conf = storage.initial_state()
    commit = max(hard.commit, storage.snapshot().metadata.index)
    first = storage.first_index()
    committed = storage.entries(first, commit + 1, 1 << 62) if commit >= first else []
    for entry in committed:
        if entry.type is EntryType.CONF_CHANGE:
            conf = _apply_change(conf, ConfChange.unmarshal(entry.data))
    if me not in conf.voters | conf.learners:
        raise errors.FailedPrecondition(
            f"raft member {me:x} is not a member of the cluster in its own log"
        )
    term = max(hard.term, storage.term(commit)) + 1
    entries = _forced_membership(conf, member, commit + 1, term)
    # Appending at commit + 1 replaces whatever uncommitted suffix the log held.
    await storage.append(entries, HardState(term=term, commit=entries[-1].index))
    removed = sorted((conf.voters | conf.learners) - {me})
    log.warning(
        "new raft cluster forced",
        removed=[f"{m:x}" for m in removed],
        term=term,
        commit=entries[-1].index,
    )


def _add_node(member: types_pb2.RaftMember) -> bytes:
    """The data of an ADD_NODE entry for `member`, its record as context."""
    change = ConfChange(ConfChangeType.ADD_NODE, RaftID(member.raft_id), member.SerializeToString())
    return change.marshal()


def _forced_membership(
    conf: ConfState, member: types_pb2.RaftMember, index: int, term: int
) -> list[Entry]:
    """The entries, from `index` on, that leave `member` the only voter of `conf`."""
    me = RaftID(member.raft_id)
    others = sorted((conf.voters | conf.learners) - {me})
    changes = [ConfChange(ConfChangeType.REMOVE_NODE, m) for m in others]
    if me not in conf.voters:
        # A voter first (a learner here): removing the others must never empty the voters.
        changes.insert(0, ConfChange(ConfChangeType.ADD_NODE, me, member.SerializeToString()))
    if not changes:
        # Already alone: an empty entry of the new term still replaces an uncommitted tail.
        return [Entry(term=term, index=index)]
    return [
        Entry(term=term, index=index + i, type=EntryType.CONF_CHANGE, data=c.marshal())
        for i, c in enumerate(changes)
    ]


def _apply_change(conf: ConfState, change: ConfChange) -> ConfState:
    """The membership after a committed change (as the core applies it, without validation)."""
    voters, learners = set(conf.voters), set(conf.learners)
    if change.type is ConfChangeType.ADD_NODE:
        learners.discard(change.node_id)
        voters.add(change.node_id)
    elif change.type is ConfChangeType.ADD_LEARNER:
        if change.node_id not in voters:
            learners.add(change.node_id)
    else:
        voters.discard(change.node_id)
        learners.discard(change.node_id)
    return ConfState(voters=frozenset(voters), learners=frozenset(learners))


__all__ = ["bootstrap", "force_new_cluster", "has_membership"]
