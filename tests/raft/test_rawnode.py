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


def _three() -> dict[RaftID, Member]:
    """Three bootstrapped members; member 1 campaigned and won (messages delivered by hand)."""
    ids = [RaftID(1), RaftID(2), RaftID(3)]
    members = {i: Member(i, MemoryStorage(), Config(id=i), FixedRandom()) for i in ids}
    for m in members.values():
        m.node.bootstrap(ids)
        m.handle_ready()
    members[ONE].node.campaign()
    for _ in range(6):  # votes out, votes back, the new term's first entry out and acked
        for m in members.values():
            rd = m.handle_ready()
            for msg in rd.messages if rd else ():
                members[msg.to].node.step(msg)
    assert members[ONE].node.status().soft_state.state is StateType.LEADER
    return members


def test_rawnode_batched_proposal_goes_out_as_one_append_per_follower() -> None:
    members = _three()
    last = members[ONE].node.propose_batch([b"a", b"b", b"c"])
    rd = members[ONE].handle_ready()
    assert rd is not None
    assert [e.data for e in rd.entries] == [b"a", b"b", b"c"]
    assert rd.entries[-1].index == last
    appends = [m for m in rd.messages if m.type is MessageType.APP]
    assert sorted(m.to for m in appends) == [2, 3]
    assert all(len(m.entries) == 3 for m in appends)
    with pytest.raises(ValueError, match="at least one entry"):
        members[ONE].node.propose_batch([])


def test_rawnode_only_a_leaders_appends_may_leave_before_its_writes() -> None:
    members = _three()
    members[ONE].node.propose(b"x")
    rd = members[ONE].node.ready()
    early, late = rd.split_messages()
    assert rd.keeps_vote
    assert {m.type for m in early} == {MessageType.APP}
    assert late == ()
    members[ONE].finish_ready(rd)
    # A follower's acknowledgement promises what it stored: it must wait for the write.
    for msg in rd.messages:
        members[msg.to].node.step(msg)
    ack = members[RaftID(2)].node.ready()
    assert ack.split_messages() == ((), ack.messages)
    assert {m.type for m in ack.messages} == {MessageType.APP_RESP}
    # Vote requests wait as well (with them, the acknowledgement queued before).
    members[RaftID(3)].node.campaign()
    vote = members[RaftID(3)].node.ready()
    assert MessageType.PRE_VOTE in {m.type for m in vote.messages}
    assert vote.split_messages() == ((), vote.messages)
