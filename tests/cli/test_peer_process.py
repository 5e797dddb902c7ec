"""`swarm peer run` and `swarm demo` as processes: their real output, and how they stop.

A real local chain (anvil) with three admitted hospitals; one peer process runs (the others
never start, so its rounds lapse: enough events to print). Signals go to the process as a
service manager (SIGTERM) or a terminal (SIGINT) sends them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.app import run
from localnet import network
from localnet.peers import write_peer_configs

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
#: what must never be in a peer's output, whatever it printed
CRASHES = ("Traceback", "ExceptionGroup", "MarkupError")


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    workdir = tmp_path_factory.mktemp("net")
    net = network.up(workdir, peers=3, params=network.swarm_params())
    try:
        yield write_peer_configs(net, workdir)
    finally:
        network.down(workdir)


def start(
    config: Path, tmp_path: Path, *args: str, verbose: bool = False
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """``python -m cli.app``, as localnet starts its peers."""
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    first = ["--verbose"] if verbose else []
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli.app",
                *first,
                "peer",
                "run",
                "--config",
                str(config),
                *args,
            ],
            stdout=o,
            stderr=e,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
    return proc, out, err


def wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode} before {text!r}:\n{path.read_text()}")
        time.sleep(0.2)
    pytest.fail(f"no {text!r} within {timeout} s:\n{path.read_text()}")


def stop(proc: subprocess.Popen[bytes], sig: int, timeout: float = 60) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"still running {timeout} s after {signal.Signals(sig).name}")


def test_rich_output_sigint_status_and_second_peer(
    configs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default (rich) output of a real peer prints its events (the fault: MarkupError on
    almost every step); `peer status` says it runs, with its pid; a second `peer run` on the
    same config is refused in one line; Ctrl-C (SIGINT) ends it with one "stopped" line and
    exit code 130 (the fault: a 90-line exception group) and removes its pid file."""
    proc, out, err = start(configs[0], tmp_path)
    try:
        wait_for(out, " started addrs=/ip4/127.0.0.1/", proc)
        wait_for(out, " joined round=", proc)
        code = run(["peer", "status", "--config", str(configs[0]), "--json"])
        status = json.loads(capsys.readouterr().out)
        assert code == 0 and status["running"] is True and status["pid"] == proc.pid
        code = run(["peer", "run", "--config", str(configs[0])])
        second = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(second) == 1 and f"(pid {proc.pid})" in second[0]
        assert stop(proc, signal.SIGINT) == 130
    finally:
        proc.kill()
        proc.wait()
    stdout, stderr = out.read_text(), err.read_text()
    assert not any(c in stdout + stderr for c in CRASHES), stdout + stderr
    assert stdout.splitlines()[-1].endswith("stopped signal=SIGINT")
    assert stdout.count("stopped") == 1
    assert not (configs[0].parent / "data" / "peer.pid").exists()
    run(["peer", "status", "--config", str(configs[0]), "--json"])
    assert json.loads(capsys.readouterr().out)["running"] is False


def test_json_output_and_sigterm(configs: list[Path], tmp_path: Path) -> None:
    """``--log-format json``: every line on stdout and stderr is one JSON object (events, and
    the libraries' log records, here with --verbose), each once (the fault: run as ``python -m
    cli.app`` the process had two copies of the CLI module and so two log handlers, and every
    record was written twice, once in plain text); SIGTERM ends the peer with a "stopped"
    event and exit 0."""
    proc, out, err = start(configs[1], tmp_path, "--log-format", "json", verbose=True)
    try:
        wait_for(out, '"event": "joined"', proc)
        assert stop(proc, signal.SIGTERM) == 0
    finally:
        proc.kill()
        proc.wait()
    events = [json.loads(line) for line in out.read_text().splitlines()]
    records = [json.loads(line) for line in err.read_text().splitlines()]
    assert events[0]["event"] == "started" and events[-1]["event"] == "stopped"
    assert events[-1]["fields"] == {"signal": "SIGTERM"}
    assert all(set(e) == {"timestamp", "level", "site", "event", "fields"} for e in events)
    assert all(r["event"] == "log" for r in records)
    assert records, "--verbose: the peer's steps are logged"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_demo_stops_the_chain_and_every_peer_on_a_signal(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    """`swarm demo` stopped by SIGTERM or SIGINT while its hospitals train (the fault: SIGTERM
    killed only the demo, and anvil and the peers ran on): every process it started is gone,
    its scratch directory removed, and it exits with 128 + the signal."""
    workdir = tmp_path / "demo"
    out = tmp_path / "stdout"
    with out.open("wb") as o:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.app", "demo", "--rounds", "50", "--peers", "3",
             "--dir", str(workdir), "--out", str(tmp_path / "out")],
            stdout=o, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
        )  # fmt: skip
    try:
        wait_for(out, "started 3 hospital peers", proc, timeout=180)
        started = _processes_under(workdir)
        assert len(started) >= 4, started  # anvil and three peers
        assert stop(proc, sig, timeout=90) == code
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while _processes_under(workdir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_under(workdir) == {}
    assert not workdir.exists()
    assert "Traceback" not in out.read_text()


def _processes_under(workdir: Path) -> dict[int, str]:
    """Live processes whose command line names ``workdir`` (anvil's state, a peer's config)."""
    found = {}
    needle = str(workdir.resolve()).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if needle in cmdline and state != "Z":
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found
