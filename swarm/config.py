"""A hospital peer's configuration: one TOML file, parsed once at the edge into frozen values.

[identity]
keystore = "key.json"             # relative paths are relative to this file
password_file = "password"        # optional; else $SWARM_PASSWORD or a prompt

[ledger]
chain_url = "http://127.0.0.1:8545"
contract = "0x..."

[p2p]
listen = ["/ip4/0.0.0.0/tcp/4001"]

[task]
name = "heart-disease-uci/logreg"
site = "Cleveland"                # which of the task's sites is this hospital's data
seed = 0

[training]                        # optional: overrides of the task's tuned defaults
epochs = 1

[peer]
data_dir = "data"                 # checkpoints, received blobs, round logs
rounds = 0                        # stop after this many finalized rounds (0: run forever)
report_metrics = true
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.errors import ConfigError


@dataclass(frozen=True)
class TrainingOptions:
    """Overrides of the task's tuned training defaults; None keeps the task's value."""

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    fedprox_mu: float | None = None

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
    password_file: Path | None = None
    listen: tuple[str, ...] = ("/ip4/0.0.0.0/tcp/4001",)
    training: TrainingOptions = field(default_factory=TrainingOptions)
    rounds: int = 0
    report_metrics: bool = True
    #: seconds between looks at the ledger
    poll_s: float = 0.5

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
        try:
            options = TrainingOptions(**training)
        except TypeError as exc:
            raise ConfigError(f"config: [training]: {exc}") from exc
        password_file = ident.get("password_file")
        listen = p2p.get("listen", ["/ip4/0.0.0.0/tcp/4001"])
        if not isinstance(listen, list) or not all(isinstance(a, str) for a in listen):
            raise ConfigError("config: [p2p] listen must be a list of multiaddrs")
        return cls(
            keystore=rel(need(ident, "keystore", "identity")),
            password_file=rel(password_file) if password_file else None,
            chain_url=str(need(ledger, "chain_url", "ledger")),
            contract=str(need(ledger, "contract", "ledger")),
            listen=tuple(listen),
            task=str(task.get("name", "heart-disease-uci/logreg")),
            site=str(need(task, "site", "task")),
            seed=int(task.get("seed", 0)),
            training=options,
            data_dir=rel(str(peer.get("data_dir", "data"))),
            rounds=int(peer.get("rounds", 0)),
            report_metrics=bool(peer.get("report_metrics", True)),
            poll_s=float(peer.get("poll_s", 0.5)),
        )

    def to_toml(self) -> str:
        def q(value: object) -> str:
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, int | float):
                return repr(value)
            text = str(value).replace("\\", "\\\\").replace('"', '\\"')
            return f'"{text}"'

        overrides = [f"{k} = {v!r}" for k, v in self.training.given().items()]
        lines = [
            "# swarm peer configuration (see docs/operator-guide.md)",
            "[identity]",
            f"keystore = {q(self.keystore)}",
            *([f"password_file = {q(self.password_file)}"] if self.password_file else []),
            "",
            "[ledger]",
            f"chain_url = {q(self.chain_url)}",
            f"contract = {q(self.contract)}",
            "",
            "[p2p]",
            "listen = [" + ", ".join(q(a) for a in self.listen) + "]",
            "",
            "[task]",
            f"name = {q(self.task)}",
            f"site = {q(self.site)}",
            f"seed = {self.seed}",
            "",
            "[training]  # overrides of the task's tuned defaults (epochs, lr, fedprox_mu, ...)",
            *overrides,
            "",
            "[peer]",
            f"data_dir = {q(self.data_dir)}",
            f"rounds = {self.rounds}",
            f"report_metrics = {q(self.report_metrics)}",
            f"poll_s = {self.poll_s!r}",
            "",
        ]
        return "\n".join(lines)
