"""What `service history` says changed between two revisions."""

from __future__ import annotations

from swarmctl.specdiff import diff, summarize
from swarmd.api import specs_pb2, types_pb2


def _spec(image: str = "busybox:1", env: tuple[str, ...] = (), replicas: int = 3):
    s = specs_pb2.ServiceSpec()
    s.annotations.name = "web"
    s.task.container.image = image
    s.task.container.env.extend(env)
    s.replicated.replicas = replicas
    return s


def test_equal_specs_have_no_changes() -> None:
    assert diff(_spec(), _spec()) == []
    assert summarize([]) == "-"


def test_scalars_lists_maps_and_messages_are_described() -> None:
    old = _spec(env=("A=1", "B=2"))
    new = _spec(image="busybox:2", env=("A=1", "C=3"), replicas=5)
    new.annotations.labels["tier"] = "front"
    new.task.restart.condition = types_pb2.RestartPolicy.RESTART_CONDITION_ON_FAILURE
    lines = diff(old, new)
    assert "Annotations.Labels: +tier=front" in lines
    assert "Task.Container.Image: busybox:1 -> busybox:2" in lines
    assert "Task.Container.Env: -B=2 +C=3" in lines
    assert "Replicated.Replicas: 3 -> 5" in lines
    assert "Task.Restart: set" in lines
    assert summarize(lines, 30).endswith("...")
    assert len(summarize(lines, 30)) == 30
