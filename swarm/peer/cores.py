"""Worker processes that encrypt and decrypt a large model's chunks on every core.

SEAL's calls hold Python's GIL, so a peer's threads encrypt one ciphertext at a time. For a
model of millions of parameters (an 11.2M-parameter ResNet-18 is 1,366 ciphertexts: ~2.7 s of
CPU to encrypt, ~3.5 s to decrypt on this project's reference machine) the peer hands ranges of
chunks to a pool of processes instead (swarm.crypto.parallel does the splitting and joining).

How many: ``[peer] crypto_workers`` in the peer's config. 1 keeps everything in the peer's own
process. 0, the default, decides per model: the cores this process may run on (up to
:data:`AUTO_MAX_WORKERS`) for a model of :data:`AUTO_MIN_PARAMS` parameters or more on a host
with :data:`AUTO_MIN_CORES` cores or more, else 1, so a small model, or several hospitals
sharing a small machine (the local network), never pay for processes they cannot use.

The processes start on first use (``spawn``: a fresh interpreter, not a fork of a peer that
runs threads) and live as long as the peer; each loads a round's context once. They receive
the round's secret key over a pipe from their parent: the same user, the same host, the same
trust as the peer's own memory (docs/threat-model.md).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from swarm.errors import CryptoWorkerError

log = logging.getLogger(__name__)

#: "auto" uses worker processes for models of at least this many parameters
AUTO_MIN_PARAMS = 1_000_000
#: ... on hosts with at least this many usable cores (fewer: the peer's own process)
AUTO_MIN_CORES = 4
#: ... and at most this many of them
AUTO_MAX_WORKERS = 8


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def workers_for(setting: int, param_count: int, cores: int | None = None) -> int:
    """How many processes encrypt and decrypt a model of ``param_count`` parameters:
    ``setting`` itself when it is 1 or more, else (0: auto) the rule in the module docstring.
    """
    if setting >= 1:
        return setting
    cores = usable_cores() if cores is None else cores
    if param_count >= AUTO_MIN_PARAMS and cores >= AUTO_MIN_CORES:
        return min(cores, AUTO_MAX_WORKERS)
    return 1


class CryptoCores:
    """A lazily started pool of ``workers`` processes with a blocking map (call it from a
    worker thread, never from the peer's trio loop)."""

    def __init__(self, workers: int) -> None:
        if workers < 2:
            raise ValueError("a pool needs at least two workers (one: encrypt in process)")
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                log.info("starting %d crypto worker processes", self.workers)
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
                )
            return self._executor

    def run(self, job: Callable[..., Any], jobs: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``job(*args)`` for each of ``jobs`` in the worker processes; results in order. An
        exception of a job is raised here (the first one, in order); a worker that died is
        :class:`CryptoWorkerError`."""
        pool = self._pool()
        try:
            futures = [pool.submit(job, *args) for args in jobs]
            return [future.result() for future in futures]
        except BrokenProcessPool as exc:
            # killed (out of memory, by hand): this pool takes no more work; the next run
            # starts a fresh one, and the action that called us is retried
            self.close()
            raise CryptoWorkerError(f"a crypto worker process died: {exc}") from exc

    def close(self) -> None:
        """Stop the processes (never raises; running parts are abandoned)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


__all__ = ["CryptoCores", "usable_cores", "workers_for"]
