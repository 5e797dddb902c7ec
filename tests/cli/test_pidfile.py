"""``DATA_DIR/peer.pid``: `swarm peer status` tells whether the peer runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.app import run
from cli.pidfile import hold_pid_file, pid_path, running_peer
from swarm.errors import ConfigError
from swarm.identity import Identity, save_keystore

HOLDER = """
import sys, time
from pathlib import Path
from cli.pidfile import hold_pid_file
with hold_pid_file(Path(sys.argv[1]), Path("peer.toml")):
    print("held", flush=True)
    time.sleep(60)
"""


def test_pid_file_while_held(tmp_path: Path) -> None:
    """While a peer holds its data directory, status sees its pid and a second peer on the
    same directory is refused (the fault: two peers writing one directory's checkpoints and
    blobs); afterwards the file is gone and nothing runs."""
    data = tmp_path / "data"
    assert running_peer(data) is None
    with hold_pid_file(data, tmp_path / "peer.toml"):
        record = running_peer(data)
        assert record is not None and record["pid"] == os.getpid()
        assert record["config"] == str(tmp_path / "peer.toml")
        with (
            pytest.raises(ConfigError, match=f"already runs on .* \\(pid {os.getpid()}\\)"),
            hold_pid_file(data, tmp_path / "other.toml"),
        ):
            pass
    assert running_peer(data) is None and not pid_path(data).exists()


def test_pid_file_of_a_killed_peer_reads_as_not_running(tmp_path: Path) -> None:
    """A peer killed with SIGKILL leaves its pid file behind (the fault: a stale file, or a
    reused pid, read as a running peer): the lock died with it, so status says not running
    and a new peer starts."""
    data = tmp_path / "data"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        record = running_peer(data)
        assert record is not None and record["pid"] == holder.pid
        with (
            pytest.raises(ConfigError, match=f"pid {holder.pid}"),
            hold_pid_file(data, tmp_path / "peer.toml"),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    assert pid_path(data).exists()  # left behind...
    assert running_peer(data) is None  # ...but nobody holds it
    with hold_pid_file(data, tmp_path / "peer.toml"):
        assert running_peer(data)["pid"] == os.getpid()  # type: ignore[index]


def test_peer_status_says_whether_the_peer_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`swarm peer status` (the fault: it could not tell whether the peer runs) reads the pid
    file, and says so even when the chain is down (then it also prints the error, exit 1)."""
    key = tmp_path / "key.json"
    identity = Identity.generate()
    save_keystore(identity, key, "pw", scrypt_n=2**4)
    config = tmp_path / "peer.toml"
    config.write_text(
        f'[identity]\nkeystore = "{key}"\n[ledger]\nchain_url = "http://127.0.0.1:9"\n'
        'contract = "0x00000000000000000000000000000000000000C1"\n[task]\nsite = "Cleveland"\n'
    )
    argv = ["peer", "status", "--config", str(config), "--json"]
    code = run(argv)
    out, err = capsys.readouterr()
    info = json.loads(out)
    assert code == 1 and "cannot reach the chain" in err
    assert info["running"] is False and info["pid"] is None
    assert info["address"] == identity.address
    with hold_pid_file(tmp_path / "data", config):
        before = time.time()
        run(argv)
        info = json.loads(capsys.readouterr().out)
        assert info["running"] is True and info["pid"] == os.getpid()
        assert before - 5 <= info["running_since"] <= before + 1
        run(["peer", "status", "--config", str(config)])
        out = capsys.readouterr().out
        assert f"process    running, pid {os.getpid()}" in out
