"""Child processes of the project's local services (llama.cpp server, real tools): one way to
pick a port, start a service in its own process group, and stop the whole group; and
:class:`Service`, the one supervisor both servers use (start, wait for health, always stop)."""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Sequence

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free on ``host`` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _own_group_dying_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()
    if sys.platform.startswith("linux"):
        # the kernel sends SIGTERM when the parent dies, even by SIGKILL: no orphaned servers
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn_service(cmd: Sequence[str], log: IO, env: dict | None = None) -> subprocess.Popen:
    """Start ``cmd`` as the leader of a new process group that dies with this process."""
    return subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            preexec_fn=_own_group_dying_with_parent)


def stop_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM to the process group, SIGKILL to what is left after ``grace`` seconds; idempotent."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # workers stuck in a computation
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)


def describe_exit(returncode: int) -> str:
    """'killed by signal SIGSEGV' for a negative Popen return code, 'exit code N' otherwise."""
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class Service:
    """One local HTTP service: started in its own process group (:func:`spawn_service`, output
    to a log file), ready once its health URL answers 200, stopped with its whole group on
    :meth:`stop`, and by an ``atexit`` hook for whatever is still running (:data:`LIVE`).

    ``name`` and ``error`` make the messages: the process exiting before it is ready raises
    ``error`` with the exit (:func:`describe_exit`) and the log tail; :meth:`not_ready_message`
    says what a timeout raises."""

    def __init__(self, name: str, error: type[Exception] = RuntimeError, *, startup_timeout: float = 30.0,
                 poll: float = 0.25, tail_chars: int = 2000) -> None:
        self.name, self.error = name, error
        self.startup_timeout, self.poll, self.tail_chars = startup_timeout, poll, tail_chars
        self.process: subprocess.Popen | None = None
        self.log_path: str | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def launch(self, cmd: Sequence[str], *, log_path: str | Path, health_url: str, env: dict | None = None) -> None:
        """Start ``cmd`` (output to ``log_path``) and wait until ``health_url`` answers."""
        self.log_path = str(log_path)
        with open(log_path, "w") as log:  # the child keeps its own copy of the descriptor
            self.process = spawn_service(cmd, log, env)
        LIVE.add(self)
        self.wait_ready(health_url)

    def wait_ready(self, health_url: str) -> None:
        """Return once ``health_url`` answers 200; ``error`` if the process exits or time runs out."""
        import httpx

        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=2.0, trust_env=False) as client:  # loopback: never through a proxy
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise self.error(f"{self.name} exited ({describe_exit(self.process.returncode)}); "
                                     f"log tail:\n{self.log_tail()}")
                try:
                    if client.get(health_url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(self.poll)
        raise self.error(self.not_ready_message())

    def not_ready_message(self) -> str:
        return f"{self.name} not ready after {self.startup_timeout:.0f}s (log: {self.log_path})"

    def exited(self) -> bool:
        """Whether the process was started and has ended."""
        return self.process is not None and self.process.poll() is not None

    def log_tail(self, chars: int | None = None) -> str:
        """The last ``chars`` (default ``tail_chars``) characters of the log ("" when unreadable)."""
        try:
            return Path(self.log_path or "").read_text(errors="replace")[-(chars or self.tail_chars):]
        except OSError:
            return ""

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds; idempotent."""
        if self.process is not None:
            stop_group(self.process, grace)
        LIVE.discard(self)


LIVE: set[Service] = set()  # the services started and not yet stopped


@atexit.register
def _stop_all() -> None:
    for service in list(LIVE):
        service.stop(grace=2.0)
