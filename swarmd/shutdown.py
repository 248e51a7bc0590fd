"""How a swarmd process stops on SIGTERM/SIGINT: gracefully, but within a deadline.

`swarmd.__main__` arms one `Shutdown` around `Node.run()`. The first signal cancels the node's
task: the servers drain (manager STOP_GRACE), the raft log and the task database close, the
containers keep running (a restarted agent adopts them). If that has not finished within the
deadline, or a second signal comes, the process exits at once: an operator's `systemctl stop`
or Ctrl-C must end the process, and a stop that hangs says which tasks are still running and
where they are waiting, so the hang can be found (a swallowed cancellation kept an orchestrator
running once; see swarmd/manager/store/watch.py, Subscription.next_within).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable

import structlog

_log = structlog.get_logger(component="node")

# Long enough for the manager's drain (swarmd.node.MANAGER_DRAIN, 4 s) and the last fsyncs
# on a slow disk.
DEFAULT_DEADLINE = 10.0
# Exit status when the graceful stop did not finish in time.
EXIT_STUCK = 1


def _hard_exit(code: int) -> None:
    # No interpreter teardown: it would wait for the very tasks and threads that are stuck.
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def _where(task: asyncio.Task[object]) -> str:
    """The task's name and the innermost line it is suspended at."""
    frames = task.get_stack()
    if not frames:
        return task.get_name()
    code = frames[-1].f_code
    return f"{task.get_name()} at {code.co_filename}:{frames[-1].f_lineno} ({code.co_name})"


class Shutdown:
    """Turns stop signals into a cancellation of `main`, bounded by `deadline` seconds.

    Loop-confined: `request` runs as a loop signal handler (or directly, in tests).

    Args:
        main: the task that runs the node.
        deadline: seconds the graceful stop may take after the first signal.
        exit_fn: ends the process with a status (tests pass a recorder).
    """

    def __init__(
        self,
        main: asyncio.Task[object],
        deadline: float = DEFAULT_DEADLINE,
        exit_fn: Callable[[int], None] = _hard_exit,
    ) -> None:
        self._main = main
        self._deadline = deadline
        self._exit = exit_fn
        self._timer: asyncio.TimerHandle | None = None

    def install(self, signals: tuple[signal.Signals, ...]) -> None:
        """Handle `signals` on the running loop."""
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.add_signal_handler(sig, self.request, sig)

    def request(self, sig: signal.Signals) -> None:
        """A stop signal: the first starts the graceful stop, a second ends the process now."""
        if self._timer is not None:
            _log.warning("second stop signal; exiting now", signal=sig.name)
            self._exit(128 + sig.value)
            return
        _log.info("stopping", signal=sig.name, deadline_s=self._deadline)
        self._timer = asyncio.get_running_loop().call_later(self._deadline, self._expired)
        self._main.cancel()

    def disarm(self) -> None:
        """The stop finished: no deadline any more."""
        if self._timer is not None:
            self._timer.cancel()

    def _expired(self) -> None:
        stuck = sorted(_where(t) for t in asyncio.all_tasks() if not t.done())
        _log.error("stop did not finish in time; exiting", deadline_s=self._deadline, running=stuck)
        self._exit(EXIT_STUCK)


__all__ = ["DEFAULT_DEADLINE", "EXIT_STUCK", "Shutdown"]
