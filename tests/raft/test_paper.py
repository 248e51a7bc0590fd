"""One test per claim of the Raft paper (Ongaro & Ousterhout, "In Search of an Understandable
Consensus Algorithm", extended version), sections 5.2, 5.3, 5.4 and 6.

Each docstring quotes or paraphrases the claim. Single-member tests step messages into one
Raft and read what it sends; multi-member tests drive the interaction environment quietly.
Pre-vote and check-quorum are off unless a claim needs them: the paper has neither.
"""

from __future__ import annotations

import random

import pytest

from swarmd.raft import (
    ConfChange,
    ConfChangeRejected,
    ConfChangeType,
    Config,
    Entry,
    MemoryStorage,
    Message,
    MessageType,
    RaftID,
    RawNode,
    StateType,
)
from swarmd.raft.raft import Raft
from tests.raft.harness import FixedRandom, Member
from tests.raft.interaction.env import InteractionEnv

MT = MessageType
ONE, TWO, THREE = RaftID(1), RaftID(2), RaftID(3)
BOOT = 3  # a 3-member bootstrap puts three conf-change entries (term 1) first in the log


def member(
    member_id: int = 1,
    voters: tuple[int, ...] = (1, 2, 3),
    *,
    entries: list[Entry] | None = None,
    term: int = 0,
) -> Member:
    """A bootstrapped member whose storage also holds `entries` after the bootstrap."""
    m = Member(
        RaftID(member_id),
        MemoryStorage(),
        Config(id=RaftID(member_id), pre_vote=False, check_quorum=False),
        FixedRandom(),
    )
    m.node.bootstrap([RaftID(v) for v in voters])
    m.handle_ready()
    if entries or term:
        if entries:
            m.storage.append(entries)
        hs = m.storage.initial_state()[0]
        m.storage.set_hard_state(type(hs)(term=max(term, hs.term), vote=hs.vote, commit=hs.commit))
        m.restart()
        m.handle_ready()
    return m


def raft_of(m: Member) -> Raft:
    return m.node.raft


def take(m: Member) -> list[Message]:
    raft = raft_of(m)
    msgs, raft.msgs = raft.msgs, []
    return msgs


def elect(m: Member) -> None:
    """Make `m` leader of the next term by stepping in the votes of 2 and 3."""
    m.node.campaign()
    term = raft_of(m).term
    for voter in (TWO, THREE):
        m.node.step(Message(type=MT.VOTE_RESP, from_=voter, to=m.id, term=term))
    assert raft_of(m).state is StateType.LEADER
    take(m)


def quiet_env(count: int = 3, **opts: str) -> InteractionEnv:
    env = InteractionEnv()
    env.run("log-level none")
    args = " ".join(f"{k}={v}" for k, v in opts.items())
    env.run(f"add-nodes {count} pre-vote=false check-quorum=false {args}")
    return env


def state(env: InteractionEnv, member_id: int) -> StateType:
    return env.members[RaftID(member_id)].node.raft.state


# §5.2 Leader election


@pytest.mark.parametrize("role", [StateType.FOLLOWER, StateType.CANDIDATE, StateType.LEADER])
def test_paper_update_term_from_message(role: StateType) -> None:
    """§5.1: "If one server's current term is smaller than the other's, then it updates its
    current term to the larger value. If a candidate or leader discovers that its term is out
    of date, it immediately reverts to follower state." """
    m = member()
    if role is StateType.CANDIDATE:
        m.node.campaign()
    elif role is StateType.LEADER:
        elect(m)
    m.node.step(Message(type=MT.APP, from_=TWO, to=ONE, term=5, index=0, log_term=0))
    assert raft_of(m).term == 5
    assert raft_of(m).state is StateType.FOLLOWER
    assert raft_of(m).lead == TWO


def test_paper_reject_stale_term_message() -> None:
    """§5.1: "If a server receives a request with a stale term number, it rejects the
    request." An append of term 1 to a member in term 2 changes nothing."""
    m = member(term=2)
    before = raft_of(m).log.last_index()
    m.node.step(
        Message(
            type=MT.APP,
            from_=TWO,
            to=ONE,
            term=1,
            index=BOOT,
            log_term=1,
            entries=(Entry(term=1, index=BOOT + 1, data=b"x"),),
        )
    )
    assert raft_of(m).log.last_index() == before
    assert raft_of(m).term == 2
    assert raft_of(m).lead == 0


