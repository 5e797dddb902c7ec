"""Stopping a process we started, whether it is still our child or a detached one."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable


def terminate(
    pid: int,
    alive: Callable[[], bool],
    process: subprocess.Popen[bytes] | None = None,
    *,
    timeout: float = 10.0,
    sig: int = signal.SIGTERM,
) -> None:
    """Send ``sig``, wait up to ``timeout`` for the process to go, SIGKILL it if it hangs, and
    reap it if it is our child (so no zombie keeps its PID)."""
    if not alive():
        return
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive():
        os.kill(pid, signal.SIGKILL)
    if process is not None:
        process.wait()
