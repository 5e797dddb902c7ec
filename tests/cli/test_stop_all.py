"""`swarm localnet down` (and the demo's clean-up) stop every peer at once, not one by one."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.app import run
from localnet.peers import PeerProcess, stop_peers

#: a stand-in for a peer (its command line says "peer", as localnet's pid check wants): it
#: takes a second to shut down on SIGTERM, as a peer finishing its round log would
SLOW_TO_STOP = """
import signal, sys, time
def stop(signum, frame):
    time.sleep(1.0)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""
PEERS = 4


def start_slow_peers(n: int) -> list[subprocess.Popen[bytes]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SLOW_TO_STOP, "peer"],
            stdout=subprocess.PIPE,
            start_new_session=True,  # like `localnet up`'s detached peers
        )
        for _ in range(n)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    return procs


def test_stop_peers_signals_all_then_waits(tmp_path: Path) -> None:
    """Four peers that each take 1 s to stop (the fault: stopped one after the other, 4 s;
    with ten hospitals and a 10 s timeout each, minutes): all stopped in about 1 s."""
    procs = start_slow_peers(PEERS)
    peers = [PeerProcess(f"p{i}", tmp_path, tmp_path, p, p.pid) for i, p in enumerate(procs)]
    t0 = time.monotonic()
    stop_peers(peers, timeout=10)
    took = time.monotonic() - t0
    assert all(p.poll() == 0 for p in procs)  # each ran its SIGTERM handler, and was reaped
    assert took < 2.5, f"{took:.1f} s for {PEERS} peers"


def test_a_peer_that_hangs_is_killed_after_the_one_timeout(tmp_path: Path) -> None:
    """A peer that ignores SIGTERM is SIGKILLed once the shared timeout passes; the others
    are not held up by it."""
    hang = subprocess.Popen(
        [sys.executable, "-c", "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN)"
         "\nprint('ready', flush=True)\nwhile True: time.sleep(0.1)", "peer"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert hang.stdout is not None and hang.stdout.readline() == b"ready\n"
    procs = [hang, *start_slow_peers(2)]
    peers = [PeerProcess(f"p{i}", tmp_path, tmp_path, p, p.pid) for i, p in enumerate(procs)]
    t0 = time.monotonic()
    stop_peers(peers, timeout=1.5)
    assert time.monotonic() - t0 < 3.5
    assert hang.poll() == -9 and all(p.poll() == 0 for p in procs[1:])


def test_localnet_down_stops_detached_peers_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`swarm localnet down` on peers started by an earlier `localnet up` (not its children:
    it knows them by the pids in peers.json): all stopped at once, in about 1 s."""
    procs = start_slow_peers(PEERS)
    workdir = tmp_path / "ln"
    workdir.mkdir()
    (workdir / "peers.json").write_text(
        json.dumps(
            [
                {"name": f"p{i}", "pid": p.pid, "config": str(workdir / f"p{i}" / "peer.toml")}
                for i, p in enumerate(procs)
            ]
        )
    )
    gone = subprocess.Popen([sys.executable, "-c", "pass"])  # a pid that no anvil runs as
    gone.wait()
    (workdir / "localnet.json").write_text(
        json.dumps(
            {
                "chain_url": "http://127.0.0.1:9",
                "contract": "0x" + "00" * 20,
                "chain_id": 31337,
                "anvil_pid": gone.pid,
                "anvil_port": 9,
                "admin_address": "0x" + "00" * 20,
                "admin_keystore": "-",
                "password_file": "-",
                "peers": [],
            }
        )
    )
    t0 = time.monotonic()
    code = run(["localnet", "down", "--dir", str(workdir)])
    took = time.monotonic() - t0
    capsys.readouterr()
    assert code == 0
    for p in procs:
        p.wait(timeout=5)  # our children here, so reap them (localnet down cannot)
        assert p.returncode == 0
    assert took < 2.5, f"{took:.1f} s for {PEERS} peers"
    assert not any(Path(f"/proc/{p.pid}").exists() for p in procs)
