"""Backoff grows with jitter and resets; Remotes rotates and persists the manager list."""

from __future__ import annotations

import random

from swarmd.agent.remotes import Remotes
from swarmd.rpc.backoff import Backoff


def test_backoff_doubles_up_to_the_maximum_with_jitter() -> None:
    b = Backoff(0.1, 0.8, rng=random.Random(1))
    delays = [b.next() for _ in range(6)]
    bounds = [0.1, 0.2, 0.4, 0.8, 0.8, 0.8]
    for d, hi in zip(delays, bounds, strict=True):
        assert hi / 2 <= d <= hi
    b.reset()
    assert b.next() <= 0.1


def test_remotes_round_robin_and_persist(tmp_path) -> None:
    path = tmp_path / "managers.json"
    r = Remotes(path, ["a:1"])
    assert r.pick() == "a:1"
    r.update(["a:1", "b:2"])
    assert [r.pick(), r.pick()] == ["b:2", "a:1"]
    again = Remotes(path)
    assert again.addrs() == ["a:1", "b:2"]


def test_remotes_ignore_a_corrupt_file(tmp_path) -> None:
    path = tmp_path / "managers.json"
    path.write_text("{not json")
    assert Remotes(path, ["x:1"]).addrs() == ["x:1"]
