"""RawNode: bootstrap, the Ready/advance contract, restarts from storage, input checks."""

from __future__ import annotations

import random

import pytest

from swarmd.raft import (
    Config,
    EntryType,
    InvalidMessage,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    RaftID,
    RawNode,
    StateType,
)
from tests.raft.harness import FixedRandom, Member

ONE = RaftID(1)


def single() -> Member:
    m = Member(ONE, MemoryStorage(), Config(id=ONE), FixedRandom())
    m.node.bootstrap([ONE])
    m.handle_ready()
    return m


def test_rawnode_config_is_validated() -> None:
    with pytest.raises(ValueError, match="election_tick 1 must be greater than heartbeat_tick"):
        RawNode(Config(id=ONE, election_tick=1), MemoryStorage(), rng=random.Random(0))
    with pytest.raises(ValueError, match="raft id 0 must be positive"):
        RawNode(Config(id=RaftID(0)), MemoryStorage(), rng=random.Random(0))


def test_rawnode_bootstrap_puts_founders_in_the_log() -> None:
    node = RawNode(Config(id=ONE), MemoryStorage(), rng=random.Random(0))
    node.bootstrap([RaftID(2), ONE])
    rd = node.ready()
    assert [e.type for e in rd.entries] == [EntryType.CONF_CHANGE] * 2
    assert rd.hard_state is not None
    assert rd.hard_state.commit == 2
    assert rd.committed_entries == rd.entries
    assert node.status().conf_state.voters == {1, 2}
    with pytest.raises(ValueError, match="non-empty log"):
        node.bootstrap([ONE])


def test_rawnode_single_voter_commits_its_own_proposals() -> None:
    m = single()
    m.node.campaign()
    m.handle_ready()
    assert m.node.status().soft_state.state is StateType.LEADER
    index = m.node.propose(b"x")
    rd = m.handle_ready()
    assert rd is not None
    assert [e.data for e in rd.committed_entries] == [b"x"]
    assert m.state[-1] == (index, b"x")
    assert not m.node.has_ready()


def test_rawnode_ready_without_advance_repeats_nothing_twice() -> None:
    m = single()
    m.node.campaign()
    rd = m.node.ready()
    assert rd.messages == ()
    assert rd.entries  # the leader's empty entry
    m.storage.append(rd.entries)
    if rd.hard_state is not None:
        m.storage.set_hard_state(rd.hard_state)
    m.node.advance(rd)
    again = m.node.ready()
    assert again.entries == ()


def test_rawnode_restart_keeps_only_what_was_persisted() -> None:
    m = single()
    m.node.campaign()
    m.handle_ready()
    m.node.propose(b"persisted")
    m.handle_ready()
    m.node.propose(b"lost")  # appended, but its Ready is never handled
    m.restart()
    log = m.node.raft.log
    assert [e.data for e in log.all_entries()][-1] == b"persisted"
    assert m.node.raft.term == 2  # bootstrap is term 1, the first election term 2
    # Applied restarts at the snapshot: the committed log is handed out again.
    rd = m.handle_ready()
    assert rd is not None
    assert b"persisted" in [e.data for e in rd.committed_entries]


def test_rawnode_step_refuses_local_and_anonymous_messages() -> None:
    node = single().node
    with pytest.raises(InvalidMessage, match="hup message from the network"):
        node.step(Message(type=MessageType.HUP, from_=RaftID(2)))
    with pytest.raises(InvalidMessage, match="without a sender"):
        node.step(Message(type=MessageType.APP, term=1))


def test_rawnode_follower_without_leader_drops_requests() -> None:
    m = Member(ONE, MemoryStorage(), Config(id=ONE), FixedRandom())
    m.node.bootstrap([ONE, RaftID(2), RaftID(3)])
    m.handle_ready()
    with pytest.raises(ProposalDropped, match="knows no leader"):
        m.node.propose(b"x")
    with pytest.raises(ProposalDropped, match="knows no leader to confirm a read"):
        m.node.read_index(b"r")
    with pytest.raises(ProposalDropped, match="knows no leader to transfer"):
        m.node.transfer_leader(RaftID(2))


def test_rawnode_new_leader_holds_reads_until_own_term_commit() -> None:
    m = Member(ONE, MemoryStorage(), Config(id=ONE, pre_vote=False), FixedRandom())
    m.node.bootstrap([ONE, RaftID(2), RaftID(3)])
    m.handle_ready()
    m.node.campaign()
    m.node.step(Message(type=MessageType.VOTE_RESP, from_=RaftID(2), to=ONE, term=2))
    m.handle_ready()
    m.node.read_index(b"early")
    rd = m.handle_ready()
    assert rd is None or not any(msg.context == b"early" for msg in rd.messages)
    last = m.node.raft.log.last_index()
    m.node.step(Message(type=MessageType.APP_RESP, from_=RaftID(2), to=ONE, term=2, index=last))
    rd = m.handle_ready()
    assert rd is not None
    beats = [msg for msg in rd.messages if msg.type is MessageType.HEARTBEAT]
    assert {msg.context for msg in beats} == {b"early"}
    m.node.step(
        Message(type=MessageType.HEARTBEAT_RESP, from_=RaftID(3), to=ONE, term=2, context=b"early")
    )
    rd = m.handle_ready()
    assert rd is not None
    assert [(r.request_ctx, r.index) for r in rd.read_states] == [(b"early", last)]


def test_rawnode_own_read_forwarded_back_without_leader_is_dropped_quietly() -> None:
    """Found by sim seed 6712: 1 forwarded its read to 2, 2 (following 1 by then) forwarded
    it back; 1, leaderless now, must drop it, not fail as if the read were its own request."""
    m = Member(ONE, MemoryStorage(), Config(id=ONE), FixedRandom())
    m.node.bootstrap([ONE, RaftID(2), RaftID(3)])
    m.handle_ready()
    bounced = Message(type=MessageType.READ_INDEX, from_=ONE, to=ONE, context=b"r")
    m.node.step(bounced)
    assert m.handle_ready() is None
