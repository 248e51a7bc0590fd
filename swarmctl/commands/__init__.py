"""The swarmctl commands, one module per resource, one handler function per verb.

Each module has `register(subparsers)`; `swarmctl.cli` calls them in the order of `MODULES`.
`serviceflags` (service spec flags) and `payload` (secret/config data input) serve the others.
"""

from swarmctl.commands import cluster, config, node, secret, service, task

MODULES = (service, task, node, cluster, secret, config)

__all__ = ["MODULES"]
