"""A local consortium on one machine: anvil, the deployed contract, and N admitted hospitals.

``up`` writes everything under one directory (default ``.localnet/``):

    localnet.json         chain URL, contract address, anvil's PID, the task file, the
                          hospitals (each with its site label and its own data's path)
    password              the password of every key below (a development network only)
    admin/key.json        the consortium admin's keystore
    peers/<slug>/key.json each hospital's keystore
    chain/                anvil's state file, log and HOME

What the hospitals train is a task file and each hospital's own data (:func:`local_task`),
checked before anything starts; by default the heart study of this checkout (examples/heart).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from localnet.anvil import AnvilNode, free_port, start_anvil
from swarm.errors import ConfigError
from swarm.identity import DEV_SCRYPT_N, Identity, load_keystore, save_keystore
from swarm.ledger import LedgerClient, Params, RpcChain

if TYPE_CHECKING:
    from swarm.sizing import Throughput
    from swarm.training.task_id import TaskFingerprint
    from swarm.training.taskfile import TaskFile

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
    """A hospital's folder name: lowercase words joined by dashes, at most 40 characters. A
    trailing number (the second hospital on the same data, "... Budapest 2") survives the cut:
    truncating it away gave two hospitals one folder."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if len(text) <= 40:
        return text
    number = re.search(r"-[0-9]+$", text)
    tail = number.group(0) if number else ""
    return text[: 40 - len(tail)].rstrip("-") + tail


def swarm_params(
    task: str = DEFAULT_TASK,
    seed: int = 0,
    *,
    fingerprint: TaskFingerprint | None = None,
    hospitals: int = 4,
    **windows: int,
) -> Params:
    """Parameters for a local swarm: the task's real id and initial model hash
    (:func:`default_params`) and windows that suit ``hospitals`` peers on one machine (a dead
    peer costs a window, not a round). Each window is the small-model one of
    :data:`LOCAL_WINDOWS` (which holds training a small model, the key's making and anvil's
    blocks) plus :data:`LOCAL_SAFETY` times what the task's model adds on this machine: its
    bytes over loopback and its CKKS work on shared cores (:func:`local_throughput`,
    swarm.sizing). An 11M-parameter ResNet-18 commits in 60-70 s on a loaded 2-core machine,
    so a fixed 30 s window would lapse every round; the heart model adds nothing. ``windows``
    given are taken as they are."""
    import dataclasses

    from swarm.sizing import size_round

    params = default_params(task, seed, fingerprint=fingerprint)
    base = dict(LOCAL_WINDOWS)
    if fingerprint is not None:
        sizing = size_round(
            fingerprint.param_count,
            hospitals,
            local_throughput(hospitals),
            params_id=params.ckks_params_id,
        )
        for name, step in sizing.steps.items():
            base[name] += round(LOCAL_SAFETY * step.need_s)
    base.update(windows)
    return dataclasses.replace(params, **base)  # type: ignore[arg-type]


#: windows for a small model on one machine (the heart study's rounds take a second or two)
LOCAL_WINDOWS = {
    "join_window": 20,
    "key_window": 15,
    "commit_window": 30,
    "merge_window": 20,
    "ack_window": 20,
}
#: the margin on one machine, shared with other work: the ResNet-18 commit measured 60-70 s
#: with 3 peers and masking under CKKS set 1 (tests/e2e/test_image_task.py), about twice the
#: estimate; with 5 the commit window on 2 cores is 107 s for 3 peers and 138 s for 4 under set
#: 2 (half the bytes; 136 s and 180 s under set 1), 1.5-2x what set 1 took
LOCAL_SAFETY = 5.0


def local_throughput(hospitals: int, cores: int | None = None) -> Throughput:
    """What one of ``hospitals`` peers on this machine gets: every transfer crosses loopback,
    where the peer network carried 32 MB/s for one 100 MB push and 33 MB/s in all for ten
    pushes at once (docs/benchmarks.md, "Peer network goodput"): 30 MB/s, which the merge peer's
    fan-in shares like a hospital's link; the CKKS rates of docs/benchmarks.md (swarm.sizing's
    defaults) on the machine's cores shared by all hospitals (they encrypt, and decrypt, at
    the same time). Training, the key's making and the transactions are left out: they do
    not grow with the model, and :data:`LOCAL_WINDOWS` holds them."""
    from swarm.sizing import Throughput

    total = cores if cores is not None else (os.cpu_count() or 1)
    return Throughput(
        link_mb_s=30.0,
        cores=min(1.0, total / max(hospitals, 1)),
        train_s=0.0,
        tx_s=0.0,
        keygen_s=0.0,
    )


