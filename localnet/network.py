"""A local consortium on one machine: anvil, the deployed contract, and N admitted hospitals.

``up`` writes everything under one directory (default ``.localnet/``):

    localnet.json         chain URL, contract address, anvil's PID, the hospitals
    password              the password of every key below (a development network only)
    admin/key.json        the consortium admin's keystore
    peers/<slug>/key.json each hospital's keystore
    chain/                anvil's state file, log and HOME
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localnet.anvil import AnvilNode, free_port, start_anvil
from swarm.errors import ConfigError
from swarm.identity import DEV_SCRYPT_N, Identity, load_keystore, save_keystore
from swarm.ledger import LedgerClient, Params, RpcChain

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(".localnet")
CONFIG_NAME = "localnet.json"
GAS_MONEY = 10**21  # 1000 ETH of a development chain per account
#: swarm.training.DEFAULT_TASK (not imported: that imports torch)
DEFAULT_TASK = "heart-disease-uci/logreg"

#: The four hospitals of the UCI Heart Disease data, one peer each (see docs/data.md).
HOSPITALS = (
    "Cleveland Clinic Foundation",
    "Hungarian Institute of Cardiology, Budapest",
    "University Hospital, Zurich and Basel",
    "V.A. Medical Center, Long Beach",
)


def hospital_name(i: int) -> str:
    return HOSPITALS[i] if i < len(HOSPITALS) else f"Hospital {i + 1}"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]


def swarm_params(task: str = DEFAULT_TASK, seed: int = 0, **windows: int) -> Params:
    """Parameters for a local swarm: the task's real id and initial model hash
    (:func:`default_params`) and windows that suit peers on one machine (a dead peer costs a
    window, not a round)."""
    import dataclasses

    base = dict(join_window=20, key_window=15, commit_window=30, merge_window=20, ack_window=20)
    base.update(windows)
    return dataclasses.replace(default_params(task, seed), **base)  # type: ignore[arg-type]


#: fewest hospitals a round proceeds with, and the least the contract accepts: with two
#: contributors, each key holder could subtract its own update from the sum and read the other's
#: (docs/threat-model.md)
MIN_PEERS = 3


def default_params(task: str = DEFAULT_TASK, seed: int = 0) -> Params:
    """The documented defaults (docs/admin-guide.md): the task's id and true initial-model hash
    (:func:`swarm.training.task_id.task_fingerprint`), minPeers 3, metrics on."""
    from swarm.training.task_id import task_fingerprint

    fingerprint = task_fingerprint(task, seed)
    return Params(
        min_peers=MIN_PEERS,
        join_window=60,
        key_window=60,
        commit_window=120,
        merge_window=120,
        ack_window=60,
        ckks_params_id=1,
        task_id=fingerprint.task_id,
        initial_model_hash=fingerprint.initial_model_hash,
        metrics_enabled=True,
    )


@dataclass
class PeerEntry:
    name: str
    address: str
    peer_id: str
    keystore: str
    listen: str


@dataclass
class LocalnetConfig:
    chain_url: str
    contract: str
    chain_id: int
    anvil_pid: int
    anvil_port: int
    admin_address: str
    admin_keystore: str
    password_file: str
    peers: list[PeerEntry] = field(default_factory=list)

    def save(self, workdir: Path) -> None:
        (workdir / CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, workdir: Path) -> LocalnetConfig:
        path = Path(workdir) / CONFIG_NAME
        if not path.exists():
            raise ConfigError(f"no local network in {workdir} (start one: swarm localnet up)")
        data = json.loads(path.read_text())
        peers = [PeerEntry(**p) for p in data.pop("peers", [])]
        return cls(**data, peers=peers)

    def password(self) -> str:
        return Path(self.password_file).read_text().strip()


def up(
    workdir: Path = DEFAULT_DIR, *, peers: int = 4, params: Params | None = None
) -> LocalnetConfig:
    """Start anvil (detached), deploy the contract, admit ``peers`` hospitals with fresh keys."""
    workdir = Path(workdir).resolve()
    if (workdir / CONFIG_NAME).exists():
        existing = LocalnetConfig.load(workdir)
        if AnvilNode(existing.anvil_pid, existing.anvil_port, workdir / "chain").alive():
            raise ConfigError(f"a local network is already up in {workdir} (swarm localnet down)")
    workdir.mkdir(parents=True, exist_ok=True)
    password_file = workdir / "password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(16) + "\n")
        os.chmod(password_file, 0o600)
    password = password_file.read_text().strip()

    node = start_anvil(workdir / "chain", detach=True, block_time=3)
    chain = RpcChain(node.url)
    admin_key = workdir / "admin" / "key.json"
    admin = _key(admin_key, password)
    chain.fund(admin.address, GAS_MONEY)
    ledger = LedgerClient.deploy(chain, admin, params or default_params())

    config = LocalnetConfig(
        chain_url=node.url,
        contract=ledger.address,
        chain_id=chain.chain_id,
        anvil_pid=node.pid,
        anvil_port=node.port,
        admin_address=admin.address,
        admin_keystore=str(admin_key),
        password_file=str(password_file),
    )
    for i in range(peers):
        name = hospital_name(i)
        keystore = workdir / "peers" / slug(name) / "key.json"
        hospital = _key(keystore, password)
        chain.fund(hospital.address, GAS_MONEY)
        listen = f"/ip4/127.0.0.1/tcp/{free_port()}"
        ledger.add_member_identity(hospital, name, [listen])
        config.peers.append(
            PeerEntry(name, hospital.address, hospital.peer_id, str(keystore), listen)
        )
    config.save(workdir)
    return config


def _key(path: Path, password: str) -> Identity:
    if path.exists():
        return load_keystore(path, password)
    identity = Identity.generate()
    save_keystore(identity, path, password, scrypt_n=DEV_SCRYPT_N)
    return identity


def down(workdir: Path = DEFAULT_DIR) -> bool:
    """Stop the local network's anvil (its state file stays). True if one was running."""
    config = LocalnetConfig.load(Path(workdir).resolve())
    node = AnvilNode(config.anvil_pid, config.anvil_port, Path(workdir).resolve() / "chain")
    running = node.alive()
    node.stop()
    return running


def status(workdir: Path = DEFAULT_DIR) -> tuple[LocalnetConfig, bool]:
    config = LocalnetConfig.load(Path(workdir).resolve())
    node = AnvilNode(config.anvil_pid, config.anvil_port, Path(workdir).resolve() / "chain")
    return config, node.alive()
