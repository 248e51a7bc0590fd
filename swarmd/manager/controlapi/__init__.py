"""The Control API: the operator's view of the cluster (services, nodes, tasks, secrets, ...).

Manager layer. `ControlServicer` serves it from the store; `defaults` holds the default cluster
spec and service settings; `validation` the pure spec checks.
"""

from swarmd.manager.controlapi.defaults import default_cluster_spec, default_update_config
from swarmd.manager.controlapi.server import ControlServicer

__all__ = ["ControlServicer", "default_cluster_spec", "default_update_config"]