def test_paper_start_as_follower() -> None:
    """§5.2: "When servers start up, they begin as followers." """
    m = member()
    assert raft_of(m).state is StateType.FOLLOWER
    assert raft_of(m).term == 1  # the term of the bootstrap entries


def test_paper_leader_broadcasts_heartbeats() -> None:
    """§5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log entries)
    to all followers in order to maintain their authority." """
    m = member()
    elect(m)
    for _ in range(raft_of(m).heartbeat_timeout):
        m.node.tick()
    beats = take(m)
    assert sorted(msg.to for msg in beats) == [TWO, THREE]
    assert all(msg.type is MT.HEARTBEAT and not msg.entries for msg in beats)


def test_paper_follower_starts_election_after_timeout() -> None:
    """§5.2: "If a follower receives no communication over a period of time called the
    election timeout ... To begin an election, a follower increments its current term ...
    votes for itself and issues RequestVote RPCs in parallel to each of the other servers." """
    m = member()
    for _ in range(raft_of(m).election_timeout):
        m.node.tick()
    raft = raft_of(m)
    assert raft.state is StateType.CANDIDATE
    assert (raft.term, raft.vote) == (2, ONE)
    votes = take(m)
    assert sorted((v.to, v.type, v.term) for v in votes) == [(2, MT.VOTE, 2), (3, MT.VOTE, 2)]


@pytest.mark.parametrize(
    ("size", "grants", "expected"),
    [
        (1, {}, StateType.LEADER),
        (3, {2: True, 3: True}, StateType.LEADER),
        (3, {2: True}, StateType.LEADER),
        (3, {}, StateType.CANDIDATE),
        (5, {2: True, 3: True}, StateType.LEADER),
        (5, {2: True}, StateType.CANDIDATE),
        (5, {2: False, 3: False, 4: False}, StateType.FOLLOWER),
    ],
)
def test_paper_election_won_by_majority(
    size: int, grants: dict[int, bool], expected: StateType
) -> None:
    """§5.2: "A candidate wins an election if it receives votes from a majority of the
    servers in the full cluster for the same term." (It loses once a majority refused.)"""
    m = member(voters=tuple(range(1, size + 1)))
    m.node.campaign()
    for voter, granted in grants.items():
        m.node.step(
            Message(type=MT.VOTE_RESP, from_=RaftID(voter), to=ONE, term=2, reject=not granted)
        )
    assert raft_of(m).state is expected


def test_paper_vote_at_most_once_per_term() -> None:
    """§5.2: "Each server will vote for at most one candidate in a given term, on a
    first-come-first-served basis." """
    m = member()
    for candidate in (TWO, THREE, TWO):
        m.node.step(Message(type=MT.VOTE, from_=candidate, to=ONE, term=1, index=BOOT, log_term=1))
    answers = [(msg.to, msg.reject) for msg in take(m)]
    assert answers == [(TWO, False), (THREE, True), (TWO, False)]


def test_paper_candidate_falls_back_to_leader_of_same_term() -> None:
    """§5.2: "If the leader's term ... is at least as large as the candidate's current term,
    then the candidate recognizes the leader as legitimate and returns to follower state." """
    m = member()
    m.node.campaign()
    m.node.step(Message(type=MT.APP, from_=THREE, to=ONE, term=2, index=BOOT, log_term=1))
    assert raft_of(m).state is StateType.FOLLOWER
    assert raft_of(m).lead == THREE


def test_paper_election_timeouts_are_randomized() -> None:
    """§5.2: "Raft uses randomized election timeouts ... chosen randomly from a fixed
    interval (e.g., 150-300ms)": here [election_tick, 2 * election_tick) ticks."""
    seen = set()
    for seed in range(30):
        node = RawNode(Config(id=ONE), MemoryStorage(), rng=random.Random(seed))
        timeout = node.raft.randomized_election_timeout
        assert 10 <= timeout < 20
        seen.add(timeout)
    assert len(seen) > 3


