"""The filter pipeline: first failing filter per node, counts, and the reason a user reads."""

from __future__ import annotations

from schedbuild import DOWN, GIB, node, running, task

from swarmd.manager.scheduler import NodeInfo, Pipeline, ReadyFilter, ResourceFilter


def test_pipeline_reason_joins_filters_in_order() -> None:
    nodes = [
        NodeInfo(node("a", memory=1 * GIB, labels={"zone": "eu"})),
        NodeInfo(node("b", memory=1 * GIB, labels={"zone": "us"})),
        NodeInfo(node("c", labels={"zone": "us"})),
        NodeInfo(node("d", labels={"zone": "eu"})),
    ]
    t = task("t", memory=2 * GIB, constraints=["node.labels.zone==eu"])
    ev = Pipeline().evaluate(t, nodes)
    assert [n.id for n in ev.passing] == ["d"]
    # b fails both memory and the constraint: it counts once, against the first filter.
    assert ev.reason == (
        "no suitable node (insufficient memory on 2 nodes; "
        "constraint node.labels.zone==eu unmet on 1 node)"
    )
    assert ev.failures == (
        ("insufficient memory on 2 nodes", 2),
        ("constraint node.labels.zone==eu unmet on 1 node", 1),
    )


def test_pipeline_reason_with_every_filter() -> None:
    nodes = [
        NodeInfo(node("down", state=DOWN)),
        NodeInfo(node("small", cpus=0.5)),
        NodeInfo(node("worker")),
        NodeInfo(node("arm", manager=True, arch="arm64")),
        NodeInfo(node("port", manager=True), [running("p", "other", "port", host_ports=[8080])]),
        NodeInfo(node("full", manager=True), [running("f", "svc", "full")]),
    ]
    t = task(
        "t",
        cpus=1,
        constraints=["node.role==manager"],
        platforms=[("linux", "amd64")],
        host_ports=[8080],
        max_replicas=1,
    )
    assert Pipeline().evaluate(t, nodes).reason == (
        "no suitable node (node not ready on 1 node; insufficient cpu on 1 node; "
        "constraint node.role==manager unmet on 1 node; "
        "unsupported platform linux/arm64 on 1 node; host port 8080/tcp in use on 1 node; "
        "max replicas per node (1) reached on 1 node)"
    )


def test_pipeline_without_nodes() -> None:
    ev = Pipeline().evaluate(task("t"), [])
    assert ev.passing == ()
    assert ev.reason == "no suitable node (no nodes in the cluster)"


def test_pipeline_skips_filters_that_do_not_apply() -> None:
    # No reservations: a node with no resources at all is fine.
    ev = Pipeline().evaluate(task("t"), [NodeInfo(node("bare", cpus=0, memory=0))])
    assert [n.id for n in ev.passing] == ["bare"]
    assert ev.failures == ()


def test_pipeline_check_and_first_failure_use_the_bound_task() -> None:
    p = Pipeline([ReadyFilter(), ResourceFilter()])
    small = NodeInfo(node("small", memory=1 * GIB))
    p.set_task(task("big", memory=2 * GIB))
    assert not p.check(small)
    assert isinstance(p.first_failure(small), ResourceFilter)
    p.set_task(task("tiny", memory=1 * GIB))
    assert p.check(small)
    assert p.first_failure(small) is None


def test_pipeline_evaluations_do_not_leak_between_tasks() -> None:
    p = Pipeline()
    nodes = [NodeInfo(node("a", state=DOWN)), NodeInfo(node("b", memory=1 * GIB))]
    p.evaluate(task("x", memory=2 * GIB), nodes)
    again = p.evaluate(task("y", memory=2 * GIB), nodes[1:])
    assert again.reason == "no suitable node (insufficient memory on 1 node)"
