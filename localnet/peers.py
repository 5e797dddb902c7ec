"""Hospital peer processes of a local network: their config files, starting and stopping them.

Each peer is a separate OS process (`swarm peer run --config ...`) with its own libp2p host on
loopback, exactly as a hospital would run it; only the machine is shared.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from localnet.network import HEART_SITES, LocalnetConfig, PeerEntry, slug
from localnet.process import Stoppable, terminate, terminate_all
from swarm.config import PeerConfig, TrainingOptions


@dataclass
class PeerProcess:
    name: str
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    pid: int = 0

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        # Not our child (started by an earlier `swarm localnet up`): ask /proc, and make sure
        # the PID still is a peer (PIDs are reused) and not a zombie.
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return b"peer" in cmdline and state != "Z"


def peer_dir(workdir: Path, entry: PeerEntry) -> Path:
    return Path(workdir) / "peers" / slug(entry.name)


def write_peer_configs(
    net: LocalnetConfig,
    workdir: Path,
    *,
    task: str = "heart-disease-uci/logreg",
    sites: tuple[str, ...] = HEART_SITES,
    seed: int = 0,
    rounds: int = 0,
    training: TrainingOptions | None = None,
) -> list[Path]:
    """One config file per hospital, next to its key: ``peers/<name>/peer.toml``.

    A network started with a task file (``network.up(task=...)``) gives each peer ``[task]
    file``, its own ``data`` and ``site``; ``task``, ``sites`` and ``seed`` are then unused.
    Without one, every peer runs the built-in ``task`` at its site of ``sites``."""
    paths = []
    task_file = Path(net.task_file) if net.task_file else None
    for i, entry in enumerate(net.peers):
        folder = peer_dir(Path(workdir).resolve(), entry)
        config = PeerConfig(
            keystore=Path(entry.keystore),
            password_file=Path(net.password_file),
            chain_url=net.chain_url,
            contract=net.contract,
            listen=(entry.listen,),
            task=task,
            task_file=task_file,
            data=Path(entry.data) if task_file and entry.data else None,
            site=entry.site if task_file and entry.site else sites[i % len(sites)],
            seed=seed,
            training=training or TrainingOptions(),
            data_dir=folder / "data",
            rounds=rounds,
            poll_s=0.3,
        )
        path = folder / "peer.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(config.to_toml())
        paths.append(path)
    return paths


def start_peer(
    config_path: Path,
    *,
    detach: bool = False,
    verbose: bool = True,
    env: dict[str, str] | None = None,
    module: str = "cli.app",
) -> PeerProcess:
    """Run `swarm peer run` for one config in its own process, logging next to the config.
    ``module`` is the entry point (a test runs a launcher that injects faults)."""
    log_path = config_path.parent / "peer.log"
    cmd = [sys.executable, "-m", module]
    if verbose:
        cmd.append("--verbose")
    cmd += ["peer", "run", "--config", str(config_path), "--plain"]
    logfile = log_path.open("ab")
    process = subprocess.Popen(
        cmd,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=detach,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, **(env or {})},
    )
    logfile.close()
    return PeerProcess(config_path.parent.name, config_path, log_path, process, process.pid)


def stop_peer(peer: PeerProcess, *, timeout: float = 10.0, kill: bool = False) -> None:
    """SIGTERM (or SIGKILL, as a crash would), then wait for the process to go."""
    sig = signal.SIGKILL if kill else signal.SIGTERM
    terminate(peer.pid, peer.alive, peer.process, timeout=timeout, sig=sig)


def stop_peers(peers: list[PeerProcess], *, timeout: float = 10.0, kill: bool = False) -> None:
    """Stop every peer at once: SIGTERM (or SIGKILL) to all, then one wait for all of them."""
    sig = signal.SIGKILL if kill else signal.SIGTERM
    terminate_all([Stoppable(p.pid, p.alive, p.process) for p in peers], timeout=timeout, sig=sig)


PIDS_FILE = "peers.json"


def save_pids(workdir: Path, procs: list[PeerProcess]) -> None:
    data = [{"name": p.name, "pid": p.pid, "config": str(p.config_path)} for p in procs]
    (Path(workdir) / PIDS_FILE).write_text(json.dumps(data, indent=2) + "\n")


def load_pids(workdir: Path) -> list[PeerProcess]:
    path = Path(workdir) / PIDS_FILE
    if not path.exists():
        return []
    return [
        PeerProcess(
            d["name"], Path(d["config"]), Path(d["config"]).parent / "peer.log", pid=d["pid"]
        )
        for d in json.loads(path.read_text())
    ]
