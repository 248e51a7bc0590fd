"""Seeded simulations of 3- and 5-member clusters under faults (see sim.py).

SIM_SEEDS sets how many seeds run (default 300, about 20 s), SIM_FIRST_SEED where they start
(default 0); `make sim SEEDS=10000` runs many more. A failing seed prints a one-line command
that replays it with a trace.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from swarmd.raft import Message, MessageType
from swarmd.raft.raft import Raft
from swarmd.raft.roles import leader
from swarmd.raft.types import NONE
from tests.raft.sim import Simulation, SimulationFailure, size_for

SEEDS = int(os.environ.get("SIM_SEEDS", "300"))
FIRST_SEED = int(os.environ.get("SIM_FIRST_SEED", "0"))


def run_seed(seed: int) -> Simulation:
    sim = Simulation(seed, size_for(seed))
    try:
        sim.run()
    except SimulationFailure as err:
        pytest.fail(
            f"seed {seed} (size {size_for(seed)}): {err}\n"
            f"replay: .venv/bin/python -m tests.raft.sim --seed {seed} --trace",
            pytrace=False,
        )
    return sim


@pytest.mark.parametrize("seed", range(FIRST_SEED, FIRST_SEED + SEEDS), ids=lambda s: f"seed{s}")
def test_sim_seed_is_safe_and_converges(seed: int) -> None:
    run_seed(seed)


def test_sim_exercises_the_faults_it_claims() -> None:
    """The chaos is real: over a few seeds, every kind of fault and feature shows up."""
    totals: Counter[str] = Counter()
    for seed in range(12):
        sim = Simulation(seed, size_for(seed))
        sim.run()
        totals.update(sim.stats)
        totals["terms"] += len(sim.checker.leaders)
        totals["acked"] += sum(p.acked for p in sim.proposals.values())
        totals["conf_changes"] += sim.conf_changes
        totals["removed"] += len(sim.shut_down)
    for key in ("crashes", "partitions", "snapshots", "dropped", "duplicated", "removed", "reads"):
        assert totals[key] > 0, key
    assert totals["terms"] > 24  # leadership changed hands repeatedly
    assert totals["acked"] > 100
    assert totals["conf_changes"] > 12


def test_sim_is_deterministic() -> None:
    first, second = Simulation(7, 5), Simulation(7, 5)
    first.run()
    second.run()
    logs = [
        [m.node.raft.log.all_entries() for _, m in sorted(s.members.items())]
        for s in (first, second)
    ]
    assert logs[0] == logs[1]
    assert first.stats == second.stats


def test_sim_catches_a_member_that_votes_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker can fail: a core that forgets its vote elects two leaders in one term."""
    original = Raft._handle_vote_request

    def forgetful(raft: Raft, msg: Message) -> None:
        raft.vote = NONE
        raft.lead = NONE
        original(raft, msg)

    monkeypatch.setattr(Raft, "_handle_vote_request", forgetful)
    failures: list[str] = []
    for seed in range(6):
        try:
            Simulation(seed, size_for(seed)).run()
        except SimulationFailure as err:
            failures.append(str(err))
    assert failures
    assert all("election safety" in f or "leader completeness" in f for f in failures)


def test_sim_catches_reads_served_without_a_heartbeat_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The read check can fail: a leader answering reads at once (no quorum confirmation)
    serves stale reads once it has been deposed without knowing it."""

    def eager(raft: Raft, msg: Message) -> None:
        leader._answer_read(raft, msg.from_, raft.log.committed, msg.context)

    monkeypatch.setitem(leader.HANDLERS, MessageType.READ_INDEX, eager)
    failures: list[str] = []
    # A stale read needs a deposed leader that still gets reads: rare, so try until one shows.
    for seed in range(100):
        try:
            Simulation(seed, size_for(seed)).run()
        except SimulationFailure as err:
            failures.append(str(err))
            break
    assert failures
    assert all("linearizability" in f for f in failures)
