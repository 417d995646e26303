"""Serve the real tools with uvicorn on a loopback port, in a subprocess that always gets stopped.

``with serve_realtools() as base_url:`` starts ``python -m toolalpaca_utils.realtools`` on a
free 127.0.0.1 port, waits until ``/health`` answers, yields ``http://127.0.0.1:<port>`` and
stops the whole process group (server and calculator workers) on exit, on exceptions and on
Ctrl-C; an ``atexit`` hook and a parent watchdog in the child cover the rest.
"""
from __future__ import annotations

import contextlib
import ipaddress
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from ..procs import Service, free_port

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class RealToolsStartError(RuntimeError):
    """The real-tools server exited or did not become ready in time."""


def check_loopback(host: str) -> str:
    """``host`` if it is a loopback address (or 'localhost'); ValueError otherwise.

    The tools are for local agents only: binding 0.0.0.0 or a LAN address would expose them.
    """
    if host == "localhost":
        return host
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValueError(f"refusing to serve the real tools on {host!r}: only loopback addresses (127.0.0.1, ::1) are allowed")


class RealToolsServer(Service):
    """One server process. Prefer :func:`serve_realtools`; use this class to see ``pid``/``log_path``."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, startup_timeout: float = 30.0) -> None:
        super().__init__("real-tools server", RealToolsStartError, startup_timeout=startup_timeout, poll=0.1,
                         tail_chars=3000)
        self.host = check_loopback(host)
        self.requested_port = port
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> str:
        """Start and wait for readiness; returns the base URL. Retries on a port race once."""
        attempts = 1 if self.requested_port else 3
        for attempt in range(attempts):
            try:
                return self._start_once(self.requested_port or free_port(self.host))
            except RealToolsStartError as exc:
                self.stop()
                if attempt == attempts - 1 or "address already in use" not in str(exc).lower():
                    raise
        raise AssertionError("unreachable")

    def _start_once(self, port: int) -> str:
        self.port = port
        fd, log_path = tempfile.mkstemp(prefix="realtools-", suffix=".log")
        os.close(fd)
        env = dict(os.environ)
        env["PYTHONPATH"] = _PACKAGE_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        cmd = [sys.executable, "-m", "toolalpaca_utils.realtools", "--host", self.host, "--port", str(port),
               "--parent-pid", str(os.getpid())]
        # Own session = own process group: stopping it also stops the calculator workers, and a
        # Ctrl-C in the terminal/notebook reaches us (who then stop it), not the server directly.
        self.launch(cmd, log_path=log_path, health_url=self.base_url + "/health", env=env)
        return self.base_url

    def not_ready_message(self) -> str:
        return f"real-tools server not ready after {self.startup_timeout:g} s:\n{self.log_tail()}"

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds; idempotent. The log goes too."""
        super().stop(grace)
        if self.log_path:
            with contextlib.suppress(OSError):
                os.unlink(self.log_path)
            self.log_path = None

    def __enter__(self) -> "RealToolsServer":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve_realtools(host: str = "127.0.0.1", port: int | None = None, startup_timeout: float = 30) -> Iterator[str]:
    """Serve the real tools on loopback for the duration of the ``with`` block; yields the base URL."""
    with RealToolsServer(host, port, startup_timeout) as server:
        yield server.base_url
