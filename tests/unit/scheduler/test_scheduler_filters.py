"""Each scheduler filter: when it applies, which nodes pass, and how it explains failures."""

from __future__ import annotations

import pytest
from schedbuild import DOWN, DRAIN, GIB, MIB, PAUSE, UDP, node, running, task

from swarmd.api import objects_pb2
from swarmd.manager.scheduler import (
    ConstraintFilter,
    Filter,
    HostPortFilter,
    MaxReplicasFilter,
    NodeInfo,
    PlatformFilter,
    ReadyFilter,
    ResourceFilter,
)


def failures(f: Filter, t: objects_pb2.Task, nodes: list[NodeInfo]) -> tuple[bool, list[str], str]:
    """(applies, ids of failing nodes, explanation) as the pipeline would see them."""
    applies = f.set_task(t)
    failed = [n.id for n in nodes if not f.check(n)]
    return applies, failed, f.explain(len(failed))


def info(n: objects_pb2.Node, *tasks: objects_pb2.Task) -> NodeInfo:
    return NodeInfo(n, tasks)


def test_filter_ready_rejects_down_paused_and_drained_nodes() -> None:
    nodes = [
        info(node("ok")),
        info(node("down1", state=DOWN)),
        info(node("down2", state=objects_pb2.NodeStatus.STATE_DISCONNECTED)),
        info(node("paused", availability=PAUSE)),
        info(node("drained", availability=DRAIN)),
        # Down and drained: "not ready" is what the user needs to fix first.
        info(node("both", state=DOWN, availability=DRAIN)),
    ]
    applies, failed, text = failures(ReadyFilter(), task("t"), nodes)
    assert applies
    assert failed == ["down1", "down2", "paused", "drained", "both"]
    assert text == "node not ready on 3 nodes; node drained on 1 node; node paused on 1 node"


def test_filter_ready_explains_one_node() -> None:
    applies, failed, text = failures(ReadyFilter(), task("t"), [info(node("n", state=DOWN))])
    assert (applies, failed, text) == (True, ["n"], "node not ready on 1 node")


def test_filter_explanations_forget_earlier_tasks() -> None:
    f = ReadyFilter()
    failures(f, task("a"), [info(node("x", state=DOWN)), info(node("y", availability=PAUSE))])
    _, failed, text = failures(f, task("b"), [info(node("z", availability=DRAIN))])
    assert (failed, text) == (["z"], "node drained on 1 node")


def test_filter_rechecking_a_node_does_not_count_it_twice() -> None:
    f = ReadyFilter()
    f.set_task(task("t"))
    down = info(node("d", state=DOWN))
    for _ in range(3):
        assert not f.check(down)
    assert f.explain(1) == "node not ready on 1 node"


@pytest.mark.parametrize(
    ("cpus", "memory", "expected"),
    [
        (1, 1 * GIB, "pass"),
        (3, 1 * GIB, "insufficient cpu"),
        (1, 6 * GIB, "insufficient memory"),
        (3, 6 * GIB, "insufficient cpu and memory"),
        (2, 4 * GIB, "pass"),  # exactly what is left
    ],
)
def test_filter_resources_subtract_reservations_of_tasks_on_the_node(
    cpus: float, memory: int, expected: str
) -> None:
    # 4 CPUs / 8 GiB, of which 2 CPUs / 4 GiB are reserved by a running task.
    busy = info(node("n1"), running("r", "other", "n1", cpus=2, memory=4 * GIB))
    applies, failed, text = failures(ResourceFilter(), task("t", cpus=cpus, memory=memory), [busy])
    assert applies
    if expected == "pass":
        assert failed == []
    else:
        assert (failed, text) == (["n1"], f"{expected} on 1 node")


def test_filter_resources_apply_only_with_reservations() -> None:
    f = ResourceFilter()
    assert not f.set_task(task("t"))
    assert f.set_task(task("t", memory=4 * MIB))
    assert f.set_task(task("t", cpus=0.5))


def test_filter_resources_node_without_reported_resources_has_none() -> None:
    bare = info(node("bare", cpus=0, memory=0))
    _, failed, text = failures(ResourceFilter(), task("t", memory=64 * MIB), [bare])
    assert (failed, text) == (["bare"], "insufficient memory on 1 node")


def test_filter_resources_explain_counts_per_cause() -> None:
    nodes = [info(node(f"small{i}", memory=1 * GIB)) for i in range(2)]
    nodes.append(info(node("slow", cpus=0.5)))
    nodes.append(info(node("big")))
    _, failed, text = failures(ResourceFilter(), task("t", cpus=1, memory=2 * GIB), nodes)
    assert failed == ["small0", "small1", "slow"]
    assert text == "insufficient memory on 2 nodes; insufficient cpu on 1 node"


