"""The log broker: `service logs` / `task logs` gathered from the agents of the nodes.

`broker.LogBroker` routes subscriptions and lines; `subscription.SubscriptionState` is its pure
per-node bookkeeping (deadlines, gaps, completion); `server.py` holds the Logs (clients) and
LogBroker (agents) servicers.
"""

from swarmd.manager.logbroker.broker import NODE_DEADLINE, LogBroker
from swarmd.manager.logbroker.server import LogBrokerServicer, LogsServicer
from swarmd.manager.logbroker.subscription import SubscriptionState

__all__ = ["NODE_DEADLINE", "LogBroker", "LogBrokerServicer", "LogsServicer", "SubscriptionState"]
