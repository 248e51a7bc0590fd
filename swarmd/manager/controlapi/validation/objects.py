"""Validation of SecretSpec, ConfigSpec and NetworkSpec.

Manager layer, pure. Messages never include secret data, only its size.
"""

from __future__ import annotations

from swarmd import errors
from swarmd.api import specs_pb2
from swarmd.manager.controlapi import defaults
from swarmd.manager.controlapi.validation.fieldrules import (
    check_dns_name,
    check_object_name,
    invalid,
)


def validate_secret_spec(spec: specs_pb2.SecretSpec) -> None:
    """Name as a file name; data 1 byte to strictly less than 500 KiB (swarmkit MaxSecretSize)."""
    check_object_name("secret", spec.annotations.name)
    size = len(spec.data)
    if not 0 < size < defaults.MAX_SECRET_BYTES:
        raise errors.InvalidArgument(
            f"invalid secret data ({size} bytes): must be at least 1 byte and less than 500 KiB"
        )


def validate_config_spec(spec: specs_pb2.ConfigSpec) -> None:
    """Name as a file name; data 1 byte to 500 KiB inclusive."""
    check_object_name("config", spec.annotations.name)
    size = len(spec.data)
    if not 0 < size <= defaults.MAX_CONFIG_BYTES:
        raise errors.InvalidArgument(
            f"invalid config data ({size} bytes): must be at least 1 byte and at most 500 KiB"
        )


def validate_network_spec(spec: specs_pb2.NetworkSpec) -> None:
    """Networking is minimal for now: a DNS-label name and no ingress networks from users."""
    check_dns_name("network", spec.annotations.name)
    if spec.ingress:
        raise invalid("ingress", True, "ingress networks are not supported yet")


__all__ = ["validate_config_spec", "validate_network_spec", "validate_secret_spec"]