def test_paper_candidate_without_majority_starts_new_election() -> None:
    """§5.2: "if many followers become candidates at the same time, votes could be split so
    that no candidate obtains a majority. When this happens, each candidate will time out and
    start a new election by incrementing its term and initiating another round of
    RequestVote RPCs." """
    m = member()
    m.node.campaign()
    m.node.step(Message(type=MT.VOTE_RESP, from_=TWO, to=ONE, term=2, reject=True))
    take(m)
    for _ in range(raft_of(m).randomized_election_timeout):
        m.node.tick()
    assert raft_of(m).state is StateType.CANDIDATE
    assert raft_of(m).term == 3
    assert sorted((v.to, v.term) for v in take(m)) == [(TWO, 3), (THREE, 3)]


# §5.3 Log replication


def test_paper_leader_appends_and_replicates_in_parallel() -> None:
    """§5.3: "The leader appends the command to its log as a new entry, then issues
    AppendEntries RPCs in parallel to each of the other servers to replicate the entry." """
    m = member()
    elect(m)
    for voter in (TWO, THREE):  # the followers acknowledge the leader's empty entry
        m.node.step(Message(type=MT.APP_RESP, from_=voter, to=ONE, term=2, index=BOOT + 1))
    take(m)
    index = m.node.propose(b"cmd")
    assert raft_of(m).log.term(index) == 2
    appends = take(m)
    assert sorted(a.to for a in appends) == [TWO, THREE]
    for a in appends:
        assert a.type is MT.APP
        assert [e.data for e in a.entries] == [b"cmd"]
        assert (a.index, a.log_term) == (index - 1, 2)


def test_paper_entry_committed_once_on_majority() -> None:
    """§5.3: "A log entry is committed once the leader that created the entry has replicated
    it on a majority of the servers ... The leader keeps track of the highest index it knows
    to be committed, and it includes that index in future AppendEntries RPCs." """
    m = member()
    elect(m)
    index = m.node.propose(b"cmd")
    assert raft_of(m).log.committed < index
    m.node.step(Message(type=MT.APP_RESP, from_=TWO, to=ONE, term=2, index=index))
    assert raft_of(m).log.committed == index
    assert all(a.commit == index for a in take(m) if a.type is MT.APP)


def test_paper_commit_includes_preceding_entries() -> None:
    """§5.3: committing an entry "also commits all preceding entries in the leader's log,
    including entries created by previous leaders." """
    old = [Entry(term=1, index=BOOT + 1, data=b"a"), Entry(term=2, index=BOOT + 2, data=b"b")]
    m = member(entries=old, term=2)
    elect(m)
    last = raft_of(m).log.last_index()  # the new leader's empty entry of term 3
    m.node.step(Message(type=MT.APP_RESP, from_=TWO, to=ONE, term=3, index=last))
    assert raft_of(m).log.committed == last
    rd = m.handle_ready()
    assert rd is not None
    assert [e.data for e in rd.committed_entries][-3:] == [b"a", b"b", b""]


def test_paper_follower_applies_what_leader_says_is_committed() -> None:
    """§5.3: "Once a follower learns that a log entry is committed, it applies the entry to its
    local state machine (in log order)." """
    m = member()
    entries = (Entry(term=1, index=BOOT + 1, data=b"a"), Entry(term=1, index=BOOT + 2, data=b"b"))
    m.node.step(
        Message(
            type=MT.APP,
            from_=TWO,
            to=ONE,
            term=1,
            index=BOOT,
            log_term=1,
            entries=entries,
            commit=BOOT + 1,
        )
    )
    m.handle_ready()
    assert m.state == [(BOOT + 1, b"a")]


def test_paper_follower_refuses_append_without_matching_previous_entry() -> None:
    """§5.3: "If the follower does not find an entry in its log with the same index and term,
    then it refuses the new entries." (The consistency check.)"""
    m = member()
    for index, log_term in ((BOOT, 2), (BOOT + 5, 1)):
        m.node.step(Message(type=MT.APP, from_=TWO, to=ONE, term=2, index=index, log_term=log_term))
        (answer,) = take(m)
        assert answer.type is MT.APP_RESP
        assert answer.reject


