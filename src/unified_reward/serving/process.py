"""`src/serve.py` as a child process on a free loopback port, for tests and benchmarks: started, waited on until
`/health` answers, stopped (and its whole process group, LitServe's workers included) on exit."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVE = Path(__file__).resolve().parents[2] / "serve.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(
        self,
        *overrides: str,
        port: int | None = None,
        log: str | os.PathLike | None = None,
        startup_timeout: float = 180.0,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.overrides = [*overrides, f"port={self.port}"]
        self.log = Path(log) if log else None
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        output = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 (kept open while running)
        self.process = subprocess.Popen(
            [sys.executable, str(SERVE), *self.overrides],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches LitServe's workers too
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.process.returncode} (log: {self.log})")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"the server did not answer /health within {self.startup_timeout} s (log: {self.log})")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGINT)  # Ctrl+C: LitServe stops its workers itself
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever is left of the group
        return code if code is not None else self.process.wait()

    def memory_bytes(self) -> int:
        """Resident memory of the server's whole process group (its HTTP server and LitServe's workers), read from
        /proc (Linux)."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.process.pid:  # the process group: started as its leader
                    total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # rss, in pages
        return total

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
