"""The swarmctl commands, one module per resource, one handler function per verb.

Each module has `register(subparsers)`; `swarmctl.cli` calls them in the order of `MODULES`.
`logs` adds a verb to the `service` and `task` groups, so it comes after them. `serviceflags`
(service spec flags) and `payload` (secret/config data input) serve the others.
"""

from swarmctl.commands import cluster, config, events, logs, node, secret, service, task

MODULES = (service, task, node, cluster, secret, config, logs, events)

__all__ = ["MODULES"]
