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

Large values (an update's float32 values, the aggregate's bytes, the ciphertexts and decrypted
values that come back) cross in shared memory blocks (/dev/shm), copied once and read in
place; smaller ones, or all of them where /dev/shm has no room (a container's is often 64 MB),
are pickled through the pipes.

The processes start on first use (``spawn``: a fresh interpreter, not a fork of a peer that
runs threads) and live as long as the peer; each loads a round's context once. They receive
the round's secret key over a pipe from their parent: the same user, the same host, the same
trust as the peer's own memory (docs/threat-model.md).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

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


#: an argument or result of at least this many bytes crosses between the peer and a worker
#: in shared memory (one copy in, none to read it) instead of pickled through a pipe
SHARED_MIN_BYTES = 1 << 20
#: where Linux keeps shared memory blocks
SHM_DIR = "/dev/shm"


@dataclass(frozen=True)
class _Shared:
    """A large bytes-like or array value placed in a shared memory block: what crosses the
    pipe instead of the value."""

    name: str
    nbytes: int
    dtype: str | None  # None: bytes
    shape: tuple[int, ...]


def _room_for(nbytes: int) -> bool:
    """Whether shared memory (/dev/shm) has room for ``nbytes`` and as much again to spare. A
    container's is often small (Docker: 64 MB), and a block created beyond it fails only when
    written (SIGBUS, the end of the process): then values go through the pipe instead."""
    try:
        return shutil.disk_usage(SHM_DIR).free >= 2 * nbytes
    except OSError:
        return False


def _share(value: Any, blocks: list[SharedMemory]) -> Any:
    """``value`` itself, or (large bytes, memoryview or array, with room in shared memory) a
    :class:`_Shared` holding a copy of it, the block appended to ``blocks`` (its creator closes
    and unlinks it)."""
    if isinstance(value, np.ndarray) and value.nbytes >= SHARED_MIN_BYTES:
        if not _room_for(value.nbytes):
            return value
        block = SharedMemory(create=True, size=value.nbytes)
        blocks.append(block)
        np.ndarray(value.shape, value.dtype, buffer=_buffer(block))[...] = value
        return _Shared(block.name, value.nbytes, value.dtype.str, value.shape)
    if isinstance(value, bytes | bytearray | memoryview):
        view = memoryview(value).cast("B")
        if view.nbytes < SHARED_MIN_BYTES or not _room_for(view.nbytes):
            return value if not isinstance(value, memoryview) else bytes(view)
        block = SharedMemory(create=True, size=view.nbytes)
        blocks.append(block)
        _buffer(block)[: view.nbytes] = view
        return _Shared(block.name, view.nbytes, None, (view.nbytes,))
    return value


def _attach(shared: _Shared, blocks: list[SharedMemory]) -> Any:
    """A view of a :class:`_Shared` value (valid until its block is closed)."""
    block = SharedMemory(name=shared.name)
    blocks.append(block)
    if shared.dtype is None:
        return _buffer(block)[: shared.nbytes]
    return np.ndarray(shared.shape, np.dtype(shared.dtype), buffer=_buffer(block))


def _buffer(block: SharedMemory) -> memoryview:
    buf = block.buf
    assert buf is not None  # (only None once closed)
    return buf


def _close(blocks: list[SharedMemory], *, unlink: bool) -> None:
    for block in blocks:
        with contextlib.suppress(BufferError):  # a view still alive: freed at exit instead
            block.close()
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                block.unlink()


def _call(job: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """In a worker: ``job`` on the arguments, shared ones read in place; a large result goes
    back in a block of its own (the peer copies it out and unlinks it)."""
    blocks: list[SharedMemory] = []
    try:
        result = job(*(_attach(a, blocks) if isinstance(a, _Shared) else a for a in args))
    finally:
        _close(blocks, unlink=False)
    mine: list[SharedMemory] = []
    shared = _share(result, mine)
    _close(mine, unlink=False)  # the peer unlinks it once read
    return shared


def _collect(value: Any) -> Any:
    """In the peer: a worker's result, copied out of its block (then unlinked)."""
    if not isinstance(value, _Shared):
        return value
    blocks: list[SharedMemory] = []
    try:
        view = _attach(value, blocks)
        out = bytes(view) if value.dtype is None else np.array(view)
        del view
        return out
    finally:
        _close(blocks, unlink=True)


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
        blocks: list[SharedMemory] = []
        try:
            shipped = [tuple(_share(a, blocks) for a in args) for args in jobs]
            futures = [pool.submit(_call, job, args) for args in shipped]
            results, error = [], None
            for future in futures:
                # every part is waited for and collected, even after one failed: a part's
                # result block is unlinked only here (a peer runs for months)
                try:
                    results.append(_collect(future.result()))
                except BrokenProcessPool:
                    raise
                except Exception as exc:
                    error = error or exc
            if error is not None:
                raise error
            return results
        except BrokenProcessPool as exc:
            # killed (out of memory, by hand): this pool takes no more work; the next run
            # starts a fresh one, and the action that called us is retried
            self.close()
            raise CryptoWorkerError(f"a crypto worker process died: {exc}") from exc
        finally:
            _close(blocks, unlink=True)

    def close(self) -> None:
        """Stop the processes (never raises; running parts are abandoned)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


__all__ = ["CryptoCores", "usable_cores", "workers_for"]
