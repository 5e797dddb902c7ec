"""``DATA_DIR/peer.pid``: which process runs the peer of a data directory, while it runs.

`swarm peer run` writes the file (its pid, when it started, its config) and holds an exclusive
``flock`` on it until it exits; `swarm peer status` reads it. The lock, not the file, says
whether the peer runs: the kernel drops it when the process dies, however it dies, so a file a
killed peer left behind reads as "not running" and a reused pid cannot fool it. A second
`swarm peer run` on the same data directory finds the lock held and refuses to start.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from swarm.errors import ConfigError

PID_FILE = "peer.pid"


def pid_path(data_dir: Path) -> Path:
    return Path(data_dir) / PID_FILE


@contextmanager
def hold_pid_file(data_dir: Path, config_path: Path) -> Iterator[Path]:
    """Write and lock ``data_dir/peer.pid`` for the block; ConfigError if another process holds
    it. The file is removed on the way out."""
    path = pid_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _lock(path, data_dir)
    try:
        record = {"pid": os.getpid(), "started": int(time.time()), "config": str(config_path)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        try:
            yield path
        finally:
            # Unlinked while still locked: a peer starting now creates a fresh file.
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _lock(path: Path, data_dir: Path) -> int:
    """An fd of ``path`` with the exclusive lock held; ConfigError if another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = _read(fd)
            os.close(fd)
            pid = other.get("pid", "?") if other else "?"
            raise ConfigError(
                f"a peer already runs on {data_dir} (pid {pid}): stop it first, or give this "
                "one another data_dir"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # locked a file its peer had just removed on its way out: try again


def running_peer(data_dir: Path) -> dict[str, Any] | None:
    """The pid record of the peer that runs on ``data_dir`` now, or None if none does."""
    path = pid_path(data_dir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: the peer runs
            return _read(fd) or {"pid": None}
        return None  # a file left by a peer that was killed: nobody holds it
    finally:
        os.close(fd)


def _read(fd: int) -> dict[str, Any] | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
