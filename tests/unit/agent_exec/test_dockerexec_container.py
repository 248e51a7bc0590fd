"""container.py: task -> containers.create() kwargs, and inspect output -> runtime status."""

from __future__ import annotations

import pytest

from swarmd.agent.exec import InvalidTask
from swarmd.api import objects_pb2, specs_pb2
from swarmd.api import types_pb2 as t
from swarmd.dockerexec import container as c

NODE = "node-abc"


def make_task(slot=2, **container):
    container.setdefault("image", "busybox:1")
    return objects_pb2.Task(
        id="task123",
        service_id="svc-id",
        slot=slot,
        node_id=NODE,
        service_annotations=t.Annotations(name="web"),
        spec=specs_pb2.TaskSpec(container=specs_pb2.ContainerSpec(**container)),
    )


def test_minimal_task_gets_name_labels_and_no_restart():
    kw = c.create_kwargs(make_task(), NODE)
    assert kw == {
        "image": "busybox:1",
        "name": "web.2.task123",
        "labels": {
            "swarmd.node.id": NODE,
            "swarmd.service.id": "svc-id",
            "swarmd.service.name": "web",
            "swarmd.task.id": "task123",
            "swarmd.task.slot": "2",
        },
        "restart_policy": {"Name": "no"},
    }


def test_global_task_is_named_by_node():
    task = make_task(slot=0)
    assert c.container_name(task, NODE) == "web.node-abc.task123"
    task.node_id = ""
    assert c.container_name(task, "other-node") == "web.other-node.task123"


def test_user_labels_are_kept_but_cannot_override_ours():
    task = make_task(labels={"team": "a", "swarmd.node.id": "forged"})
    labels = c.create_kwargs(task, NODE)["labels"]
    assert labels["team"] == "a"
    assert labels["swarmd.node.id"] == NODE


def test_command_overrides_entrypoint_and_args_are_the_command():
    kw = c.create_kwargs(make_task(command=["sh", "-c"], args=["exit 3"]), NODE)
    assert kw["entrypoint"] == ["sh", "-c"]
    assert kw["command"] == ["exit 3"]
    kw = c.create_kwargs(make_task(args=["--verbose"]), NODE)
    assert "entrypoint" not in kw
    assert kw["command"] == ["--verbose"]


def test_process_settings():
    kw = c.create_kwargs(
        make_task(
            env=["A=1", "B=two"],
            hostname="h1",
            dir="/srv",
            user="1000:1000",
            groups=["audio"],
            stop_signal="SIGINT",
            tty=True,
            open_stdin=True,
            read_only=True,
            hosts=["10.0.0.1 db db.local"],
        ),
        NODE,
    )
    assert kw["environment"] == ["A=1", "B=two"]
    assert (kw["hostname"], kw["working_dir"], kw["user"]) == ("h1", "/srv", "1000:1000")
    assert kw["group_add"] == ["audio"]
    assert kw["stop_signal"] == "SIGINT"
    assert kw["tty"] is kw["stdin_open"] is kw["read_only"] is True
    assert kw["extra_hosts"] == {"db": "10.0.0.1", "db.local": "10.0.0.1"}


def test_bad_hosts_entry_is_an_invalid_task():
    with pytest.raises(InvalidTask, match="hosts entry 'justone' is not"):
        c.create_kwargs(make_task(hosts=["justone"]), NODE)


def test_mounts_bind_volume_tmpfs():
    kw = c.create_kwargs(
        make_task(
            mounts=[
                t.Mount(type=t.Mount.MOUNT_TYPE_BIND, source="/data", target="/d", readonly=True),
                t.Mount(
                    type=t.Mount.MOUNT_TYPE_VOLUME,
                    source="vol1",
                    target="/v",
                    volume_labels={"k": "v"},
                    volume_driver="local",
                ),
                t.Mount(
                    type=t.Mount.MOUNT_TYPE_TMPFS,
                    target="/scratch",
                    tmpfs_size_bytes=1 << 20,
                    tmpfs_mode=0o1777,
                ),
            ]
        ),
        NODE,
    )
    bind, vol, tmp = kw["mounts"]
    assert (bind["Type"], bind["Source"], bind["Target"], bind["ReadOnly"]) == (
        "bind",
        "/data",
        "/d",
        True,
    )
    assert (vol["Type"], vol["Source"], vol["Target"]) == ("volume", "vol1", "/v")
    assert vol["VolumeOptions"] == {"Labels": {"k": "v"}, "DriverConfig": {"Name": "local"}}
    assert tmp["Type"] == "tmpfs"
    assert tmp["TmpfsOptions"] == {"SizeBytes": 1 << 20, "Mode": 0o1777}


def test_bind_mount_without_source_is_an_invalid_task():
    bad = t.Mount(type=t.Mount.MOUNT_TYPE_BIND, target="/d")
    with pytest.raises(InvalidTask, match="task task123: bind mount '/d' has no source"):
        c.create_kwargs(make_task(mounts=[bad]), NODE)


def test_resource_limits_and_init():
    task = make_task(init=specs_pb2.ContainerSpec.INIT_MODE_ENABLED)
    task.spec.resources.limits.nano_cpus = 500_000_000
    task.spec.resources.limits.memory_bytes = 64 << 20
    task.spec.resources.reservations.memory_bytes = 1 << 30  # scheduling only: not a limit
    kw = c.create_kwargs(task, NODE)
    assert (kw["nano_cpus"], kw["mem_limit"], kw["init"]) == (500_000_000, 64 << 20, True)
    kw = c.create_kwargs(make_task(init=specs_pb2.ContainerSpec.INIT_MODE_DISABLED), NODE)
    assert kw["init"] is False
    assert "nano_cpus" not in kw
    assert "mem_limit" not in kw