def test_paper_conflicting_entries_are_overwritten() -> None:
    """§5.3: "If an existing entry conflicts with a new one (same index but different terms),
    delete the existing entry and all that follow it; append any new entries not already in
    the log." """
    mine = [Entry(term=1, index=BOOT + i, data=b"old") for i in (1, 2, 3)]
    m = member(entries=mine, term=1)
    new = (Entry(term=2, index=BOOT + 2, data=b"new"),)
    m.node.step(
        Message(type=MT.APP, from_=TWO, to=ONE, term=2, index=BOOT + 1, log_term=1, entries=new)
    )
    log = raft_of(m).log
    assert [(e.term, e.data) for e in log.all_entries()[BOOT:]] == [(1, b"old"), (2, b"new")]


def test_paper_leader_forces_followers_to_duplicate_its_log() -> None:
    """§5.3 (Figure 7): "the leader handles inconsistencies by forcing the followers' logs to
    duplicate its own" -- missing entries are filled in, extra uncommitted ones replaced; the
    logs then match entry for entry (the Log Matching Property)."""
    env = quiet_env(3, jitter="(0,0,5)")
    env.run("campaign 1")
    env.run("stabilize")
    env.run("partition 1 2,3")
    for data in ("x1", "x2", "x3"):
        env.run(f"propose 1 {data}")  # only on 1, never committed
    env.run("stabilize")
    env.run("tick 3 10")
    env.run("tick-election 2")
    env.run("stabilize")
    env.run("propose 2 y")
    env.run("stabilize")
    env.run("heal")
    env.run("tick-heartbeat 2")
    env.run("stabilize")
    logs = [env.members[RaftID(i)].node.raft.log.all_entries() for i in (1, 2, 3)]
    assert logs[0] == logs[1] == logs[2]
    assert b"x1" not in [e.data for e in logs[0]]


# §5.4 Safety


@pytest.mark.parametrize(
    ("last_term", "last_index", "granted"),
    [(1, BOOT + 1, False), (2, BOOT + 1, False), (2, BOOT + 2, True), (3, 1, True)],
)
def test_paper_vote_denied_to_less_up_to_date_candidate(
    last_term: int, last_index: int, granted: bool
) -> None:
    """§5.4.1: "the voter denies its vote if its own log is more up-to-date than that of the
    candidate ... If the logs have last entries with different terms, then the log with the
    later term is more up-to-date. If the logs end with the same term, then whichever log is
    longer is more up-to-date." (Our log ends at term 2, index BOOT + 2.)"""
    mine = [Entry(term=1, index=BOOT + 1), Entry(term=2, index=BOOT + 2)]
    m = member(entries=mine, term=2)
    m.node.step(
        Message(type=MT.VOTE, from_=TWO, to=ONE, term=3, index=last_index, log_term=last_term)
    )
    (answer,) = take(m)
    assert answer.reject is not granted


def test_paper_leader_never_commits_old_term_entries_by_counting() -> None:
    """§5.4.2: "Raft never commits log entries from previous terms by counting replicas. Only
    log entries from the leader's current term are committed by counting replicas." """
    old = [Entry(term=2, index=BOOT + 1, data=b"old")]
    m = member(entries=old, term=2)
    elect(m)  # term 3; its empty entry is at BOOT + 2
    # A majority has the term-2 entry, but not the leader's term-3 entry yet.
    m.node.step(Message(type=MT.APP_RESP, from_=TWO, to=ONE, term=3, index=BOOT + 1))
    assert raft_of(m).log.committed == BOOT
    m.node.step(Message(type=MT.APP_RESP, from_=TWO, to=ONE, term=3, index=BOOT + 2))
    assert raft_of(m).log.committed == BOOT + 2


def test_paper_leader_completeness_figure8() -> None:
    """§5.4.2 (Figure 8) / §5.4.3: an entry replicated on a majority but not committed may be
    overwritten by a later leader; an entry committed in the leader's term is present in the
    logs of every later leader (Leader Completeness)."""
    env = quiet_env(3, jitter="(0,0,5)")
    env.run("campaign 1")
    env.run("stabilize")
    env.run("propose 1 committed")
    env.run("stabilize")
    env.run("partition 1 2,3")
    env.run("propose 1 lost")
    env.run("stabilize")
    env.run("tick 3 10")
    env.run("tick-election 2")
    env.run("stabilize")
    env.run("heal")
    env.run("tick-heartbeat 2")
    env.run("stabilize")
    leader = env.members[TWO].node.raft
    assert leader.state is StateType.LEADER
    datas = [e.data for e in leader.log.all_entries()]
    assert b"committed" in datas
    assert b"lost" not in [e.data for e in env.members[ONE].node.raft.log.all_entries()]


