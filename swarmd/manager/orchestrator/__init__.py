"""The orchestrators: leader-only components that create and retire tasks.

Manager layer. Each component is a pure core plus an async shell with `run()` (see README.md):
`ReplicatedOrchestrator`, `GlobalOrchestrator`, `TaskReaper` and `ConstraintEnforcer`, all
taking the store and a Clock. `Updater` is the seam for service updates; `RollingUpdater` is
the one the orchestrators run.
"""

from swarmd.manager.orchestrator.enforcer import ConstraintEnforcer, ConstraintEnforcerCore
from swarmd.manager.orchestrator.global_ import GlobalOrchestrator, GlobalReconciler
from swarmd.manager.orchestrator.plan import Decision
from swarmd.manager.orchestrator.reaper import TaskReaper, TaskReaperCore
from swarmd.manager.orchestrator.replicated import ReplicatedOrchestrator, ReplicatedReconciler
from swarmd.manager.orchestrator.restart import RestartSupervisor
from swarmd.manager.orchestrator.task import new_task
from swarmd.manager.orchestrator.update import ReplaceAllUpdater, Updater
from swarmd.manager.orchestrator.updater import RollingUpdater

__all__ = [
    "ConstraintEnforcer",
    "ConstraintEnforcerCore",
    "Decision",
    "GlobalOrchestrator",
    "GlobalReconciler",
    "ReplaceAllUpdater",
    "ReplicatedOrchestrator",
    "ReplicatedReconciler",
    "RestartSupervisor",
    "RollingUpdater",
    "TaskReaper",
    "TaskReaperCore",
    "Updater",
    "new_task",
]