#: fewest hospitals a round proceeds with, and the least the contract accepts: with two
#: contributors, each key holder could subtract its own update from the sum and read the other's
#: (docs/threat-model.md)
MIN_PEERS = 3


def default_params(
    task: str = DEFAULT_TASK, seed: int = 0, *, fingerprint: TaskFingerprint | None = None
) -> Params:
    """The documented defaults (docs/admin-guide.md): the task's id and true initial-model hash,
    minPeers 3, the default CKKS parameter set (swarm.crypto.params.DEFAULT_PARAMS_ID: imported
    here, not at the top, since importing swarm.crypto loads TenSEAL and torch), metrics on.
    ``fingerprint`` is a task file's (:func:`swarm.training.taskfile.fingerprint`); without
    one, the built-in task ``task`` with ``seed``
    (:func:`swarm.training.task_id.task_fingerprint`)."""
    from swarm.crypto.params import DEFAULT_PARAMS_ID

    if fingerprint is None:
        from swarm.training.task_id import task_fingerprint

        fingerprint = task_fingerprint(task, seed)
    return Params(
        min_peers=MIN_PEERS,
        join_window=60,
        key_window=60,
        commit_window=120,
        merge_window=120,
        ack_window=60,
        ckks_params_id=DEFAULT_PARAMS_ID,
        task_id=fingerprint.task_id,
        initial_model_hash=fingerprint.initial_model_hash,
        metrics_enabled=True,
    )


#: This checkout (localnet runs from one): where the bundled heart study is.
REPO = Path(__file__).resolve().parent.parent
#: The default task: the UCI heart study as one task file plus each hospital's own CSV
#: (examples/heart, docs/own-data.md), in the order of :data:`HOSPITALS`.
HEART_TASK_FILE = REPO / "examples" / "heart" / "task.toml"
HEART_DATA = tuple(
    REPO / "examples" / "heart" / "data" / f"{stem}.csv"
    for stem in ("cleveland", "hungary", "switzerland", "va-long-beach")
)
#: The heart study's site labels, in the order of :data:`HOSPITALS`.
HEART_SITES = ("Cleveland", "Hungary", "Switzerland", "VA Long Beach")


@dataclass(frozen=True)
class Hospital:
    """One hospital of a local consortium."""

    name: str  # on the ledger, and its folder under peers/
    site: str = ""  # its peer's [task] site: the label in logs and reports
    data: Path | None = None  # its own data: a CSV file, an image folder, a plugin's


@dataclass(frozen=True)
class LocalTask:
    """What a local consortium trains: one task file, and each hospital's own data."""

    task_file: Path
    hospitals: tuple[Hospital, ...]
    fingerprint: TaskFingerprint  # what the ledger records (task id, initial model hash)


def local_task(
    task_file: Path | None = None,
    data: Sequence[Path] = (),
    sites: Sequence[str] = (),
    peers: int | None = None,
) -> LocalTask:
    """The hospitals of ``localnet up`` / ``demo``, checked before anything starts.

    One hospital per ``data`` path, in order (``sites`` label them, one each; default: each
    path's file or folder name); ``peers`` more than that reuse the paths in turn, fewer take
    the first. No task file and no data: the heart study (:data:`HEART_TASK_FILE`,
    :data:`HEART_DATA`). Every hospital's data is checked against the task the way ``swarm task
    check`` does, so a missing path, a bad task file or a CSV without a column of the schema is
    one line (a ConfigError) here, not a peer that dies after the chain is up."""
    from swarm.training.taskfile import TaskFile, default_site, fingerprint

    heart = not data and (task_file is None or Path(task_file).resolve() == HEART_TASK_FILE)
    if heart:
        data, names, sites = HEART_DATA, list(HOSPITALS), sites or HEART_SITES
    elif not data:
        raise ConfigError("no data: give each hospital's data with --data PATH, once each")
    paths = [Path(p).expanduser().resolve() for p in data]
    if sites and len(sites) != len(paths):
        raise ConfigError(
            f"{len(sites)} --site for {len(paths)} --data: give one site name per data path "
            "(or none)"
        )
    labels = list(sites) if sites else [default_site(p) for p in paths]
    if not heart:
        names = labels
    count = len(paths) if peers is None else peers
    if count < MIN_PEERS:
        raise ConfigError(
            f"{count} hospitals are too few: a consortium needs at least {MIN_PEERS} hospitals "
            "(with two, each could read the other's update; docs/threat-model.md)"
        )
    spec = TaskFile.load(Path(task_file) if task_file is not None else HEART_TASK_FILE)
    hospitals = assign_hospitals(names, labels, paths, count)
    for h in hospitals[: len(paths)]:  # each path once (the rest reuse them)
        assert h.data is not None
        _check_data(spec, h.data, h.site)
    return LocalTask(spec.path, hospitals, fingerprint(spec))


