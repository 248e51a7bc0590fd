"""One test per spec validation rule, asserting the exact message (pure, no store)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
from google.protobuf import duration_pb2

from swarmd import errors
from swarmd.api import specs_pb2, types_pb2
from swarmd.manager.controlapi import defaults
from swarmd.manager.controlapi.validation import (
    parse_constraint,
    reference_error,
    validate_cluster_spec,
    validate_config_spec,
    validate_network_spec,
    validate_node_spec,
    validate_secret_spec,
    validate_service_spec,
)

Spec = specs_pb2.ServiceSpec
MiB = 1024 * 1024
DNS_RULE = (
    "must be 1-63 characters of letters, digits, '-' and '_', "
    "starting and ending with a letter or digit"
)


def base() -> Spec:
    return Spec(
        annotations=types_pb2.Annotations(name="web"),
        task=specs_pb2.TaskSpec(container=specs_pb2.ContainerSpec(image="nginx:1.25")),
        replicated=specs_pb2.ReplicatedService(replicas=1),
    )


def dur(seconds: int = 0, nanos: int = 0) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def message_of(fn: Callable[[], object]) -> str:
    with pytest.raises(errors.InvalidArgument) as exc:
        fn()
    return exc.value.message


def service_error(mutate: Callable[[Spec], object]) -> str:
    spec = base()
    mutate(spec)
    return message_of(lambda: validate_service_spec(spec))


def test_validation_base_spec_is_valid() -> None:
    validate_service_spec(base())


def test_validation_mode_may_be_unset() -> None:
    spec = base()
    spec.ClearField("replicated")
    validate_service_spec(spec)


def test_validation_full_valid_spec() -> None:
    spec = base()
    c = spec.task.container
    c.env.extend(["A=1", "B=", "PATH=/usr/bin:/bin"])
    c.mounts.add(type=types_pb2.Mount.MOUNT_TYPE_BIND, source="/srv", target="/data")
    c.mounts.add(type=types_pb2.Mount.MOUNT_TYPE_VOLUME, source="vol_1", target="/vol")
    c.mounts.add(type=types_pb2.Mount.MOUNT_TYPE_TMPFS, target="/tmp", tmpfs_size_bytes=MiB)
    c.secrets.add(secret_name="db", file=types_pb2.FileTarget(name="db", mode=0o400))
    c.configs.add(config_id="x" * 25, file=types_pb2.FileTarget(name="/etc/app.conf"))
    c.healthcheck.test.extend(["CMD", "true"])
    c.healthcheck.interval.CopyFrom(dur(1))
    spec.task.resources.limits.memory_bytes = 64 * MiB
    spec.task.resources.reservations.memory_bytes = 32 * MiB
    spec.task.placement.constraints.extend(
        ["node.role==manager", "node.labels.zone != eu", "engine.labels.ssd==true"]
    )
    spec.task.placement.preferences.add(
        spread=types_pb2.SpreadOver(spread_descriptor="node.labels.az")
    )
    spec.endpoint.ports.add(target_port=80, published_port=8080)
    spec.endpoint.ports.add(
        target_port=80, published_port=8080, protocol=types_pb2.PortConfig.PROTOCOL_UDP
    )
    spec.update.CopyFrom(defaults.default_update_config())
    validate_service_spec(spec)


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["web", "Web", "web-1", "my_stack_web", "a", "a" * 63, "9lives"])
def test_validation_service_name_accepted(name: str) -> None:
    spec = base()
    spec.annotations.name = name
    validate_service_spec(spec)


@pytest.mark.parametrize(
    "name", ["", "-web", "web-", "_web", "web!", "wéb", "a" * 64, "a.b", "a b"]
)
def test_validation_service_name_rejected(name: str) -> None:
    msg = service_error(lambda s: setattr(s.annotations, "name", name))
    shown = name if len(name) <= 64 else name[:64] + "..."
    assert msg == f'invalid service name "{shown}": {DNS_RULE}'


def test_validation_service_name_pathological_input_is_fast() -> None:
    # A backtracking regex would take ages on this; the rule must answer at once.
    msg = service_error(lambda s: setattr(s.annotations, "name", "a" * 62 + "!"))
    assert msg.startswith('invalid service name "')


# --- image --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        "nginx",
        "nginx:1.25",
        "library/nginx:latest",
        "docker.io/library/nginx",
        "localhost:5000/app:v1",
        "registry.example.com/team/app@sha256:" + "a" * 64,
        "app:v1@sha256:" + "b" * 64,
        "[::1]:5000/app",
        "my-registry.io/a__b/c.d/e-f",
    ],
)
def test_validation_image_accepted(image: str) -> None:
    assert reference_error(image) is None


@pytest.mark.parametrize(
    ("image", "rule"),
    [
        ("", "an image is required"),
        ("nginx latest", "must not contain whitespace"),
        ("Nginx", "repository name must be lowercase"),
        ("nginx:", "tag must be 1-128 characters"),
        ("nginx:-bad", "tag must be 1-128 characters"),
        ("nginx@sha256:abc", "digest must be algorithm:hex"),
        ("a@b@c", "at most one '@digest' is allowed"),
        ("-nginx", "repository name components are lowercase letters"),
        ("0" * 64, "a 64-character hexadecimal string is an image id"),
        ("bad_host.-x/app", "invalid registry host"),
        (":tag", "repository name is empty"),
        ("a/" * 130 + "a", "repository name must not be longer than 255"),
    ],
)
def test_validation_image_rejected(image: str, rule: str) -> None:
    msg = service_error(lambda s: setattr(s.task.container, "image", image))
    assert msg.startswith("invalid task.container.image ")
    assert rule in msg


def test_validation_image_message_shape() -> None:
    msg = service_error(lambda s: setattr(s.task.container, "image", "Nginx"))
    assert msg == 'invalid task.container.image "Nginx": repository name must be lowercase'


def test_validation_image_pathological_input_is_fast() -> None:
    assert reference_error("a" * 200 + "A") is not None
    assert reference_error("a-" * 100 + "!") is not None


# --- mode ---------------------------------------------------------------------------------------


def test_validation_replicas_upper_bound() -> None:
    assert defaults.MAX_REPLICAS == 100_000
    spec = base()
    spec.replicated.replicas = 100_000
    validate_service_spec(spec)
    msg = service_error(lambda s: setattr(s.replicated, "replicas", 2**64 - 1))
    assert msg == f"invalid mode.replicated.replicas {2**64 - 1}: must be at most 100000"


# --- resources ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "limits.memory_bytes",
            -1,
            "invalid task.resources.limits.memory_bytes -1: must be 0 or at least 4MiB",
        ),
        (
            "limits.memory_bytes",
            4 * MiB - 1,
            f"invalid task.resources.limits.memory_bytes {4 * MiB - 1}: must be 0 or at least 4MiB",
        ),
        (
            "reservations.memory_bytes",
            1,
            "invalid task.resources.reservations.memory_bytes 1: must be 0 or at least 4MiB",
        ),
        (
            "limits.nano_cpus",
            -5,
            "invalid task.resources.limits.nano_cpus -5: must be 0 or at least 1000000",
        ),
        (
            "reservations.nano_cpus",
            999_999,
            "invalid task.resources.reservations.nano_cpus 999999: must be 0 or at least 1000000",
        ),
    ],
)
def test_validation_resources_floor(field: str, value: int, message: str) -> None:
    kind, attr = field.split(".")

    def mutate(s: Spec) -> None:
        setattr(getattr(s.task.resources, kind), attr, value)

    assert service_error(mutate) == message


def test_validation_reservation_must_not_exceed_limit() -> None:
    def mutate(s: Spec) -> None:
        s.task.resources.limits.memory_bytes = 8 * MiB
        s.task.resources.reservations.memory_bytes = 16 * MiB

    assert service_error(mutate) == (
        f"invalid task.resources.reservations.memory_bytes {16 * MiB}: "
        f"must not exceed the limit {8 * MiB}"
    )


def test_validation_cpu_reservation_must_not_exceed_limit() -> None:
    def mutate(s: Spec) -> None:
        s.task.resources.limits.nano_cpus = 1_000_000_000
        s.task.resources.reservations.nano_cpus = 2_000_000_000

    assert service_error(mutate) == (
        "invalid task.resources.reservations.nano_cpus 2000000000: "
        "must not exceed the limit 1000000000"
    )


# --- placement ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "rule"),
    [
        ("node.role", "must be <key>==<value> or <key>!=<value>"),
        ("node.colour==red", "key must be node.id, node.hostname, node.role"),
        ("node.labels.==x", "key must be node.id"),
        ("node.role==boss", "node.role is manager or worker"),
        ("node.hostname==", "value must be non-empty"),
        ("node.hostname==a=b", "value must be non-empty"),
    ],
)
def test_validation_constraint_rejected(expr: str, rule: str) -> None:
    msg = service_error(lambda s: s.task.placement.constraints.append(expr))
    assert msg.startswith(f'invalid task.placement.constraints[0] "{expr}": ')
    assert rule in msg


def test_validation_constraint_parse() -> None:
    c = parse_constraint(" Node.Role == Manager ")
    assert (c.key, c.equal, c.value) == ("node.role", True, "Manager")
    c = parse_constraint("node.labels.Zone!=eu-1")
    assert (c.key, c.equal, c.value) == ("node.labels.Zone", False, "eu-1")


def test_validation_spread_preference() -> None:
    def mutate(s: Spec) -> None:
        s.task.placement.preferences.add(spread=types_pb2.SpreadOver(spread_descriptor="zone"))

    msg = service_error(mutate)
    assert msg.startswith(
        'invalid task.placement.preferences[0].spread.spread_descriptor "zone": spread key must be'
    )


def test_validation_max_replicas_per_node() -> None:
    msg = service_error(lambda s: setattr(s.task.placement, "max_replicas", 10**6))
    assert msg == "invalid task.placement.max_replicas 1000000: must be at most 100000"


# --- ports --------------------------------------------------------------------------------------


def add_port(**kw: int) -> Callable[[Spec], object]:
    return lambda s: s.endpoint.ports.add(**kw)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            add_port(target_port=0),
            "invalid endpoint.ports[0].target_port 0: must be between 1 and 65535",
        ),
        (
            add_port(target_port=70000),
            "invalid endpoint.ports[0].target_port 70000: must be between 1 and 65535",
        ),
        (
            add_port(target_port=80, published_port=65536),
            "invalid endpoint.ports[0].published_port 65536: must be between 0 and 65535",
        ),
        (
            add_port(target_port=80, protocol=7),
            (
                "invalid endpoint.ports[0].protocol 7: "
                "must be one of PROTOCOL_TCP, PROTOCOL_UDP, PROTOCOL_SCTP"
            ),
        ),
        (
            add_port(target_port=80, publish_mode=9),
            (
                "invalid endpoint.ports[0].publish_mode 9: "
                "must be one of PUBLISH_MODE_INGRESS, PUBLISH_MODE_HOST"
            ),
        ),
    ],
)
def test_validation_port_ranges(mutate: Callable[[Spec], object], message: str) -> None:
    assert service_error(mutate) == message


def test_validation_duplicate_published_port() -> None:
    def mutate(s: Spec) -> None:
        s.endpoint.ports.add(target_port=80, published_port=8080)
        s.endpoint.ports.add(target_port=81, published_port=0)
        s.endpoint.ports.add(target_port=81, published_port=8080)

    assert service_error(mutate) == (
        "invalid endpoint.ports[2].published_port 8080: "
        "tcp port already published by endpoint.ports[0]"
    )


def test_validation_dnsrr_with_ingress_port() -> None:
    def mutate(s: Spec) -> None:
        s.endpoint.mode = specs_pb2.EndpointSpec.RESOLUTION_MODE_DNSRR
        s.endpoint.ports.add(target_port=80, published_port=8080)

    assert service_error(mutate) == (
        'invalid endpoint.ports[0].publish_mode "ingress": '
        "ports published through ingress cannot be used with dnsrr resolution"
    )


# --- mounts -------------------------------------------------------------------------------------

BIND, VOLUME, TMPFS = (
    types_pb2.Mount.MOUNT_TYPE_BIND,
    types_pb2.Mount.MOUNT_TYPE_VOLUME,
    types_pb2.Mount.MOUNT_TYPE_TMPFS,
)


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        (
            types_pb2.Mount(type=BIND, source="/a", target="data"),
            'invalid task.container.mounts[0].target "data": must be an absolute path',
        ),
        (
            types_pb2.Mount(type=BIND, source="/a", target="/"),
            "invalid task.container.mounts[0].target \"/\": cannot mount over '/'",
        ),
        (
            types_pb2.Mount(type=BIND, source="rel", target="/d"),
            (
                'invalid task.container.mounts[0].source "rel": '
                "a bind mount needs an absolute host path"
            ),
        ),
        (
            types_pb2.Mount(type=TMPFS, source="/x", target="/d"),
            'invalid task.container.mounts[0].source "/x": a tmpfs mount has no source',
        ),
        (
            types_pb2.Mount(type=VOLUME, source="a", target="/d"),
            'invalid task.container.mounts[0].source "a": a volume name is 2 or more',
        ),
        (
            types_pb2.Mount(type=VOLUME, source="-vol", target="/d"),
            'invalid task.container.mounts[0].source "-vol": a volume name',
        ),
        (
            types_pb2.Mount(type=BIND, source="/a", target="/d", tmpfs_size_bytes=1),
            (
                "invalid task.container.mounts[0].type 0: "
                "tmpfs options are only allowed on tmpfs mounts"
            ),
        ),
        (
            types_pb2.Mount(type=TMPFS, target="/d", tmpfs_size_bytes=-1),
            "invalid task.container.mounts[0].tmpfs_size_bytes -1: must not be negative",
        ),
        (
            types_pb2.Mount(type=TMPFS, target="/d", tmpfs_mode=0o17777),
            'invalid task.container.mounts[0].tmpfs_mode "0o17777": must be at most 0o7777',
        ),
        (
            types_pb2.Mount(type=5, target="/d"),  # type: ignore[arg-type]
            "invalid task.container.mounts[0].type 5: must be one of MOUNT_TYPE_BIND",
        ),
    ],
)
def test_validation_mount_rules(mount: types_pb2.Mount, message: str) -> None:
    assert service_error(lambda s: s.task.container.mounts.append(mount)).startswith(message)


def test_validation_duplicate_mount_target() -> None:
    def mutate(s: Spec) -> None:
        s.task.container.mounts.add(type=TMPFS, target="/d")
        s.task.container.mounts.add(type=BIND, source="/x", target="/d")

    assert service_error(mutate) == (
        'invalid task.container.mounts.target "/d": duplicate mount target'
    )


# --- env ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["NOVALUE", "=value", "A B=c", ""])
def test_validation_env_shape(entry: str) -> None:
    msg = service_error(lambda s: s.task.container.env.extend(["OK=1", entry]))
    assert msg == (
        f'invalid task.container.env[1] "{entry}": '
        "must be KEY=VALUE with a non-empty KEY without spaces"
    )


# --- durations: restart, update, stop grace, healthcheck ----------------------------------------


@pytest.mark.parametrize(
    ("field", "mutate"),
    [
        ("task.restart.delay", lambda s: s.task.restart.delay.CopyFrom(dur(-1))),
        ("task.restart.window", lambda s: s.task.restart.window.CopyFrom(dur(-1))),
        ("update.delay", lambda s: s.update.delay.CopyFrom(dur(-1))),
        ("update.monitor", lambda s: s.update.monitor.CopyFrom(dur(-1))),
        ("rollback.delay", lambda s: s.rollback.delay.CopyFrom(dur(-1))),
        (
            "task.container.stop_grace_period",
            lambda s: s.task.container.stop_grace_period.CopyFrom(dur(-1)),
        ),
    ],
)
def test_validation_negative_durations(field: str, mutate: Callable[[Spec], object]) -> None:
    assert service_error(mutate) == f"invalid {field} -1s: must not be negative"


def test_validation_malformed_duration() -> None:
    msg = service_error(lambda s: s.task.restart.delay.CopyFrom(dur(1, -5)))
    assert msg == "invalid task.restart.delay (seconds=1, nanos=-5): malformed duration"
    msg = service_error(lambda s: s.task.restart.delay.CopyFrom(dur(2**62)))
    assert msg == f"invalid task.restart.delay {2**62}s: out of range for a duration"


def test_validation_restart_condition_enum() -> None:
    msg = service_error(lambda s: setattr(s.task.restart, "condition", 42))
    assert msg.startswith("invalid task.restart.condition 42: must be one of RESTART_CONDITION_ANY")


@pytest.mark.parametrize("ratio", [-0.1, 1.5, float("nan"), float("inf")])
def test_validation_max_failure_ratio(ratio: float) -> None:
    msg = service_error(lambda s: setattr(s.update, "max_failure_ratio", ratio))
    assert msg.startswith("invalid update.max_failure_ratio ")
    assert msg.endswith(": must be between 0 and 1")


def test_validation_update_enums() -> None:
    msg = service_error(lambda s: setattr(s.update, "failure_action", 3))
    assert msg.startswith("invalid update.failure_action 3: must be one of FAILURE_ACTION_PAUSE")
    msg = service_error(lambda s: setattr(s.rollback, "order", 2))
    assert msg.startswith("invalid rollback.order 2: must be one of UPDATE_ORDER_STOP_FIRST")


@pytest.mark.parametrize("field", ["interval", "timeout", "start_period"])
def test_validation_healthcheck_durations(field: str) -> None:
    msg = service_error(
        lambda s: getattr(s.task.container.healthcheck, field).CopyFrom(dur(0, 999_999))
    )
    assert msg == (
        f"invalid task.container.healthcheck.{field} 0.000999999s: "
        "must be 0 (inherit) or at least 1ms"
    )
    msg = service_error(lambda s: getattr(s.task.container.healthcheck, field).CopyFrom(dur(-1)))
    assert "must be 0 (inherit) or at least 1ms" in msg


def test_validation_healthcheck_retries() -> None:
    msg = service_error(lambda s: setattr(s.task.container.healthcheck, "retries", -1))
    assert msg == "invalid task.container.healthcheck.retries -1: must not be negative"


def test_validation_healthcheck_test() -> None:
    msg = service_error(lambda s: s.task.container.healthcheck.test.extend(["RUN", "x"]))
    assert msg == 'invalid task.container.healthcheck.test[0] "RUN": must be NONE, CMD or CMD-SHELL'
    msg = service_error(lambda s: s.task.container.healthcheck.test.extend(["CMD"]))
    assert msg == 'invalid task.container.healthcheck.test "CMD": CMD needs a command'


# --- secret / config references -----------------------------------------------------------------


def test_validation_secret_reference_needs_id_or_name() -> None:
    msg = service_error(lambda s: s.task.container.secrets.add(file=types_pb2.FileTarget(name="x")))
    assert msg == (
        'invalid task.container.secrets[0] "": a reference needs the secret\'s id or name'
    )


def test_validation_secret_reference_needs_file_target() -> None:
    msg = service_error(lambda s: s.task.container.secrets.add(secret_name="db"))
    assert msg == ('invalid task.container.secrets[0].file.name "": a file target name is required')


def test_validation_duplicate_secret_target() -> None:
    def mutate(s: Spec) -> None:
        s.task.container.secrets.add(secret_name="a", file=types_pb2.FileTarget(name="t"))
        s.task.container.secrets.add(secret_name="b", file=types_pb2.FileTarget(name="t"))

    assert service_error(mutate) == (
        'invalid task.container.secrets[1].file.name "t": '
        'secret references "a" and "b" have the same target'
    )


def test_validation_duplicate_config_target() -> None:
    def mutate(s: Spec) -> None:
        s.task.container.configs.add(config_name="a", file=types_pb2.FileTarget(name="/t"))
        s.task.container.configs.add(config_name="b", file=types_pb2.FileTarget(name="/t"))

    assert 'config references "a" and "b" have the same target' in service_error(mutate)


def test_validation_file_target_mode() -> None:
    msg = service_error(
        lambda s: s.task.container.secrets.add(
            secret_name="a", file=types_pb2.FileTarget(name="t", mode=0o10000)
        )
    )
    assert msg == 'invalid task.container.secrets[0].file.mode "0o10000": must be at most 0o7777'


def test_validation_network_attachment() -> None:
    msg = service_error(lambda s: s.task.networks.add())
    assert msg == 'invalid task.networks[0].target "": a network id or name is required'
    msg = service_error(
        lambda s: (s.task.networks.add(target="n"), s.task.networks.add(target="n"))
    )
    assert msg == 'invalid task.networks.target "n": duplicate network attachment'


def test_validation_init_mode_enum() -> None:
    msg = service_error(lambda s: setattr(s.task.container, "init", 3))
    assert msg.startswith("invalid task.container.init 3: must be one of INIT_MODE_DEFAULT")


# --- secrets, configs, networks -----------------------------------------------------------------

OBJ_RULE = (
    "must be 1-64 characters of letters, digits, '-', '_' and '.', "
    "starting and ending with a letter or digit"
)


@pytest.mark.parametrize("name", ["db.password", "A-b_c.d", "x", "a" * 64])
def test_validation_secret_name_accepted(name: str) -> None:
    validate_secret_spec(
        specs_pb2.SecretSpec(annotations=types_pb2.Annotations(name=name), data=b"x")
    )


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "a" * 65, "trailing-", "sp ace"])
def test_validation_secret_name_rejected(name: str) -> None:
    spec = specs_pb2.SecretSpec(annotations=types_pb2.Annotations(name=name), data=b"x")
    shown = name if len(name) <= 64 else name[:64] + "..."
    assert message_of(lambda: validate_secret_spec(spec)) == (
        f'invalid secret name "{shown}": {OBJ_RULE}'
    )


@pytest.mark.parametrize("size", [0, 500 * 1024])
def test_validation_secret_data_size(size: int) -> None:
    spec = specs_pb2.SecretSpec(annotations=types_pb2.Annotations(name="s"), data=b"x" * size)
    assert message_of(lambda: validate_secret_spec(spec)) == (
        f"invalid secret data ({size} bytes): must be at least 1 byte and less than 500 KiB"
    )


def test_validation_secret_data_largest_accepted() -> None:
    spec = specs_pb2.SecretSpec(
        annotations=types_pb2.Annotations(name="s"), data=b"x" * (500 * 1024 - 1)
    )
    validate_secret_spec(spec)


def test_validation_config_data_size() -> None:
    ok = specs_pb2.ConfigSpec(annotations=types_pb2.Annotations(name="c"), data=b"x" * 500 * 1024)
    validate_config_spec(ok)
    for size in (0, 500 * 1024 + 1):
        spec = specs_pb2.ConfigSpec(annotations=types_pb2.Annotations(name="c"), data=b"x" * size)
        assert message_of(functools.partial(validate_config_spec, spec)) == (
            f"invalid config data ({size} bytes): must be at least 1 byte and at most 500 KiB"
        )


def test_validation_config_name() -> None:
    spec = specs_pb2.ConfigSpec(annotations=types_pb2.Annotations(name="a/b"), data=b"x")
    assert (
        message_of(lambda: validate_config_spec(spec)) == f'invalid config name "a/b": {OBJ_RULE}'
    )


def test_validation_network_spec() -> None:
    validate_network_spec(specs_pb2.NetworkSpec(annotations=types_pb2.Annotations(name="backend")))
    spec = specs_pb2.NetworkSpec(annotations=types_pb2.Annotations(name="back end"))
    assert message_of(lambda: validate_network_spec(spec)) == (
        f'invalid network name "back end": {DNS_RULE}'
    )
    spec = specs_pb2.NetworkSpec(annotations=types_pb2.Annotations(name="in"), ingress=True)
    assert message_of(lambda: validate_network_spec(spec)) == (
        "invalid ingress True: ingress networks are not supported yet"
    )


# --- nodes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("desired_role", "invalid desired_role 7: must be worker or manager"),
        ("membership", "invalid membership 7: must be pending or accepted"),
        ("availability", "invalid availability 7: must be active, pause or drain"),
    ],
)
def test_validation_node_spec_enums(field: str, message: str) -> None:
    spec = specs_pb2.NodeSpec()
    setattr(spec, field, 7)
    assert message_of(lambda: validate_node_spec(spec)) == message


# --- cluster ------------------------------------------------------------------------------------


def cluster_error(mutate: Callable[[specs_pb2.ClusterSpec], object]) -> str:
    spec = defaults.default_cluster_spec()
    mutate(spec)
    return message_of(lambda: validate_cluster_spec(spec, "default"))


def test_validation_default_cluster_spec_is_valid() -> None:
    validate_cluster_spec(defaults.default_cluster_spec(), "default")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda s: setattr(s.annotations, "name", "prod"),
            'invalid cluster name "prod": cannot be changed from "default"',
        ),
        (
            lambda s: setattr(s.orchestration, "task_history_retention_limit", 10**6),
            (
                "invalid orchestration.task_history_retention_limit 1000000: "
                "must be at most 10000 (negative keeps all)"
            ),
        ),
        (
            lambda s: setattr(s.raft, "snapshot_interval", 0),
            "invalid raft.snapshot_interval 0: must be at least 1",
        ),
        (
            lambda s: setattr(s.raft, "heartbeat_tick", 0),
            "invalid raft.heartbeat_tick 0: must be at least 1",
        ),
        (
            lambda s: setattr(s.raft, "election_tick", 1),
            "invalid raft.election_tick 1: must be greater than raft.heartbeat_tick (1)",
        ),
        (
            lambda s: s.raft.tick_interval.CopyFrom(dur(0, 1000)),
            "invalid raft.tick_interval 1e-06s: must be at least 1ms",
        ),
        (
            lambda s: s.dispatcher.heartbeat_period.CopyFrom(dur(0, 99_000_000)),
            "invalid dispatcher.heartbeat_period 0.099s: must be at least 100ms",
        ),
        (
            lambda s: s.ca_config.node_cert_expiry.CopyFrom(dur(3599)),
            "invalid ca_config.node_cert_expiry 3599s: must be at least 1h",
        ),
        (
            lambda s: setattr(s.service_history, "revisions", 0),
            "invalid service_history.revisions 0: must be between 1 and 100",
        ),
        (
            lambda s: setattr(s.service_history, "revisions", 101),
            "invalid service_history.revisions 101: must be between 1 and 100",
        ),
    ],
)
def test_validation_cluster_rules(
    mutate: Callable[[specs_pb2.ClusterSpec], object], message: str
) -> None:
    assert cluster_error(mutate) == message


def test_validation_cluster_unset_durations_mean_default() -> None:
    spec = defaults.default_cluster_spec()
    spec.dispatcher.ClearField("heartbeat_period")
    spec.ca_config.ClearField("node_cert_expiry")
    spec.raft.ClearField("tick_interval")
    validate_cluster_spec(spec, "default")
