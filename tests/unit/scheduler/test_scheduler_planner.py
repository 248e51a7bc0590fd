"""The planner: spreading, placement preferences, batching, reasons, and its invariants."""

from __future__ import annotations

from collections import Counter
from typing import Any

import hypothesis.strategies as st
from hypothesis import given, settings
from schedbuild import DOWN, GIB, MIB, infos, node, running, task

from swarmd.api import objects_pb2
from swarmd.manager.scheduler import Assignment, Plan, Unplaced, plan


def per_node(p: Plan) -> dict[str, int]:
    return dict(sorted(Counter(a.node_id for a in p.assignments).items()))


def placed(p: Plan) -> dict[str, str]:
    return {a.task_id: a.node_id for a in p.assignments}


def tasks(n: int, service: str = "svc", **kw: Any) -> list[objects_pb2.Task]:
    return [task(f"{service}-{i:03d}", service, slot=i + 1, **kw) for i in range(n)]


def test_planner_spreads_six_replicas_two_per_node() -> None:
    p = plan(infos([node("a"), node("b"), node("c")]), tasks(6))
    assert per_node(p) == {"a": 2, "b": 2, "c": 2}
    assert p.unplaced == ()


def test_planner_order_and_tie_break_by_node_id() -> None:
    p = plan(infos([node("c"), node("a"), node("b")]), tasks(4))
    assert [a.node_id for a in p.assignments] == ["a", "b", "c", "a"]
    assert [a.task_id for a in p.assignments] == ["svc-000", "svc-001", "svc-002", "svc-003"]


def test_planner_spreads_by_service_count_then_total() -> None:
    existing = [
        running("w1", "web", "a"),
        running("w2", "web", "a"),
        running("d1", "db", "b"),
        running("d2", "db", "b"),
        running("d3", "db", "b"),
    ]
    # web: a has 2, b and c none; b has more tasks in all, so c comes first.
    p = plan(infos([node("a"), node("b"), node("c")], existing), tasks(4, "web"))
    assert [a.node_id for a in p.assignments] == ["c", "b", "c", "b"]
    assert per_node(p) == {"b": 2, "c": 2}


def test_planner_never_uses_nodes_that_fail_filters() -> None:
    nodes = [node("a", state=DOWN), node("b"), node("c", labels={"zone": "eu"})]
    p = plan(infos(nodes), tasks(3, constraints=["node.labels.zone==eu"]))
    assert per_node(p) == {"c": 3}


def test_planner_leftover_tasks_get_the_reason_seen_after_filling_nodes() -> None:
    nodes = [node("a", cpus=2), node("b", cpus=1), node("down", state=DOWN)]
    p = plan(infos(nodes), tasks(5, cpus=1))
    assert per_node(p) == {"a": 2, "b": 1}
    reason = "no suitable node (node not ready on 1 node; insufficient cpu on 2 nodes)"
    assert p.unplaced == (Unplaced("svc-003", reason), Unplaced("svc-004", reason))


def test_planner_no_node_fits_the_whole_group() -> None:
    nodes = [node("a", memory=1 * GIB), node("b", memory=1 * GIB), node("c", labels={"z": "1"})]
    p = plan(infos(nodes), tasks(2, memory=2 * GIB, constraints=["node.labels.zone==eu"]))
    assert p.assignments == ()
    assert {u.reason for u in p.unplaced} == {
        "no suitable node (insufficient memory on 2 nodes; "
        "constraint node.labels.zone==eu unmet on 1 node)"
    }


def test_planner_no_nodes() -> None:
    p = plan({}, tasks(1))
    assert p.unplaced == (Unplaced("svc-000", "no suitable node (no nodes in the cluster)"),)


def test_planner_host_ports_one_per_node() -> None:
    p = plan(infos([node("a"), node("b")]), tasks(3, host_ports=[8080]))
    assert per_node(p) == {"a": 1, "b": 1}
    assert p.unplaced[0].reason == "no suitable node (host port 8080/tcp in use on 2 nodes)"


def test_planner_max_replicas_per_node() -> None:
    existing = [running("old", "svc", "a")]
    p = plan(infos([node("a"), node("b")], existing), tasks(4, max_replicas=2))
    assert per_node(p) == {"a": 1, "b": 2}
    assert p.unplaced[0].reason == "no suitable node (max replicas per node (2) reached on 2 nodes)"


def test_planner_spread_preference_over_zones() -> None:
    nodes = [
        node("a1", labels={"zone": "a"}),
        node("a2", labels={"zone": "a"}),
        node("a3", labels={"zone": "a"}),
        node("b1", labels={"zone": "b"}),
    ]
    p = plan(infos(nodes), tasks(4, spread=["node.labels.zone"]))
    # Half the tasks per zone, whatever the number of nodes in it.
    assert per_node(p) == {"a1": 1, "a2": 1, "b1": 2}


def test_planner_spread_preference_counts_existing_tasks_per_zone() -> None:
    nodes = [node("a1", labels={"zone": "a"}), node("b1", labels={"zone": "b"})]
    existing = [running("o1", "svc", "a1"), running("o2", "svc", "a1")]
    p = plan(infos(nodes, existing), tasks(4, spread=["node.labels.zone"]))
    assert per_node(p) == {"a1": 1, "b1": 3}