def assign_hospitals(
    names: Sequence[str], sites: Sequence[str], data: Sequence[Path], count: int
) -> tuple[Hospital, ...]:
    """``count`` hospitals over the ``data`` paths in turn (``names`` and ``sites`` label the
    paths; a path's second hospital is "NAME 2"). ConfigError when two would share a folder
    (peers/<slug of the name>): two data files of the same name, each needs a --site."""
    hospitals = []
    for i in range(count):
        k, turn = i % len(data), i // len(data)
        suffix = f" {turn + 1}" if turn else ""
        hospitals.append(Hospital(names[k] + suffix, sites[k] + suffix, data[k]))
    folders = [slug(h.name) for h in hospitals]
    if len(set(folders)) != len(folders) or not all(folders):
        raise ConfigError(
            "two hospitals would have the same name ("
            + ", ".join(h.site for h in hospitals)
            + "): give each a name with --site"
        )
    return tuple(hospitals)


def _check_data(spec: TaskFile, path: Path, site: str) -> None:
    """SiteDataError (one line naming the path) unless ``path`` is data the task can use."""
    from swarm.errors import SiteDataError
    from swarm.training.taskfile import check_site

    if not path.exists():
        raise SiteDataError(f"{path}: no such file or folder (--data)")
    report = check_site(spec, path, site)
    if report.problems:
        first = report.problems[0]
        more = len(report.problems) - 1
        raise SiteDataError(
            (first if str(path) in first or path.name in first else f"{path}: {first}")
            + (f" (and {more} more: swarm task check)" if more else "")
        )


@dataclass
class PeerEntry:
    name: str
    address: str
    peer_id: str
    keystore: str
    listen: str
    #: the hospital's [task] site label and its data ("" on a chain-only network of old)
    site: str = ""
    data: str = ""


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
    #: the task file the hospitals train ("": the built-in task of a library caller)
    task_file: str = ""

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
    workdir: Path = DEFAULT_DIR,
    *,
    peers: int = 4,
    params: Params | None = None,
    task: LocalTask | None = None,
) -> LocalnetConfig:
    """Start anvil (detached), deploy the contract, admit ``peers`` hospitals with fresh keys.

    With ``task`` (:func:`local_task`), its hospitals are admitted instead (``peers`` is
    ignored), the network records their sites and data, and ``params`` defaults to the task
    file's fingerprint; without, the hospitals are :func:`hospital_name`'s and the built-in
    task's (library callers and tests of old)."""
    if params is None and task is not None:
        params = default_params(fingerprint=task.fingerprint)
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
        task_file=str(task.task_file) if task else "",
    )
    hospitals = task.hospitals if task else [Hospital(hospital_name(i)) for i in range(peers)]
    for h in hospitals:
        keystore = workdir / "peers" / slug(h.name) / "key.json"
        identity = _key(keystore, password)
        chain.fund(identity.address, GAS_MONEY)
        listen = f"/ip4/127.0.0.1/tcp/{free_port()}"
        ledger.add_member_identity(identity, h.name, [listen])
        config.peers.append(
            PeerEntry(
                h.name,
                identity.address,
                identity.peer_id,
                str(keystore),
                listen,
                site=h.site,
                data=str(h.data) if h.data else "",
            )
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
