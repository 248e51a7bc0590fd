"""Validation of a whole ServiceSpec: name, mode, task, update/rollback config, endpoint.

Manager layer, pure (no store access). Mode may be left unset: the service handlers then default
it to replicated with 1 replica, as the swarmkit and docker CLIs do.
"""

from __future__ import annotations

from collections.abc import Sequence

from swarmd.api import specs_pb2, types_pb2
from swarmd.manager.controlapi import defaults
from swarmd.manager.controlapi.validation.fieldrules import (
    check_dns_name,
    check_enum,
    check_non_negative_duration,
    invalid,
)
from swarmd.manager.controlapi.validation.task import validate_task

_MAX_PORT = 65535
_Port = types_pb2.PortConfig
_Update = types_pb2.UpdateConfig


def validate_service_spec(spec: specs_pb2.ServiceSpec) -> None:
    """Check a ServiceSpec for CreateService/UpdateService.

    Raises:
        errors.InvalidArgument: naming the first bad field and the rule it breaks.
    """
    check_dns_name("service", spec.annotations.name)
    _validate_mode(spec)
    validate_task(spec.task)
    if spec.HasField("update"):
        _validate_update_config("update", spec.update)
    if spec.HasField("rollback"):
        _validate_update_config("rollback", spec.rollback)
    _validate_endpoint(spec.endpoint)


def _validate_mode(spec: specs_pb2.ServiceSpec) -> None:
    if spec.WhichOneof("mode") == "replicated":
        replicas = spec.replicated.replicas
        if replicas > defaults.MAX_REPLICAS:
            raise invalid(
                "mode.replicated.replicas", replicas, f"must be at most {defaults.MAX_REPLICAS}"
            )


def _validate_update_config(field: str, u: types_pb2.UpdateConfig) -> None:
    check_non_negative_duration(f"{field}.delay", u.delay)
    check_non_negative_duration(f"{field}.monitor", u.monitor)
    check_enum(f"{field}.failure_action", u.failure_action, _Update.FailureAction)
    check_enum(f"{field}.order", u.order, _Update.UpdateOrder)
    # Written so that NaN fails too.
    if not 0.0 <= u.max_failure_ratio <= 1.0:
        raise invalid(f"{field}.max_failure_ratio", u.max_failure_ratio, "must be between 0 and 1")


def _validate_endpoint(e: specs_pb2.EndpointSpec) -> None:
    check_enum("endpoint.mode", e.mode, specs_pb2.EndpointSpec.ResolutionMode)
    _validate_ports(e.ports)
    if e.mode == specs_pb2.EndpointSpec.RESOLUTION_MODE_DNSRR:
        for i, p in enumerate(e.ports):
            # swarmkit validateEndpointSpec: ingress routing needs a virtual IP.
            if p.published_port and p.publish_mode == _Port.PUBLISH_MODE_INGRESS:
                raise invalid(
                    f"endpoint.ports[{i}].publish_mode",
                    "ingress",
                    "ports published through ingress cannot be used with dnsrr resolution",
                )


def _validate_ports(ports: Sequence[types_pb2.PortConfig]) -> None:
    published: dict[tuple[int, int], int] = {}
    for i, p in enumerate(ports):
        field = f"endpoint.ports[{i}]"
        check_enum(f"{field}.protocol", p.protocol, _Port.Protocol)
        check_enum(f"{field}.publish_mode", p.publish_mode, _Port.PublishMode)
        if not 1 <= p.target_port <= _MAX_PORT:
            raise invalid(f"{field}.target_port", p.target_port, "must be between 1 and 65535")
        if p.published_port > _MAX_PORT:
            raise invalid(
                f"{field}.published_port", p.published_port, "must be between 0 and 65535"
            )
        if p.published_port == 0:
            continue  # 0 asks for a dynamically allocated port; any number may do so
        key = (p.published_port, p.protocol)
        if key in published:
            proto = _Port.Protocol.Name(p.protocol).removeprefix("PROTOCOL_").lower()
            raise invalid(
                f"{field}.published_port",
                p.published_port,
                f"{proto} port already published by endpoint.ports[{published[key]}]",
            )
        published[key] = i


__all__ = ["validate_service_spec"]
