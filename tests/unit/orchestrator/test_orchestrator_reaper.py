"""Task reaper: retention per slot and per node, REMOVE cleanup, orphans, batching."""

from __future__ import annotations

from orchbuild import T0, Harness, S, restart_policy, service, task

from swarmd.api import objects_pb2
from swarmd.manager.orchestrator.reaper import BATCH_INTERVAL, TaskReaperCore, reap_slot

FAILED = S.TASK_STATE_FAILED
SHUTDOWN = S.TASK_STATE_SHUTDOWN
REMOVE = S.TASK_STATE_REMOVE
RUNNING = S.TASK_STATE_RUNNING


def dead(tid, svc, slot=1, node_id="n1", at=T0):
    return task(tid, svc, slot, node_id, state=FAILED, desired=SHUTDOWN, at=at)


def cluster(limit: int) -> objects_pb2.Cluster:
    c = objects_pb2.Cluster(id="c1")
    c.spec.annotations.name = "default"
    c.spec.orchestration.task_history_retention_limit = limit
    return c


def test_reaper_pure_step_deletes_oldest_dead_tasks_beyond_limit():
    svc = service()
    history = [dead(f"d{i}", svc, at=T0 + i) for i in range(6)] + [task("live", svc, 1, "n1")]
    assert [t.id for t in reap_slot(history, 3)] == ["d0", "d1", "d2", "d3"]
    assert reap_slot(history, -1) == []
    assert reap_slot(history, 10) == []


def ids(h: Harness, svc_id: str = "svc1") -> set[str]:
    return {t.id for t in h.tasks(svc_id)}


def test_reaper_keeps_retention_limit_per_slot_after_batch_interval():
    h = Harness(TaskReaperCore())
    svc = service()
    h.put(cluster(2), svc)
    h.start()
    h.put(*(dead(f"a{i}", svc, 1, at=T0 + i) for i in range(4)), task("a-live", svc, 1, "n1"))
    h.put(*(dead(f"b{i}", svc, 2, at=T0 + i) for i in range(2)))
    assert h.settle() == []  # batched: nothing before the interval
    h.now += BATCH_INTERVAL
    h.settle()
    assert ids(h) == {"a3", "a-live", "b0", "b1"}


def test_reaper_default_limit_and_negative_keeps_all():
    h = Harness(TaskReaperCore())
    svc = service()
    h.put(svc)  # no cluster object: the default of 5
    h.put(*(dead(f"d{i}", svc, at=T0 + i) for i in range(8)))
    h.start()
    assert ids(h) == {f"d{i}" for i in range(3, 8)}

    h = Harness(TaskReaperCore())
    h.put(cluster(-1), svc)
    h.put(*(dead(f"d{i}", svc, at=T0 + i) for i in range(8)))
    h.start()
    assert len(ids(h)) == 8


def test_reaper_keeps_enough_history_for_max_attempts():
    h = Harness(TaskReaperCore())
    svc = service(restart=restart_policy(max_attempts=4))
    h.put(cluster(1), svc)
    h.put(*(dead(f"d{i}", svc, at=T0 + i) for i in range(8)))
    h.start()
    assert len(ids(h)) == 5


def test_reaper_global_history_counted_per_node():
    h = Harness(TaskReaperCore())
    svc = service(replicas=None)
    h.put(cluster(1), svc)
    h.put(*(dead(f"n1-{i}", svc, 0, "n1", at=T0 + i) for i in range(3)))
    h.put(*(dead(f"n2-{i}", svc, 0, "n2", at=T0 + i) for i in range(2)))
    h.start()
    assert ids(h) == {"n1-2", "n2-1"}


def test_reaper_deletes_remove_desired_tasks_once_terminal_or_unassigned():
    h = Harness(TaskReaperCore())
    svc = service()
    h.put(svc)
    h.put(
        task("running", svc, 1, "n1", desired=REMOVE),
        task("pending", svc, 2, "", state=S.TASK_STATE_PENDING, desired=REMOVE),
        task("done", svc, 3, "n1", state=SHUTDOWN, desired=REMOVE),
    )
    h.start()
    assert ids(h) == {"running"}
    h.set_status("running", SHUTDOWN)
    h.now += BATCH_INTERVAL
    h.settle()
    assert ids(h) == set()


def test_reaper_deletes_serviceless_orphaned_tasks():
    h = Harness(TaskReaperCore())
    orphan = objects_pb2.Task(id="o1", node_id="n1")
    orphan.status.state = S.TASK_STATE_ORPHANED
    attached = objects_pb2.Task(id="o2", node_id="n1")
    attached.status.state = RUNNING
    h.put(orphan, attached)
    h.start()
    assert h.store.view(lambda tx: [t.id for t in tx.tasks.list()]) == ["o2"]
