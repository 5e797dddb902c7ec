"""A hospital peer's configuration: one TOML file, parsed once at the edge into frozen values.

[identity]
keystore = "key.json"             # relative paths are relative to this file
password_file = "password"        # optional; else $SWARM_PASSWORD or a prompt

[ledger]
chain_url = "http://127.0.0.1:8545"
contract = "0x..."
events_url = ""                   # WebSocket for the ledger's events ("": anvil's own; "off":
                                  # poll for new blocks every poll_s instead)

[p2p]
listen = ["/ip4/0.0.0.0/tcp/4001"] # where the peer listens (0.0.0.0: every interface)
announce = []                      # what it announces; empty: its specific listen addresses
                                   # (others dial the address the ledger lists, not these)

[task]
file = "task.toml"                # the consortium's task file (its hash is the ledger's task id)
data = "/srv/swarm/cleveland.csv" # this hospital's own data (CSV file, image folder, plugin's)
site = "Cleveland"                # this hospital's name in logs (default: the data's name)
# or a built-in task: name = "heart-disease-uci/logreg", site = "Cleveland", seed = 0

[training]                        # optional: overrides of the task's tuned defaults
epochs = 1
device = "auto"                   # cpu | cuda | auto (cuda when this machine has a GPU)

[peer]
data_dir = "data"                 # checkpoints, received blobs, round logs
rounds = 0                        # stop after this many finalized rounds (0: run forever)
report_metrics = true
poll_s = 0.5                      # seconds between checks for a new block (no event stream)
reconcile_s = 5.0                 # seconds between reads of the ledger when nothing happens
keep_checkpoints = 20             # newest checkpoints kept on disk (0: keep every one)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarm.errors import ConfigError

if TYPE_CHECKING:
    from swarm.p2p.config import P2PConfig

#: checkpoints a peer keeps unless its config says otherwise (one per finalized round)
DEFAULT_KEEP_CHECKPOINTS = 20


@dataclass(frozen=True)
class TrainingOptions:
    """Overrides of the task's tuned training defaults; None keeps the task's value."""

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    fedprox_mu: float | None = None
    optimizer: str | None = None
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None
    device: str | None = None

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class PeerConfig:
    keystore: Path
    chain_url: str
    contract: str
    site: str
    data_dir: Path
    task: str = "heart-disease-uci/logreg"
    seed: int = 0
    #: the consortium's task file; None: the built-in task ``task`` with ``seed``
    task_file: Path | None = None
    #: this hospital's data for a task file (a CSV file, an image folder, what a plugin reads)
    data: Path | None = None
    password_file: Path | None = None
    listen: tuple[str, ...] = ("/ip4/0.0.0.0/tcp/4001",)
    #: what identify announces (never 0.0.0.0); empty: the specific listen addresses, if any
    announce: tuple[str, ...] = ()
    #: the bulk channel's TCP port (swarm/p2p/bulk.py): 0 any free one, None ("off") none
    bulk_port: int | None = 0
    training: TrainingOptions = field(default_factory=TrainingOptions)
    rounds: int = 0
    report_metrics: bool = True
    #: seconds between checks for a new block where the node streams no events
    poll_s: float = 0.5
    #: seconds between reads of the ledger when no event came (a missed event costs this)
    reconcile_s: float = 5.0
    #: the node's WebSocket endpoint for events; "": anvil's own (else none); "off": none
    events_url: str = ""
    #: how many of the newest checkpoints stay on disk (0: every one)
    keep_checkpoints: int = DEFAULT_KEEP_CHECKPOINTS
    #: processes that encrypt and decrypt a large model (swarm/peer/cores.py): 1 none (the
    #: peer's own process), 0 decide by the model's size and this host's cores
    crypto_workers: int = 0

    @classmethod
    def load(cls, path: Path) -> PeerConfig:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: no such config file (make one: swarm peer init)") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
        return cls.from_dict(raw, base=path.parent)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, base: Path) -> PeerConfig:
        def section(name: str) -> dict[str, Any]:
            value = raw.get(name, {})
            if not isinstance(value, dict):
                raise ConfigError(f"[{name}] must be a table")
            return value

        def need(sec: dict[str, Any], key: str, where: str) -> Any:
            if key not in sec:
                raise ConfigError(f"config: [{where}] needs '{key}'")
            return sec[key]

        def rel(value: str) -> Path:
            p = Path(value).expanduser()
            return p if p.is_absolute() else (base / p).resolve()

        ident, ledger, p2p = section("identity"), section("ledger"), section("p2p")
        task, training, peer = section("task"), section("training"), section("peer")
        options = _training_options(training)
        password_file = ident.get("password_file")
        listen, announce = _p2p_addresses(p2p)
        unknown = sorted(set(task) - {"file", "data", "site", "name", "seed"})
        if unknown:
            raise ConfigError(
                f"config: [task] has unknown key(s) {', '.join(unknown)}; "
                "known: file, data, site (or name, site, seed for a built-in task)"
            )
        task_file = data = None
        if "file" in task:
            if "name" in task or "seed" in task:
                raise ConfigError(
                    "config: [task] file and name/seed exclude each other (the task file holds "
                    "the task's name and seed)"
                )
            task_file = rel(str(task["file"]))
            data = rel(str(need(task, "data", "task")))
            site = str(task.get("site") or _default_site(data))
        else:
            site = str(need(task, "site", "task"))
        return cls(
            keystore=rel(need(ident, "keystore", "identity")),
            password_file=rel(password_file) if password_file else None,
            chain_url=str(need(ledger, "chain_url", "ledger")),
            contract=str(need(ledger, "contract", "ledger")),
            listen=listen,
            announce=announce,
            bulk_port=_bulk_port(p2p.get("bulk_port", 0)),
            task=str(task.get("name", "heart-disease-uci/logreg")),
            site=site,
            seed=_number(task, "seed", "task", int, 0, minimum=0),
            task_file=task_file,
            data=data,
            training=options,
            data_dir=rel(str(peer.get("data_dir", "data"))),
            rounds=_number(peer, "rounds", "peer", int, 0, minimum=0),
            report_metrics=_flag(peer, "report_metrics", "peer", True),
            poll_s=_number(peer, "poll_s", "peer", float, 0.5, minimum=0.0, above=True),
            reconcile_s=_number(peer, "reconcile_s", "peer", float, 5.0, minimum=0.0, above=True),
            events_url=_events_url(ledger.get("events_url", "")),
            keep_checkpoints=_number(
                peer, "keep_checkpoints", "peer", int, DEFAULT_KEEP_CHECKPOINTS, minimum=0
            ),
            crypto_workers=_number(peer, "crypto_workers", "peer", int, 0, minimum=0),
        )

    def p2p_config(self, **changes: Any) -> P2PConfig:
        """The peer network's settings of this config: ``[p2p]`` listen and announce, and the
        peer's member-list reconciliation (30 s: the ledger's membership events make the peer
        read the list at once; reading it, one call per member, every 2 s was most of an idle
        peer's CPU); ``changes`` override P2PConfig fields."""
        from swarm.p2p.config import P2PConfig

        values: dict[str, Any] = {
            "listen_addrs": self.listen,
            "announce_addrs": self.announce,
            "bulk_port": self.bulk_port,
            "membership_poll_s": 30.0,
        }
        values.update(changes)
        return P2PConfig(**values)

    def to_toml(self) -> str:
        def q(value: object) -> str:
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, int | float):
                return repr(value)
            text = str(value).replace("\\", "\\\\").replace('"', '\\"')
            return f'"{text}"'

        overrides = [f"{k} = {q(v)}" for k, v in self.training.given().items()]
        lines = [
            "# swarm peer configuration (see docs/operator-guide.md)",
            "[identity]",
            f"keystore = {q(self.keystore)}",
            *([f"password_file = {q(self.password_file)}"] if self.password_file else []),
            "",
            "[ledger]",
            f"chain_url = {q(self.chain_url)}",
            f"contract = {q(self.contract)}",
            *([f"events_url = {q(self.events_url)}"] if self.events_url else []),
            "",
            "[p2p]",
            "listen = [" + ", ".join(q(a) for a in self.listen) + "]",
            "# what this peer announces (never 0.0.0.0); others dial what the ledger lists",
            "announce = [" + ", ".join(q(a) for a in self.announce) + "]",
            "# TCP port of the bulk channel for large transfers: 0 any free one, or a fixed one",
            '# to open in the firewall, or "off" (docs/operator-guide.md)',
            f"bulk_port = {q('off') if self.bulk_port is None else self.bulk_port}",
            "",
            "[task]",
            *(
                [
                    "# the consortium's task file and this hospital's own data",
                    f"file = {q(self.task_file)}",
                    f"data = {q(self.data)}",
                    f"site = {q(self.site)}",
                ]
                if self.task_file is not None
                else [f"name = {q(self.task)}", f"site = {q(self.site)}", f"seed = {self.seed}"]
            ),
            "",
            "[training]  # overrides of the task's tuned defaults (epochs, lr, fedprox_mu, ...)",
            *overrides,
            "",
            "[peer]",
            f"data_dir = {q(self.data_dir)}",
            f"rounds = {self.rounds}",
            f"report_metrics = {q(self.report_metrics)}",
            f"poll_s = {self.poll_s!r}",
            f"reconcile_s = {self.reconcile_s!r}",
            f"keep_checkpoints = {self.keep_checkpoints}  # newest checkpoints kept (0: all)",
            "# processes that encrypt and decrypt a large model: 0 by its size and the cores,",
            "# 1 none (docs/operator-guide.md)",
            f"crypto_workers = {self.crypto_workers}",
            "",
        ]
        return "\n".join(lines)


