"""Stopping a process we started, whether it is still our child or a detached one."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


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


@dataclass(frozen=True)
class Stoppable:
    """A process to stop: its pid, how to tell it still runs, and its Popen if it is our child."""

    pid: int
    alive: Callable[[], bool]
    process: subprocess.Popen[bytes] | None = None


def terminate_all(
    procs: Sequence[Stoppable], *, timeout: float = 10.0, sig: int = signal.SIGTERM
) -> None:
    """:func:`terminate` for many processes at once: ``sig`` to every one first, then one
    wait of up to ``timeout`` for all of them, SIGKILL for those still there, and every child
    reaped. Stopping N peers takes as long as the slowest, not the sum."""
    running = [p for p in procs if p.alive()]
    for p in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, sig)
    deadline = time.monotonic() + timeout
    while any(p.alive() for p in running) and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in running:
        if p.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
    for p in running:
        if p.process is not None:
            p.process.wait()
