"""Table, list and JSON rendering, relative times, and the docker-style JSON of messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2

from swarmctl.commands.cluster import cluster_document
from swarmctl.commands.node import node_row
from swarmctl.commands.service import service_document
from swarmctl.commands.task import task_rows
from swarmctl.output import Column, ago, human_duration, render_list, render_table
from swarmctl.protojson import enum_name, pascal_case, to_dict
from swarmd.api import objects_pb2, specs_pb2, types_pb2

COLS = (Column("ID", "ID"), Column("NAME", "Name"), Column("DESIRED STATE", "Desired"))


def test_table_aligns_columns_three_spaces_past_the_widest_cell() -> None:
    out = render_table(
        COLS,
        [
            {"ID": "abc", "Name": "web", "Desired": "RUNNING"},
            {"ID": "a", "Name": "a-much-longer-name", "Desired": ""},
        ],
    )
    assert out == (
        "ID    NAME                 DESIRED STATE\n"
        "abc   web                  RUNNING\n"
        "a     a-much-longer-name\n"
    )


def test_empty_table_is_just_the_header() -> None:
    assert render_table(COLS, []) == "ID   NAME   DESIRED STATE\n"


def test_list_renders_ids_or_json_rows() -> None:
    rows = [{"ID": "x1", "Name": "one", "Desired": "RUNNING"}]
    assert render_list(COLS, rows, "table", quiet=True) == "x1\n"
    assert json.loads(render_list(COLS, rows, "json", quiet=False)) == rows
    assert render_list(COLS, [], "json", quiet=False) == "[]\n"


def test_human_duration_like_docker() -> None:
    assert human_duration(0.3) == "Less than a second"
    assert human_duration(1) == "1 second"
    assert human_duration(45) == "45 seconds"
    assert human_duration(61) == "About a minute"
    assert human_duration(600) == "10 minutes"
    assert human_duration(3600) == "About an hour"
    assert human_duration(5 * 3600) == "5 hours"
    assert human_duration(3 * 86400) == "3 days"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ts = timestamp_pb2.Timestamp()
    assert ago(ts, now) == ""
    ts.FromDatetime(now - timedelta(seconds=5))
    assert ago(ts, now) == "5 seconds ago"


def test_pascal_case_with_docker_acronyms() -> None:
    assert pascal_case("task_history_retention_limit") == "TaskHistoryRetentionLimit"
    assert pascal_case("id") == "ID"
    assert pascal_case("node_id") == "NodeID"
    assert pascal_case("ca_cert_hash") == "CACertHash"
    assert pascal_case("nano_cpus") == "NanoCPUs"
    assert pascal_case("tls_info") == "TLSInfo"


def test_enum_names_lose_their_type_prefix() -> None:
    assert enum_name(types_pb2.TaskState.DESCRIPTOR, types_pb2.TASK_STATE_RUNNING) == "running"
    restart = types_pb2.RestartPolicy.RestartCondition.DESCRIPTOR
    assert enum_name(restart, types_pb2.RestartPolicy.RESTART_CONDITION_ON_FAILURE) == "on-failure"
    state = objects_pb2.NodeStatus.State.DESCRIPTOR
    assert enum_name(state, objects_pb2.NodeStatus.STATE_READY) == "ready"
    assert enum_name(state, 99) == "99"


def test_to_dict_keys_values_and_presence() -> None:
    spec = specs_pb2.ServiceSpec()
    spec.annotations.name = "web"
    spec.annotations.labels["com.example_key"] = "v"
    spec.replicated.replicas = 3
    c = spec.task.container
    c.env.extend(["A=1"])
    c.stop_grace_period.FromSeconds(90)
    c.mounts.add(target="/x", source="/y")
    spec.update.max_failure_ratio = 0.1
    svc = objects_pb2.Service(id="s1", spec=spec)
    svc.meta.version.index = 2**40
    svc.meta.created_at.FromSeconds(0)
    svc.meta.created_at.nanos = 5
    doc = to_dict(svc)
    assert doc["ID"] == "s1"
    assert doc["Meta"]["Version"]["Index"] == 2**40  # a number, not protobuf's JSON string
    assert doc["Meta"]["CreatedAt"] == "1970-01-01T00:00:00.000000005Z"
    assert doc["Spec"]["Annotations"] == {"Name": "web", "Labels": {"com.example_key": "v"}}
    assert doc["Spec"]["Replicated"] == {"Replicas": 3}
    assert "Global" not in doc["Spec"]
    assert doc["Spec"]["Task"]["Container"]["StopGracePeriod"] == "1m30s"
    # A zero enum is shown (bind), a zero scalar is not (Readonly false).
    assert doc["Spec"]["Task"]["Container"]["Mounts"] == [
        {"Type": "bind", "Source": "/y", "Target": "/x"}
    ]
    assert doc["Spec"]["Update"]["MaxFailureRatio"] == 0.1
    json.dumps(doc)  # serialisable as is


def test_bytes_are_text_when_utf8_else_base64() -> None:
    cfg = objects_pb2.Config(spec=specs_pb2.ConfigSpec(data=b"k=v\n"))
    assert to_dict(cfg)["Spec"]["Data"] == "k=v\n"
    cfg.spec.data = b"\xff\x00"
    assert to_dict(cfg)["Spec"]["Data"] == "/wA="


def test_node_row_shows_status_role_and_leader() -> None:
    node = objects_pb2.Node(id="n1", role=types_pb2.NODE_ROLE_MANAGER)
    node.description.hostname = "h1"
    node.status.state = objects_pb2.NodeStatus.STATE_READY
    node.spec.availability = specs_pb2.NodeSpec.AVAILABILITY_DRAIN
    node.manager_status.leader = True
    assert node_row(node) == {
        "ID": "n1",
        "Hostname": "h1",
        "Status": "READY",
        "Availability": "DRAIN",
        "Role": "manager",
        "ManagerStatus": "LEADER",
    }
    node.manager_status.leader = False
    node.manager_status.reachability = types_pb2.ManagerStatus.REACHABILITY_UNREACHABLE
    assert node_row(node)["ManagerStatus"] == "UNREACHABLE"
    worker = objects_pb2.Node(id="n2")
    assert node_row(worker)["ManagerStatus"] == ""
    assert node_row(worker)["Role"] == "worker"
    assert node_row(worker)["Status"] == "UNKNOWN"


def test_task_rows_name_node_states_and_error() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    t = objects_pb2.Task(
        id="t1", service_id="s1", slot=2, node_id="n1", desired_state=types_pb2.TASK_STATE_RUNNING
    )
    t.spec.container.image = "busybox"
    t.status.state = types_pb2.TASK_STATE_REJECTED
    t.status.err = "no such image"
    t.status.timestamp.FromDatetime(now - timedelta(minutes=3))
    g = objects_pb2.Task(id="t2", service_id="s2", node_id="n9")
    [row_g, row_t] = task_rows([t, g], {"s1": "web", "s2": "agent"}, {"n1": "host-1"}, now)
    assert row_t == {
        "ID": "t1",
        "Name": "web.2",
        "Image": "busybox",
        "Node": "host-1",
        "DesiredState": "RUNNING",
        "CurrentState": "REJECTED 3 minutes ago",
        "Health": "",
        "Error": "no such image",
    }
    assert row_g["Name"] == "agent.n9"
    assert row_g["Node"] == "n9"
    assert row_g["CurrentState"] == "NEW"
    g.status.health = types_pb2.HEALTH_STATE_UNHEALTHY
    [row_g] = task_rows([g], {"s2": "agent"}, {}, now)
    assert row_g["Health"] == "unhealthy"


def test_cluster_document_puts_join_tokens_on_top() -> None:
    cluster = objects_pb2.Cluster(id="c1")
    cluster.root_ca.join_tokens.worker = "SWMTKN-1-w"
    cluster.root_ca.join_tokens.manager = "SWMTKN-1-m"
    doc = cluster_document(cluster)
    assert doc["JoinTokens"] == {"Worker": "SWMTKN-1-w", "Manager": "SWMTKN-1-m"}
    assert doc["RootCA"] == {"JoinTokens": doc["JoinTokens"]}


def test_service_document_always_shows_the_replica_count() -> None:
    svc = objects_pb2.Service(id="s1")
    svc.spec.replicated.replicas = 0
    svc.previous_spec.replicated.replicas = 2
    svc.history.add(revision=1).spec.replicated.SetInParent()
    doc = service_document(svc)
    assert doc["Spec"]["Replicated"] == {"Replicas": 0}
    assert doc["PreviousSpec"]["Replicated"] == {"Replicas": 2}
    assert doc["History"][0]["Spec"]["Replicated"] == {"Replicas": 0}
    glob = objects_pb2.Service(id="s2")
    getattr(glob.spec, "global").SetInParent()
    assert service_document(glob)["Spec"] == {"Global": {}}
