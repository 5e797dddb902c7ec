"""Start and stop a local anvil node the way the project needs it.

- ``--prune-history N``: without it anvil keeps every old state on disk under $HOME and slows
  down as the chain grows (see docs/development.md). ``N`` (``KEPT_STATES``) is how many recent
  states it keeps in memory, each a full copy of the chain's state: that, not the blocks, is what
  grows its memory (``benchmarks/ledger_bench.py --memory``).
- Interval blocks no faster than every ``MIN_BLOCK_TIME`` (3) seconds: with an interval of 2 s
  or less, anvil 1.7.1 raises its in-memory state limit to 1,500 whatever ``--prune-history``
  says. Measured (4 members, full rounds): with 1 s blocks and 256 kept states 2.7 GB after
  4,000 transactions (the 1.7 GB a 200-round run reached); with 3 s blocks and 64 kept states
  266 MB.
- ``HOME`` points at the node's own directory, so nothing lands in the user's home.
- ``--state FILE`` with ``--state-interval``: the chain (code, storage, nonces, logs) survives a
  restart of the node, so a consortium's ledger is not lost with the process.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from localnet.process import terminate
from swarm.errors import ChainUnavailableError, ConfigError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
_BUNDLED = REPO_ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"

#: recent states anvil keeps in memory (``--prune-history N``). Reads at "latest" need a few
#: (with none, a call that resolves "latest" just before the next block fails with
#: BlockOutOfRangeError); the client's replay of a failed transaction reads the parent of its
#: block, a few blocks back at most. Blocks, receipts and logs are all kept regardless (the
#: audit reads every event from block 0), so ``--transaction-block-keeper`` is not used.
KEPT_STATES = 64

#: shortest interval between blocks, in seconds (see the module's docstring)
MIN_BLOCK_TIME = 3.0


def anvil_binary() -> Path:
    """The anvil executable: $SWARM_ANVIL, the one npm installed here, or one on PATH."""
    override = os.environ.get("SWARM_ANVIL")
    if override:
        return Path(override)
    if _BUNDLED.exists():
        return _BUNDLED
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise ConfigError("anvil not found: run scripts/setup.sh (npm ci) or set SWARM_ANVIL")


#: where the kernel takes ports for outgoing connections and port-0 listeners, if it says
#: nothing else (Linux's default ip_local_port_range)
DEFAULT_EPHEMERAL = (32768, 60999)
#: ports below the ephemeral range that free_port picks from
FIXED_PORTS_SPAN = 12000


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of ephemeral ports (/proc/sys/net/ipv4/ip_local_port_range)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and that the kernel will not hand out by
    itself later: one below its ephemeral range. A local network writes a peer's port into its
    config and onto the ledger seconds before the peer listens on it; a port from the ephemeral
    range (what binding port 0 gives) can meanwhile become the source port of any outgoing
    connection on the host (the peers' own, to anvil and to each other), and the peer then
    refuses to start ("port ... is already in use": seen in a 4-peer run)."""
    low, _high = ephemeral_range()
    first = max(1024, low - FIXED_PORTS_SPAN)
    candidates = list(range(first, low)) if low > first else []
    random.shuffle(candidates)
    for port in candidates[:256]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # no room below the range: the kernel's choice after all
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AnvilNode:
    """A running anvil process."""

    pid: int
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.workdir / "chain-state.json"

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        # A detached node is not our child: ask /proc, and make sure the PID is still anvil's
        # (PIDs are reused) and not a zombie waiting to be reaped.
        proc = Path(f"/proc/{self.pid}")
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return b"anvil" in cmdline and state != "Z"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (anvil writes its state file on the way out), then SIGKILL if it hangs."""
        terminate(self.pid, self.alive, self.process, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would: only the periodic state dump survives."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            if self.process is not None:
                self.process.wait()


def start_anvil(
    workdir: Path,
    *,
    port: int | None = None,
    block_time: float | None = None,
    state_interval: int = 1,
    kept_states: int = KEPT_STATES,
    detach: bool = False,
    timeout: float = 20.0,
) -> AnvilNode:
    """Start anvil with its state persisted in ``workdir`` (loaded again if it exists).

    ``block_time`` adds interval blocks (see below); a value under ``MIN_BLOCK_TIME`` is raised
    to it, or anvil's memory grows without bound.
    """
    if kept_states < 1:
        raise ConfigError("kept_states must be at least 1 (reads at 'latest' need one)")
    workdir = Path(workdir).resolve()
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    node = AnvilNode(pid=0, port=port, workdir=workdir)
    cmd = [
        str(anvil_binary()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        # Keep the last few states in memory (see KEPT_STATES): with none kept, a call that
        # resolves "latest" just before another peer's transaction is mined fails with
        # BlockOutOfRangeError; each one kept is a full copy of the state.
        "--prune-history",
        str(kept_states),
        "--state",
        str(node.state_file),
        "--state-interval",
        str(state_interval),
    ]
    if block_time:
        # Interval blocks on top of automine: the contract's deadlines are judged by
        # block.timestamp, which on an automine-only chain stands still while nobody sends a
        # transaction (an eth_call at "latest" runs with the latest block's timestamp), so a
        # round could never be seen to pass its deadline.
        if block_time < MIN_BLOCK_TIME:
            log.info(
                "anvil: interval blocks every %s s instead of %s s (bounded memory)",
                MIN_BLOCK_TIME,
                block_time,
            )
            block_time = MIN_BLOCK_TIME
        cmd += ["--block-time", f"{block_time:g}", "--mixed-mining"]
    env = {**os.environ, "HOME": str(home)}
    logfile = (workdir / "anvil.log").open("ab")
    process = subprocess.Popen(
        cmd,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=detach,  # a detached node outlives `swarm localnet up`
    )
    logfile.close()
    node.pid = process.pid
    node.process = None if detach else process
    _wait_ready(node, process, timeout)
    log.info("anvil %d listening on %s (state %s)", node.pid, node.url, node.state_file)
    return node


def _wait_ready(node: AnvilNode, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (node.workdir / "anvil.log").read_text(errors="replace")[-2000:]
            raise ChainUnavailableError(f"anvil exited with {process.returncode}:\n{tail}")
        try:
            if requests.post(node.url, json=body, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    process.kill()
    raise ChainUnavailableError(f"anvil did not answer on {node.url} within {timeout} s")