def test_planner_nodes_without_the_label_form_their_own_group() -> None:
    nodes = [
        node("eu1", labels={"zone": "eu"}),
        node("eu2", labels={"zone": "eu"}),
        node("us1", labels={"zone": "us"}),
        node("x1"),
        node("x2"),
    ]
    p = plan(infos(nodes), tasks(6, spread=["node.labels.zone"]))
    zones = Counter(
        {"eu1": "eu", "eu2": "eu", "us1": "us"}.get(n, "none") for n in placed(p).values()
    )
    assert zones == {"eu": 2, "us": 2, "none": 2}


def test_planner_hierarchical_preferences() -> None:
    nodes = [
        node("e-r1-a", labels={"dc": "east", "rack": "r1"}),
        node("e-r1-b", labels={"dc": "east", "rack": "r1"}),
        node("e-r2-a", labels={"dc": "east", "rack": "r2"}),
        node("w-r1-a", labels={"dc": "west", "rack": "r1"}),
    ]
    p = plan(infos(nodes), tasks(8, spread=["node.labels.dc", "node.labels.rack"]))
    # 4 per datacenter; in east, 2 per rack; r1 of east splits its 2 over its nodes.
    assert per_node(p) == {"e-r1-a": 1, "e-r1-b": 1, "e-r2-a": 2, "w-r1-a": 4}


def test_planner_engine_label_preference() -> None:
    nodes = [
        node("s1", engine_labels={"disk": "ssd"}),
        node("s2", engine_labels={"disk": "ssd"}),
        node("h1", engine_labels={"disk": "hdd"}),
    ]
    p = plan(infos(nodes), tasks(4, spread=["engine.labels.disk"]))
    assert per_node(p) == {"h1": 2, "s1": 1, "s2": 1}


def test_planner_full_zone_spills_to_the_others() -> None:
    nodes = [
        node("a1", labels={"zone": "a"}, cpus=1),
        node("b1", labels={"zone": "b"}, cpus=8),
    ]
    p = plan(infos(nodes), tasks(5, spread=["node.labels.zone"], cpus=1))
    assert per_node(p) == {"a1": 1, "b1": 4}
    assert p.unplaced == ()


def test_planner_groups_by_service_and_spec_version() -> None:
    nodes = [node("a"), node("b")]
    batch = [
        *tasks(2, "web"),
        task("web-new-1", "web", spec_version=2, memory=64 * MIB),
        task("web-new-2", "web", spec_version=2, memory=64 * MIB),
        *tasks(2, "db"),
    ]
    p = plan(infos(nodes), batch)
    assert len(p.assignments) == 6
    # Every group spreads over both nodes, and each service ends up balanced.
    by_service = Counter((t.split("-")[0], n) for t, n in placed(p).items())
    assert by_service == {("web", "a"): 2, ("web", "b"): 2, ("db", "a"): 1, ("db", "b"): 1}


def test_planner_batches_identical_tasks_on_one_evaluation() -> None:
    # 100 tasks of one group over 10 nodes: spread exactly, in a single decision.
    p = plan(infos([node(f"n{i:02d}") for i in range(10)]), tasks(100))
    assert set(per_node(p).values()) == {10}


def test_planner_standalone_tasks_are_their_own_groups() -> None:
    lone = [task("t1", ""), task("t2", "")]
    p = plan(infos([node("a"), node("b")]), lone)
    # They share no group, but still spread: service "" counts both.
    assert placed(p) == {"t1": "a", "t2": "b"}


def test_planner_preassigned_tasks_are_validated_on_their_node() -> None:
    nodes = [node("a", cpus=1), node("b", state=DOWN), node("c", labels={"zone": "eu"})]
    batch = [
        task("g-a", "global", node_id="a", cpus=1),
        task("g-b", "global", node_id="b"),
        task("g-c", "global", node_id="c", constraints=["node.labels.zone==us"]),
        task("g-z", "global", node_id="zz"),
        # The replicated task sees a's CPU taken by the global task validated first.
        task("r", "rep", cpus=1),
    ]
    p = plan(infos(nodes), batch)
    assert placed(p) == {"g-a": "a", "r": "c"}
    assert {u.task_id: u.reason for u in p.unplaced} == {
        "g-b": "no suitable node (node not ready on 1 node)",
        "g-c": "no suitable node (constraint node.labels.zone==us unmet on 1 node)",
        "g-z": "no suitable node (assigned node zz not found)",
    }


def test_planner_is_deterministic_and_leaves_its_inputs_alone() -> None:
    nodes = infos([node(n) for n in "dcba"], [running("x", "svc", "b")])
    batch = tasks(7, cpus=0.5, spread=["node.labels.zone"])
    first = plan(nodes, batch)
    assert plan(nodes, list(reversed(batch))) == first
    assert nodes["b"].total_tasks == 1
    assert all(nodes[n].total_tasks == 0 for n in "acd")
    assert all(not t.node_id for t in batch)


