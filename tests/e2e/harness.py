"""Run real swarmd processes and the swarmctl CLI for end-to-end tests.

Each SwarmdProcess gets its own state dir, control socket and free loopback ports; tests stop it
with SIGTERM or SIGKILL (a crash) and start it again on the same state dir.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SWARMD = [str(BIN / "python"), "-m", "swarmd"]
SWARMCTL = [str(BIN / "python"), "-m", "swarmctl"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class CtlResult:
    rc: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def swarmctl(sock: Path, *args: str, stdin: str | None = None, timeout: float = 30) -> CtlResult:
    env = dict(os.environ, GRPC_VERBOSITY="NONE")
    proc = subprocess.run(
        [*SWARMCTL, "-s", str(sock), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    return CtlResult(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class SwarmdProcess:
    state_dir: Path
    hostname: str
    host: str = "127.0.0.1"
    join_addr: str = ""
    join_token: str = ""
    remote_port: int = field(default_factory=free_port)
    join_port: int = field(default_factory=free_port)
    extra: list[str] = field(default_factory=list)
    #: Runs the process through this prefix (e.g. `ip netns exec NS`).
    prefix: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.state_dir / "swarmd.sock"

    @property
    def join_api(self) -> str:
        return f"{self.host}:{self.join_port}"

    @property
    def log_path(self) -> Path:
        return self.state_dir.parent / f"{self.state_dir.name}.log"

    def start(self, wait: bool = True) -> SwarmdProcess:
        args = [
            *self.prefix,
            *SWARMD,
            "-d",
            str(self.state_dir),
            "--listen-control-api",
            str(self.socket),
            "--listen-remote-api",
            f"{self.host}:{self.remote_port}",
            "--listen-join-api",
            f"{self.host}:{self.join_port}",
            "--hostname",
            self.hostname,
            "--log-level",
            "debug",
            *self.extra,
        ]
        if self.join_addr:
            args += ["--join-addr", self.join_addr, "--join-token", self.join_token]
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, GRPC_VERBOSITY="ERROR"),
            start_new_session=True,
        )
        log.close()
        if wait and not self.join_addr:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"swarmd exited with {self.proc.returncode}:\n{self.logs()}")
            if self.socket.exists():
                last = swarmctl(self.socket, "node", "ls", "-q")
                if last.rc == 0:
                    return
            time.sleep(0.1)
        raise AssertionError(f"swarmd not ready in {timeout}s ({last}):\n{self.logs()}")

    def logs(self, tail: int = 6000) -> str:
        """The end of the process's log (`tail` characters; 0 for all of it)."""
        try:
            text = self.log_path.read_text(errors="replace")
            return text[-tail:] if tail else text
        except OSError:
            return ""

    def ctl(self, *args: str, stdin: str | None = None) -> CtlResult:
        return swarmctl(self.socket, *args, stdin=stdin)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"swarmd did not stop after {sig}:\n{self.logs()}") from None
        return rc

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def wait_for(predicate: Any, timeout: float = 20, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or predicate}: last={last!r}")
