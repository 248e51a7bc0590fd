"""Node, task and cluster RPCs: removal rules, versioned updates, redaction, token rotation."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio

from swarmd.api import control_pb2, objects_pb2, specs_pb2, types_pb2
from tests.component.controlapi.harness import CA_CERT, CA_KEY, Control

from swarmd.manager.store import Tx  # isort: skip  (the harness may install a fake)

Code = grpc.StatusCode
Req = control_pb2
READY, DOWN = objects_pb2.NodeStatus.STATE_READY, objects_pb2.NodeStatus.STATE_DOWN
MANAGER, WORKER = types_pb2.NODE_ROLE_MANAGER, types_pb2.NODE_ROLE_WORKER


async def fails(call: object, code: grpc.StatusCode) -> str:
    with pytest.raises(aio.AioRpcError) as exc:
        await call  # type: ignore[misc]
    assert exc.value.code() == code, exc.value.details()
    return exc.value.details() or ""


def node(
    node_id: str,
    state: objects_pb2.NodeStatus.State.ValueType = READY,
    role: types_pb2.NodeRole.ValueType = WORKER,
    host: str = "",
) -> objects_pb2.Node:
    return objects_pb2.Node(
        id=node_id,
        spec=specs_pb2.NodeSpec(
            desired_role=role, membership=specs_pb2.NodeSpec.MEMBERSHIP_ACCEPTED
        ),
        role=role,
        status=objects_pb2.NodeStatus(state=state),
        description=types_pb2.NodeDescription(hostname=host or node_id),
    )


def task(task_id: str, node_id: str, state: types_pb2.TaskState.ValueType) -> objects_pb2.Task:
    return objects_pb2.Task(
        id=task_id,
        service_id="svc",
        node_id=node_id,
        slot=1,
        desired_state=types_pb2.TASK_STATE_RUNNING,
        status=types_pb2.TaskStatus(state=state),
    )


async def put(ctl: Control, *objs: objects_pb2.Node | objects_pb2.Task) -> None:
    def fn(tx: Tx) -> None:
        for o in objs:
            if isinstance(o, objects_pb2.Node):
                tx.nodes.create(o)
            else:
                tx.tasks.create(o)

    await ctl.store.update(fn)


async def test_node_remove_manager_refused(control: Control) -> None:
    await put(control, node("m1", DOWN, MANAGER))
    msg = await fails(
        control.stub.RemoveNode(Req.RemoveNodeRequest(node_id="m1", force=True)),
        Code.FAILED_PRECONDITION,
    )
    assert msg == (
        "node m1 is a cluster manager and is a member of the raft cluster. "
        "It must be demoted to worker before removal"
    )


async def test_node_remove_ready_needs_force(control: Control) -> None:
    await put(control, node("w1", READY), task("t1", "w1", types_pb2.TASK_STATE_RUNNING))
    msg = await fails(
        control.stub.RemoveNode(Req.RemoveNodeRequest(node_id="w1")), Code.FAILED_PRECONDITION
    )
    assert msg == "node w1 is not down and can't be removed; use --force"
    await control.stub.RemoveNode(Req.RemoveNodeRequest(node_id="w1", force=True))
    await fails(control.stub.GetNode(Req.GetNodeRequest(node_id="w1")), Code.NOT_FOUND)


async def test_node_remove_orphans_live_tasks(control: Control) -> None:
    await put(
        control,
        node("w1", DOWN),
        task("live", "w1", types_pb2.TASK_STATE_RUNNING),
        task("done", "w1", types_pb2.TASK_STATE_COMPLETE),
    )
    await control.stub.RemoveNode(Req.RemoveNodeRequest(node_id="w1"))
    live = (await control.stub.GetTask(Req.GetTaskRequest(task_id="live"))).task
    assert live.status.state == types_pb2.TASK_STATE_ORPHANED
    assert live.desired_state == types_pb2.TASK_STATE_REMOVE
    done = (await control.stub.GetTask(Req.GetTaskRequest(task_id="done"))).task
    assert done.status.state == types_pb2.TASK_STATE_COMPLETE
    assert done.desired_state == types_pb2.TASK_STATE_RUNNING


async def test_node_update_versioned(control: Control) -> None:
    await put(control, node("w1"))
    n = (await control.stub.GetNode(Req.GetNodeRequest(node_id="w1"))).node
    new = specs_pb2.NodeSpec()
    new.CopyFrom(n.spec)
    new.availability = specs_pb2.NodeSpec.AVAILABILITY_DRAIN
    new.annotations.labels["zone"] = "eu"
    updated = (
        await control.stub.UpdateNode(
            Req.UpdateNodeRequest(node_id="w1", node_version=n.meta.version, spec=new)
        )
    ).node
    assert updated.spec.availability == specs_pb2.NodeSpec.AVAILABILITY_DRAIN
    assert updated.spec.annotations.labels["zone"] == "eu"
    msg = await fails(
        control.stub.UpdateNode(
            Req.UpdateNodeRequest(node_id="w1", node_version=n.meta.version, spec=new)
        ),
        Code.FAILED_PRECONDITION,
    )
    assert msg.startswith("update out of sequence: node w1")
    new.availability = 9  # type: ignore[assignment]
    msg = await fails(
        control.stub.UpdateNode(
            Req.UpdateNodeRequest(node_id="w1", node_version=updated.meta.version, spec=new)
        ),
        Code.INVALID_ARGUMENT,
    )
    assert msg == "invalid availability 9: must be active, pause or drain"


async def test_node_demote_last_manager_refused(control: Control) -> None:
    await put(control, node("m1", READY, MANAGER))
    n = (await control.stub.GetNode(Req.GetNodeRequest(node_id="m1"))).node
    new = specs_pb2.NodeSpec()
    new.CopyFrom(n.spec)
    new.desired_role = WORKER
    msg = await fails(
        control.stub.UpdateNode(
            Req.UpdateNodeRequest(node_id="m1", node_version=n.meta.version, spec=new)
        ),
        Code.FAILED_PRECONDITION,
    )
    assert msg == "node m1 is the last manager of the swarm and cannot be demoted"


async def test_node_list_filters(control: Control) -> None:
    await put(control, node("m1", role=MANAGER, host="alpha"), node("w1", host="beta"))
    resp = await control.stub.ListNodes(Req.ListNodesRequest(roles=[MANAGER]))
    assert [n.id for n in resp.nodes] == ["m1"]
    resp = await control.stub.ListNodes(
        Req.ListNodesRequest(filters=Req.ListFilters(names=["BETA"]))
    )
    assert [n.id for n in resp.nodes] == ["w1"]
    resp = await control.stub.ListNodes(
        Req.ListNodesRequest(memberships=[specs_pb2.NodeSpec.MEMBERSHIP_PENDING])
    )
    assert list(resp.nodes) == []


async def test_task_list_filters_and_remove(control: Control) -> None:
    await put(
        control,
        task("a1", "n1", types_pb2.TASK_STATE_RUNNING),
        task("a2", "n2", types_pb2.TASK_STATE_RUNNING),
    )
    resp = await control.stub.ListTasks(Req.ListTasksRequest(node_ids=["n2"]))
    assert [t.id for t in resp.tasks] == ["a2"]
    resp = await control.stub.ListTasks(Req.ListTasksRequest(service_ids=["svc"], slots=[1]))
    assert [t.id for t in resp.tasks] == ["a1", "a2"]
    resp = await control.stub.ListTasks(
        Req.ListTasksRequest(desired_states=[types_pb2.TASK_STATE_SHUTDOWN])
    )
    assert list(resp.tasks) == []
    await control.stub.RemoveTask(Req.RemoveTaskRequest(task_id="a1"))
    await fails(control.stub.RemoveTask(Req.RemoveTaskRequest(task_id="a1")), Code.NOT_FOUND)


async def test_cluster_get_and_list_redact_ca_key(control: Control) -> None:
    clusters = (await control.stub.ListClusters(Req.ListClustersRequest())).clusters
    assert len(clusters) == 1
    got = (await control.stub.GetCluster(Req.GetClusterRequest(cluster_id=clusters[0].id))).cluster
    for c in (clusters[0], got):
        assert c.root_ca.ca_key == b""
        assert c.root_ca.ca_cert == CA_CERT
        assert CA_KEY not in c.SerializeToString()


async def test_cluster_update_rotates_tokens(control: Control) -> None:
    c = (await control.stub.ListClusters(Req.ListClustersRequest())).clusters[0]
    before = c.root_ca.join_tokens
    resp = await control.stub.UpdateCluster(
        Req.UpdateClusterRequest(
            cluster_id=c.id,
            cluster_version=c.meta.version,
            spec=c.spec,
            rotation=Req.KeyRotation(worker_join_token=True),
        )
    )
    after = resp.cluster
    assert after.root_ca.join_tokens.worker != before.worker
    assert after.root_ca.join_tokens.worker.startswith("SWMTKN-1-")
    assert after.root_ca.join_tokens.manager == before.manager
    assert after.root_ca.ca_key == b""
    assert control.tokens.calls == [CA_CERT]
    stored = control.store.view(lambda tx: tx.clusters.get(c.id))
    assert stored is not None
    assert stored.root_ca.ca_key == CA_KEY  # redaction is of responses only
    # Rotation alone needs no spec.
    resp = await control.stub.UpdateCluster(
        Req.UpdateClusterRequest(
            cluster_id=c.id,
            cluster_version=after.meta.version,
            rotation=Req.KeyRotation(manager_join_token=True),
        )
    )
    assert resp.cluster.root_ca.join_tokens.manager != before.manager
    assert resp.cluster.spec == c.spec


async def test_cluster_update_validation_and_version(control: Control) -> None:
    c = (await control.stub.ListClusters(Req.ListClustersRequest())).clusters[0]
    bad = specs_pb2.ClusterSpec()
    bad.CopyFrom(c.spec)
    bad.raft.election_tick = 1
    msg = await fails(
        control.stub.UpdateCluster(
            Req.UpdateClusterRequest(cluster_id=c.id, cluster_version=c.meta.version, spec=bad)
        ),
        Code.INVALID_ARGUMENT,
    )
    assert msg == "invalid raft.election_tick 1: must be greater than raft.heartbeat_tick (1)"
    good = specs_pb2.ClusterSpec()
    good.CopyFrom(c.spec)
    good.orchestration.task_history_retention_limit = 10
    updated = (
        await control.stub.UpdateCluster(
            Req.UpdateClusterRequest(cluster_id=c.id, cluster_version=c.meta.version, spec=good)
        )
    ).cluster
    assert updated.spec.orchestration.task_history_retention_limit == 10
    msg = await fails(
        control.stub.UpdateCluster(
            Req.UpdateClusterRequest(cluster_id=c.id, cluster_version=c.meta.version, spec=good)
        ),
        Code.FAILED_PRECONDITION,
    )
    assert msg.startswith("update out of sequence: cluster")


async def test_node_remove_orphans_many_tasks(control: Control) -> None:
    many = [task(f"t{i:03d}", "w1", types_pb2.TASK_STATE_RUNNING) for i in range(250)]
    await put(control, node("w1", DOWN), *many[:150])
    await put(control, *many[150:])
    await control.stub.RemoveNode(Req.RemoveNodeRequest(node_id="w1"))
    left = control.store.view(lambda tx: tx.tasks.find_by_node("w1"))
    assert len(left) == 250
    assert {t.status.state for t in left} == {types_pb2.TASK_STATE_ORPHANED}