def test_planner_plan_is_a_value() -> None:
    p = plan(infos([node("a")]), [task("t")])
    assert p == Plan((Assignment("t", "a"),), ())


# --- properties -----------------------------------------------------------------------------

node_specs = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=8),  # CPUs
        st.integers(min_value=0, max_value=16),  # GiB
        st.sampled_from(["eu", "us", None]),
    ),
    min_size=1,
    max_size=6,
)
task_specs = st.lists(
    st.tuples(
        st.sampled_from(["web", "db", "cache"]),
        st.sampled_from([0, 0.5, 1, 2, 3]),  # CPUs reserved
        st.sampled_from([0, 256 * MIB, 1 * GIB, 4 * GIB]),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(node_specs, task_specs, st.booleans())
def test_planner_never_overcommits_reservations(nspecs, tspecs, spread) -> None:
    nodes = [
        node(f"n{i}", cpus=c, memory=g * GIB, labels={"zone": z} if z else {})
        for i, (c, g, z) in enumerate(nspecs)
    ]
    batch = [
        task(
            f"t{i:03d}",
            svc,
            cpus=cpu,
            memory=mem,
            spread=["node.labels.zone"] if spread else [],
        )
        for i, (svc, cpu, mem) in enumerate(tspecs)
    ]
    p = plan(infos(nodes), batch)
    by_id = {t.id: t for t in batch}
    cpu_used: Counter[str] = Counter()
    mem_used: Counter[str] = Counter()
    for a in p.assignments:
        r = by_id[a.task_id].spec.resources.reservations
        cpu_used[a.node_id] += r.nano_cpus
        mem_used[a.node_id] += r.memory_bytes
    for n in nodes:
        assert cpu_used[n.id] <= n.description.resources.nano_cpus
        assert mem_used[n.id] <= n.description.resources.memory_bytes
    # Every task is decided exactly once.
    decided = [a.task_id for a in p.assignments] + [u.task_id for u in p.unplaced]
    assert sorted(decided) == sorted(by_id)
    # A task left out really fit nowhere: no node has room for it after the plan.
    for u in p.unplaced:
        r = by_id[u.task_id].spec.resources.reservations
        for n in nodes:
            res = n.description.resources
            fits_cpu = cpu_used[n.id] + r.nano_cpus <= res.nano_cpus
            fits_mem = mem_used[n.id] + r.memory_bytes <= res.memory_bytes
            assert not (fits_cpu and fits_mem), (u, n.id)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=0, max_value=60),
    st.lists(st.integers(min_value=0, max_value=3), max_size=8),
)
def test_planner_spread_over_equal_nodes_differs_by_at_most_one(nodes_n, tasks_n, others) -> None:
    nodes = [node(f"n{i}") for i in range(nodes_n)]
    # Tasks of other services on some nodes must not unbalance this service.
    other = [
        running(f"o{i}-{k}", "other", f"n{i}")
        for i, count in enumerate(others[:nodes_n])
        for k in range(count)
    ]
    p = plan(infos(nodes, other), tasks(tasks_n, "web"))
    counts = [per_node(p).get(n.id, 0) for n in nodes]
    assert sum(counts) == tasks_n
    assert max(counts) - min(counts) <= 1


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.integers(min_value=1, max_value=30), st.integers(min_value=1, max_value=4))
def test_planner_spread_preference_balances_zones(tasks_n, extra_nodes_in_a) -> None:
    nodes = [node(f"a{i}", labels={"zone": "a"}) for i in range(extra_nodes_in_a)]
    nodes.append(node("b0", labels={"zone": "b"}))
    p = plan(infos(nodes), tasks(tasks_n, spread=["node.labels.zone"]))
    zone_a = sum(1 for n in placed(p).values() if n.startswith("a"))
    assert abs(zone_a - (tasks_n - zone_a)) <= 1


def _failed_on(info, service: str, count: int, at: float) -> None:
    for i in range(count):
        info.record_failure(task(f"{service}-failed-{i}", service, node_id=info.id), at)


def test_planner_tries_a_node_where_the_service_keeps_failing_last() -> None:
    nodes = infos([node("a"), node("b"), node("c")])
    now = 1_700_000_000.0
    _failed_on(nodes["a"], "svc", 5, now - 60)  # five failures in the last five minutes
    _failed_on(nodes["b"], "svc", 4, now - 60)  # four are not enough
    _failed_on(nodes["c"], "other", 9, now - 60)  # another service's failures do not count
    p = plan(nodes, tasks(4), now=now)
    assert [a.node_id for a in p.assignments] == ["b", "c", "b", "c"]
    # Still used when nothing else fits.
    p = plan(nodes, tasks(4, constraints=["node.id==a"]), now=now)
    assert per_node(p) == {"a": 4}
    # Old failures are forgotten; without a time, history is ignored.
    assert per_node(plan(nodes, tasks(3), now=now + 301)) == {"a": 1, "b": 1, "c": 1}
    assert per_node(plan(nodes, tasks(3))) == {"a": 1, "b": 1, "c": 1}
