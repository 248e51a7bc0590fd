"""service create/update flags applied to a ServiceSpec, through the real parser."""

from __future__ import annotations

import pytest

from swarmctl.cli import build_parser
from swarmctl.command import UsageError
from swarmctl.commands import serviceflags
from swarmd import errors
from swarmd.api import specs_pb2, types_pb2


def _apply(argv: list[str], spec: specs_pb2.ServiceSpec | None = None) -> specs_pb2.ServiceSpec:
    ns = build_parser().parse_args(argv)
    out = spec if spec is not None else specs_pb2.ServiceSpec()
    serviceflags.apply(ns, out)
    return out


def _create(*args: str) -> specs_pb2.ServiceSpec:
    return _apply(["service", "create", "--name", "web", "--image", "busybox", *args])


def _update(spec: specs_pb2.ServiceSpec, *args: str) -> specs_pb2.ServiceSpec:
    out = specs_pb2.ServiceSpec()
    out.CopyFrom(spec)
    return _apply(["service", "update", "web", *args], out)


def test_flags_not_given_leave_the_spec_untouched() -> None:
    spec = specs_pb2.ServiceSpec()
    spec.task.container.image = "busybox"
    spec.task.container.env.append("A=1")
    spec.replicated.replicas = 2
    assert _update(spec) == spec


def test_create_sets_scalars_and_lists() -> None:
    spec = _create(
        "--replicas", "3", "--command", "sh -c 'echo hi'", "--args", "x",
        "-e", "A=1", "--label", "k=v", "--constraint", "node.role==worker",
        "--init", "--stop-grace-period", "5s", "--user", "nobody",
    )  # fmt: skip
    c = spec.task.container
    assert spec.replicated.replicas == 3
    assert list(c.command) == ["sh", "-c", "echo hi"]
    assert list(c.args) == ["x"]
    assert list(c.env) == ["A=1"]
    assert dict(spec.annotations.labels) == {"k": "v"}
    assert list(spec.task.placement.constraints) == ["node.role==worker"]
    assert c.init == specs_pb2.ContainerSpec.INIT_MODE_ENABLED
    assert c.stop_grace_period.seconds == 5
    assert c.user == "nobody"


def test_update_env_add_replaces_the_key_and_env_rm_removes_it() -> None:
    spec = _create("-e", "A=1", "-e", "B=2", "-e", "C=3")
    spec = _update(
        spec, "--env-add", "B=20", "--env-add", "D=4", "--env-rm", "A", "--env-rm", "C=3"
    )
    assert list(spec.task.container.env) == ["B=20", "D=4"]


def test_update_labels_constraints_prefs() -> None:
    spec = _create("--label", "a=1", "--constraint", "x==1", "--placement-pref", "spread=node.id")
    spec = _update(
        spec,
        "--label-add", "b=2", "--label-rm", "a",
        "--constraint-add", "y==2", "--constraint-add", "x==1", "--constraint-rm", "x==1",
        "--placement-pref-rm", "spread=node.id", "--placement-pref-add", "spread=node.labels.z",
    )  # fmt: skip
    assert dict(spec.annotations.labels) == {"b": "2"}
    assert list(spec.task.placement.constraints) == ["y==2", "x==1"]
    assert [p.spread.spread_descriptor for p in spec.task.placement.preferences] == [
        "node.labels.z"
    ]


def test_update_ports_mounts_and_references_by_key() -> None:
    spec = _create(
        "-p", "8080:80", "-p", "53/udp", "--mount", "type=tmpfs,target=/a",
        "--secret", "pw", "--config", "cfg",
    )  # fmt: skip
    spec = _update(
        spec,
        "--publish-add", "9090:80", "--publish-rm", "53/udp",
        "--mount-add", "type=tmpfs,target=/b", "--mount-rm", "/a",
        "--secret-rm", "pw", "--secret-add", "source=other,target=o",
        "--config-rm", "cfg",
    )  # fmt: skip
    assert [(p.published_port, p.target_port) for p in spec.endpoint.ports] == [(9090, 80)]
    assert [m.target for m in spec.task.container.mounts] == ["/b"]
    assert [(s.secret_name, s.file.name) for s in spec.task.container.secrets] == [("other", "o")]
    assert list(spec.task.container.configs) == []


def test_resources_restart_update_and_health() -> None:
    spec = _create(
        "--reserve-cpu", "0.5", "--limit-memory", "1g",
        "--restart-condition", "none", "--restart-max-attempts", "0",
        "--update-failure-action", "continue", "--update-max-failure-ratio", "0.5",
        "--health-cmd", "true", "--health-retries", "2",
    )  # fmt: skip
    assert spec.task.resources.reservations.nano_cpus == 500_000_000
    assert spec.task.resources.limits.memory_bytes == 2**30
    assert spec.task.restart.condition == types_pb2.RestartPolicy.RESTART_CONDITION_NONE
    assert spec.task.restart.HasField("delay") is False
    assert spec.update.failure_action == types_pb2.UpdateConfig.FAILURE_ACTION_CONTINUE
    assert spec.update.max_failure_ratio == 0.5
    assert list(spec.task.container.healthcheck.test) == ["CMD-SHELL", "true"]
    assert spec.task.container.healthcheck.retries == 2
    off = _update(spec, "--no-healthcheck", "--no-init")
    assert list(off.task.container.healthcheck.test) == ["NONE"]
    assert off.task.container.init == specs_pb2.ContainerSpec.INIT_MODE_DISABLED


def test_contradictions_are_errors() -> None:
    with pytest.raises(errors.InvalidArgument, match="--no-healthcheck conflicts"):
        _create("--no-healthcheck", "--health-interval", "1s")
    glob = specs_pb2.ServiceSpec()
    glob.annotations.name = "agent"
    getattr(glob, "global").SetInParent()
    with pytest.raises(errors.InvalidArgument, match="--replicas cannot be used with global"):
        _update(glob, "--replicas", "2")
    with pytest.raises(errors.InvalidArgument, match="invalid --command"):
        _create("--command", "sh -c 'unterminated")


def test_parser_refuses_unknown_abbreviated_and_bad_values() -> None:
    parser = build_parser()
    with pytest.raises(UsageError, match="unrecognized arguments: --env"):
        parser.parse_args(["service", "update", "web", "--env", "A=1"])
    with pytest.raises(UsageError, match="unrecognized arguments: --rep"):
        parser.parse_args(["service", "create", "--name", "w", "--rep", "2"])
    with pytest.raises(UsageError, match="argument --update-order: invalid update order 'random'"):
        parser.parse_args(["service", "create", "--name", "w", "--update-order", "random"])


def test_rollback_flags_set_the_rollback_config_only() -> None:
    spec = _create(
        "--update-parallelism", "2",
        "--rollback-parallelism", "1", "--rollback-delay", "3s", "--rollback-order", "start-first",
        "--rollback-failure-action", "continue", "--rollback-monitor", "10s",
        "--rollback-max-failure-ratio", "0.5",
    )  # fmt: skip
    assert spec.update.parallelism == 2
    r = spec.rollback
    assert (r.parallelism, r.delay.seconds, r.monitor.seconds) == (1, 3, 10)
    assert r.order == types_pb2.UpdateConfig.UPDATE_ORDER_START_FIRST
    assert r.failure_action == types_pb2.UpdateConfig.FAILURE_ACTION_CONTINUE
    assert r.max_failure_ratio == pytest.approx(0.5)
    with pytest.raises(UsageError, match="rollback failure action"):
        _create("--rollback-failure-action", "rollback")