# §6 Cluster membership changes (single-server changes, dissertation §4.1)


def leader_env() -> InteractionEnv:
    env = quiet_env(3)
    env.run("campaign 1")
    env.run("stabilize")
    return env


def test_paper_membership_one_change_at_a_time() -> None:
    """§6 / dissertation §4.1: with single-server changes "a leader ... must wait for the
    previous change to complete before starting the next one": a second change proposed
    before the first is applied is rejected."""
    env = leader_env()
    env.run("add-nodes 2")
    node = env.members[ONE].node
    node.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, RaftID(4)))
    with pytest.raises(ConfChangeRejected):
        node.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, RaftID(5)))
    env.run("stabilize")
    node.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, RaftID(5)))
    env.run("stabilize")
    assert env.members[ONE].conf_state.learners == {4, 5}


def test_paper_membership_new_server_joins_as_non_voter() -> None:
    """§6 (and dissertation §4.2.1): new servers first join "as non-voting members (the
    leader replicates log entries to them, but they are not yet considered for majorities)".
    A learner receives the log but its acknowledgement does not make a majority."""
    env = leader_env()
    env.run("add-nodes 1")
    env.run("propose-conf-change 1 add-learner 4")
    env.run("stabilize")
    assert env.members[RaftID(4)].conf_state.learners == {4}
    env.run("partition 1,4 2,3")
    env.run("propose 1 x")
    env.run("stabilize")
    leader = env.members[ONE].node.raft
    assert leader.tracker.progress[RaftID(4)].match == leader.log.last_index()
    assert leader.log.committed < leader.log.last_index()


def test_paper_membership_promoted_learner_counts_for_quorum() -> None:
    """§6: once the configuration including the new server is in effect, it is part of every
    majority: with 4 voters, 3 acknowledgements are needed."""
    env = leader_env()
    env.run("add-nodes 1")
    env.run("propose-conf-change 1 add-learner 4")
    env.run("stabilize")
    env.run("propose-conf-change 1 add-node 4")
    env.run("stabilize")
    assert env.members[ONE].conf_state.voters == {1, 2, 3, 4}
    env.run("partition 1,4 2,3")
    env.run("propose 1 x")
    env.run("stabilize")
    leader = env.members[ONE].node.raft
    assert leader.log.committed < leader.log.last_index()  # 2 of 4 is no majority


def test_paper_membership_removed_leader_steps_down() -> None:
    """§6: "the leader ... steps down (returns to follower state) once it has committed the
    Cnew log entry" when it is not part of the new configuration; the rest elect a leader."""
    env = leader_env()
    env.run("propose-conf-change 1 remove-node 1")
    env.run("stabilize")
    assert state(env, 1) is StateType.FOLLOWER
    assert env.members[TWO].conf_state.voters == {2, 3}
    env.run("tick-election 2")
    env.run("stabilize 2 3")
    assert state(env, 2) is StateType.LEADER


def test_paper_membership_removed_server_does_not_disrupt() -> None:
    """§6: "servers disregard RequestVote RPCs when they believe a current leader exists":
    a removed server that times out does not depose the leader (check-quorum's lease)."""
    env = InteractionEnv()
    env.run("log-level none")
    env.run("add-nodes 3 pre-vote=false")
    env.run("campaign 1")
    env.run("stabilize")
    env.run("propose-conf-change 1 remove-node 3")
    env.run("stabilize")
    removed = env.members[THREE].node.raft
    # Member 3 never learned it was removed (the commit came after it acknowledged).
    removed.tracker.voters.add(THREE)
    removed.step(Message(type=MT.HUP))
    env.run("stabilize")
    assert state(env, 1) is StateType.LEADER
    assert env.members[ONE].node.raft.term == 2