def test_filter_constraint_names_the_unmet_constraint() -> None:
    nodes = [
        info(node("eu", labels={"zone": "eu"})),
        info(node("us", labels={"zone": "us"})),
        info(node("none")),
        info(node("eu-mgr", labels={"zone": "eu"}, manager=True)),
    ]
    t = task("t", constraints=["node.labels.zone==eu", "node.role==worker"])
    applies, failed, text = failures(ConstraintFilter(), t, nodes)
    assert applies
    assert failed == ["us", "none", "eu-mgr"]
    assert text == (
        "constraint node.labels.zone==eu unmet on 2 nodes; "
        "constraint node.role==worker unmet on 1 node"
    )


def test_filter_constraint_applies_only_with_constraints() -> None:
    assert not ConstraintFilter().set_task(task("t"))


def test_filter_constraint_invalid_one_places_nowhere() -> None:
    t = task("t", constraints=["zone=eu"])
    applies, failed, text = failures(ConstraintFilter(), t, [info(node("a")), info(node("b"))])
    assert applies
    assert failed == ["a", "b"]
    assert text.startswith("invalid constraint 'zone=eu': must be <key>==<value>")
    assert text.endswith(" on 2 nodes")


def test_filter_platform() -> None:
    nodes = [
        info(node("amd", os="linux", arch="x86_64")),
        info(node("arm", os="linux", arch="aarch64")),
        info(node("win", os="windows", arch="x86_64")),
    ]
    t = task("t", platforms=[("linux", "amd64")])
    applies, failed, text = failures(PlatformFilter(), t, nodes)
    assert applies
    assert failed == ["arm", "win"]
    assert text == (
        "unsupported platform linux/aarch64 on 1 node; "
        "unsupported platform windows/x86_64 on 1 node"
    )
    # An empty field is a wildcard; any listed platform will do.
    any_linux = task("t", platforms=[("linux", "")])
    assert failures(PlatformFilter(), any_linux, nodes)[1] == ["win"]
    two = task("t", platforms=[("linux", "arm64"), ("windows", "amd64")])
    assert failures(PlatformFilter(), two, nodes)[1] == ["amd"]
    assert not PlatformFilter().set_task(task("t"))


def test_filter_host_port_in_use() -> None:
    nodes = [
        info(node("free")),
        info(node("busy1"), running("r1", "other", "busy1", host_ports=[8080])),
        info(node("busy2"), running("r2", "other", "busy2", host_ports=[8080, 9090])),
        info(node("busy3"), running("r3", "other", "busy3", host_ports=[9090])),
    ]
    applies, failed, text = failures(HostPortFilter(), task("t", host_ports=[8080]), nodes)
    assert applies
    assert (failed, text) == (["busy1", "busy2"], "host port 8080/tcp in use on 2 nodes")
    _, failed, text = failures(HostPortFilter(), task("t", host_ports=[8080, 9090]), nodes)
    assert failed == ["busy1", "busy2", "busy3"]
    assert text == "host port 8080/tcp in use on 2 nodes; host port 9090/tcp in use on 1 node"


def test_filter_host_port_ignores_ingress_dynamic_and_other_protocols() -> None:
    t = task("t", host_ports=[8080])
    other = running("r", "other", "n")
    other.endpoint.spec.ports.add(protocol=UDP, published_port=8080, publish_mode=1)
    other.endpoint.spec.ports.add(published_port=8080, publish_mode=0)  # ingress
    other.endpoint.spec.ports.add(published_port=0, target_port=80, publish_mode=1)
    assert failures(HostPortFilter(), t, [info(node("n"), other)])[1] == []
    assert not HostPortFilter().set_task(task("t"))
    ingress_only = task("t")
    ingress_only.endpoint.spec.ports.add(published_port=80, publish_mode=0)
    assert not HostPortFilter().set_task(ingress_only)


def test_filter_host_port_reads_allocated_ports_too() -> None:
    allocated = running("r", "other", "n")
    allocated.endpoint.ports.add(published_port=443, target_port=443, publish_mode=1)
    _, failed, text = failures(
        HostPortFilter(), task("t", host_ports=[443]), [info(node("n"), allocated)]
    )
    assert (failed, text) == (["n"], "host port 443/tcp in use on 1 node")


def test_filter_max_replicas_per_node_counts_this_service_only() -> None:
    nodes = [
        info(node("two"), running("a", "web", "two"), running("b", "web", "two")),
        info(node("one"), running("c", "web", "one"), running("d", "db", "one")),
        info(node("others"), running("e", "db", "others"), running("f", "db", "others")),
    ]
    applies, failed, text = failures(MaxReplicasFilter(), task("t", "web", max_replicas=2), nodes)
    assert applies
    assert (failed, text) == (["two"], "max replicas per node (2) reached on 1 node")
    assert not MaxReplicasFilter().set_task(task("t", "web"))