def test_only_host_mode_ports_are_published():
    task = make_task()
    port = t.PortConfig
    task.endpoint.spec.ports.extend(
        [
            port(target_port=80, published_port=8080, publish_mode=port.PUBLISH_MODE_HOST),
            port(target_port=80, published_port=8081, publish_mode=port.PUBLISH_MODE_HOST),
            port(target_port=53, protocol=port.PROTOCOL_UDP, publish_mode=port.PUBLISH_MODE_HOST),
            port(target_port=443, published_port=443, publish_mode=port.PUBLISH_MODE_INGRESS),
        ]
    )
    assert c.create_kwargs(task, NODE)["ports"] == {"80/tcp": [8080, 8081], "53/udp": None}


def test_healthcheck_durations_are_nanoseconds():
    hc = t.HealthConfig(test=["CMD-SHELL", "test -f /ok"], retries=3)
    hc.interval.FromMilliseconds(300)
    hc.timeout.FromSeconds(1)
    kw = c.create_kwargs(make_task(healthcheck=hc), NODE)
    assert kw["healthcheck"] == {
        "test": ["CMD-SHELL", "test -f /ok"],
        "interval": 300_000_000,
        "timeout": 1_000_000_000,
        "retries": 3,
    }
    assert "healthcheck" not in c.create_kwargs(make_task(), NODE)


def test_stop_grace_defaults_to_10s_and_rounds_up():
    assert c.stop_grace_seconds(specs_pb2.ContainerSpec()) == 10
    spec = specs_pb2.ContainerSpec()
    spec.stop_grace_period.FromMilliseconds(1500)
    assert c.stop_grace_seconds(spec) == 2
    spec.stop_grace_period.FromSeconds(0)
    assert c.stop_grace_seconds(spec) == 0


def test_log_driver_from_task_or_spec():
    task = make_task()
    task.spec.log_driver.name = "json-file"
    task.spec.log_driver.options["max-size"] = "1m"
    log = c.create_kwargs(task, NODE)["log_config"]
    assert (log["Type"], log["Config"]) == ("json-file", {"max-size": "1m"})
    task.log_driver.name = "none"
    assert c.create_kwargs(task, NODE)["log_config"]["Type"] == "none"


def test_task_without_image_is_invalid():
    task = make_task()
    task.spec.container.image = ""
    with pytest.raises(InvalidTask, match="task task123: the task has no container image"):
        c.create_kwargs(task, NODE)


INSPECT_EXITED = {
    "Id": "cid1",
    "State": {
        "Running": False,
        "Pid": 0,
        "ExitCode": 137,
        "OOMKilled": True,
        "StartedAt": "2026-12-01T08:00:00.1Z",
    },
    "Config": {"Healthcheck": {"Test": ["NONE"]}},
}
INSPECT_RUNNING = {
    "Id": "cid2",
    "State": {
        "Running": True,
        "Pid": 4242,
        "ExitCode": 0,
        "StartedAt": "2026-12-01T08:00:00.1Z",
        "Health": {"Status": "healthy"},
    },
    "Config": {"Healthcheck": {"Test": ["CMD", "true"]}},
    "NetworkSettings": {
        "Ports": {
            "80/tcp": [
                {"HostIp": "0.0.0.0", "HostPort": "49153"},
                {"HostIp": "::", "HostPort": "49153"},
            ],
            "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "5353"}],
            "9000/tcp": None,
        }
    },
}
INSPECT_CREATED = {"Id": "cid3", "State": {"Running": False, "StartedAt": "0001-01-01T00:00:00Z"}}


def test_inspect_state_helpers():
    assert c.container_status(INSPECT_EXITED) == t.ContainerStatus(
        container_id="cid1", exit_code=137
    )
    assert c.container_status(INSPECT_RUNNING).pid == 4242
    assert c.has_started(INSPECT_EXITED)
    assert not c.is_running(INSPECT_EXITED)
    assert c.has_started(INSPECT_RUNNING)
    assert c.is_running(INSPECT_RUNNING)
    assert not c.has_started(INSPECT_CREATED)
    assert c.oom_killed(INSPECT_EXITED)
    assert c.health_state(INSPECT_RUNNING) == t.HEALTH_STATE_HEALTHY
    assert c.health_state(INSPECT_EXITED) == t.HEALTH_STATE_NONE
    assert c.has_healthcheck(INSPECT_RUNNING)
    assert not c.has_healthcheck(INSPECT_EXITED)
    assert not c.has_healthcheck(INSPECT_CREATED)


def test_published_ports_from_inspect_once_per_host_port():
    task = make_task()
    task.endpoint.spec.ports.add(name="http", target_port=80)
    ports = c.published_ports(INSPECT_RUNNING, task)
    assert [(p.name, p.protocol, p.target_port, p.published_port) for p in ports] == [
        ("", t.PortConfig.PROTOCOL_UDP, 53, 5353),
        ("http", t.PortConfig.PROTOCOL_TCP, 80, 49153),
    ]
    assert all(p.publish_mode == t.PortConfig.PUBLISH_MODE_HOST for p in ports)
    assert c.published_ports(INSPECT_CREATED, task) == ()
