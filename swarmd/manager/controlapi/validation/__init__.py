"""Pure validation of the specs the control API accepts; every failure is errors.InvalidArgument.

Manager layer. Messages are shaped `invalid <field> <value>: <rule>`. Checks that need the store
(referenced secrets, configs and networks exist) live with the handlers in `controlapi.references`.
"""

from swarmd.manager.constraint import Constraint, parse_constraint
from swarmd.manager.controlapi.validation.cluster import validate_cluster_spec, validate_node_spec
from swarmd.manager.controlapi.validation.fieldrules import check_dns_name, check_object_name
from swarmd.manager.controlapi.validation.image import reference_error
from swarmd.manager.controlapi.validation.objects import (
    validate_config_spec,
    validate_network_spec,
    validate_secret_spec,
)
from swarmd.manager.controlapi.validation.service import validate_service_spec

__all__ = [
    "Constraint",
    "check_dns_name",
    "check_object_name",
    "parse_constraint",
    "reference_error",
    "validate_cluster_spec",
    "validate_config_spec",
    "validate_network_spec",
    "validate_node_spec",
    "validate_secret_spec",
    "validate_service_spec",
]