# --- validation: every value checked once, here, with the key it came from -------------------


def _bulk_port(value: object) -> int | None:
    if value == "off":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(
            f'config: [p2p] bulk_port must be a TCP port (0 to 65535; 0: any free one) or "off": '
            f"{value!r}"
        )
    return value


def _events_url(value: object) -> str:
    text = str(value).strip() if isinstance(value, str) else None
    if text is None or not (text in ("", "off") or text.startswith(("ws://", "wss://"))):
        raise ConfigError(
            f'config: [ledger] events_url must be a ws:// or wss:// URL, "" or "off": {value!r}'
        )
    return text


#: [training] keys: (type, smallest allowed value, whether the value must be above it)
_TRAINING_RANGES: dict[str, tuple[type, float, bool]] = {
    "epochs": (int, 1, False),
    "batch_size": (int, 1, False),
    "lr": (float, 0.0, True),
    "momentum": (float, 0.0, False),
    "weight_decay": (float, 0.0, False),
    "fedprox_mu": (float, 0.0, False),
    "beta1": (float, 0.0, False),
    "beta2": (float, 0.0, False),
    "eps": (float, 0.0, True),
}
#: [training] keys whose value is one of a few words
_TRAINING_CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": ("sgd", "adamw"),
    "device": ("cpu", "cuda", "auto"),
}


def _default_site(data: Path) -> str:
    return data.stem or data.name or str(data)


def _training_options(training: dict[str, Any]) -> TrainingOptions:
    known = (*_TRAINING_RANGES, *_TRAINING_CHOICES)
    unknown = sorted(set(training) - set(known))
    if unknown:
        raise ConfigError(
            f"config: [training] has unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    values: dict[str, Any] = {}
    for key, choices in _TRAINING_CHOICES.items():
        if key in training:
            if training[key] not in choices:
                raise ConfigError(
                    f"config: [training] {key} must be one of {', '.join(choices)}, "
                    f"not {training[key]!r}"
                )
            values[key] = training[key]
    for key, (kind, minimum, above) in _TRAINING_RANGES.items():
        if key in training:
            values[key] = _number(training, key, "training", kind, None, minimum, above=above)
    return TrainingOptions(**values)


def _number(
    sec: dict[str, Any],
    key: str,
    where: str,
    kind: type,
    default: Any,
    minimum: float | None = None,
    *,
    above: bool = False,
) -> Any:
    """``sec[key]`` as an int (or float: ints accepted), at least (or above) ``minimum``."""
    if key not in sec:
        return default
    value = sec[key]
    # bool is an int to Python, and true is not a number of epochs
    ok = isinstance(value, int | float) if kind is float else isinstance(value, int)
    if isinstance(value, bool) or not ok:
        noun = "a whole number" if kind is int else "a number"
        raise ConfigError(f"config: [{where}] {key} must be {noun}, not {value!r}")
    if minimum is not None and (value <= minimum if above else value < minimum):
        bound = f"above {minimum:g}" if above else f"at least {minimum:g}"
        raise ConfigError(f"config: [{where}] {key} must be {bound}, not {value!r}")
    return kind(value)


def _flag(sec: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = sec.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"config: [{where}] {key} must be true or false, not {value!r}")
    return value


# --- [p2p] ---------------------------------------------------------------------------------


def _p2p_addresses(p2p: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``[p2p] listen`` and ``announce`` of a config file, checked (:func:`check_p2p_addresses`)."""
    found: dict[str, list[str]] = {}
    for key, default in (("listen", ["/ip4/0.0.0.0/tcp/4001"]), ("announce", [])):
        value = p2p.get(key, default)
        if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
            raise ConfigError(f"config: [p2p] {key} must be a list of multiaddrs")
        found[key] = value
    return check_p2p_addresses(found["listen"], found["announce"], where="config: [p2p] ")


def check_p2p_addresses(
    listen: list[str] | tuple[str, ...],
    announce: list[str] | tuple[str, ...],
    *,
    where: str = "",
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``listen``: plain TCP multiaddrs, at least one; ``announce``: dialable ones (a specific
    host, a real port; never 0.0.0.0). ConfigError names the key (``where`` prefixes it)."""
    from swarm.p2p.config import dialable_multiaddrs, tcp_multiaddrs

    if not listen:
        raise ConfigError(f"{where}listen needs at least one multiaddr")
    try:
        checked_listen = tcp_multiaddrs(listen)
    except ConfigError as exc:
        raise ConfigError(f"{where}listen: {exc}") from exc
    try:
        checked_announce = dialable_multiaddrs(announce, what="announce address")
    except ConfigError as exc:
        raise ConfigError(f"{where}announce: {exc}") from exc
    return checked_listen, checked_announce
