"""Options and helpers shared by the commands: where the ledger is, whose key, how to print."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from eth_utils import is_checksum_address, is_hex_address
from rich.console import Console
from rich.table import Table
from rich.text import Text

from swarm.errors import ConfigError, PasswordUnavailableError
from swarm.identity import Identity, load_keystore, read_keystore_address
from swarm.ledger import LedgerClient, connect

if TYPE_CHECKING:
    from swarm.config import PeerConfig

console = Console()
err_console = Console(stderr=True)

LOCALNET_FILE = Path(".localnet") / "localnet.json"

ChainUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--chain-url",
        envvar="SWARM_CHAIN_URL",
        help="JSON-RPC URL of the consortium's chain. Default: the local network's, if one is up.",
        show_default=False,
    ),
]
ContractOpt = Annotated[
    str | None,
    typer.Option(
        "--contract",
        envvar="SWARM_CONTRACT",
        help="Address of the consortium's SwarmLedger contract. Default: the local network's.",
        show_default=False,
    ),
]
KeystoreOpt = Annotated[
    Path,
    typer.Option(
        "--keystore",
        "-k",
        envvar="SWARM_KEYSTORE",
        help="Encrypted key file (made by `swarm keys new`).",
    ),
]
PasswordFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        envvar="SWARM_PASSWORD_FILE",
        help="Read the key's password from this file (for automation). "
        "The SWARM_PASSWORD environment variable works too; otherwise you are asked.",
        show_default=False,
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON for machines instead of a table.")
]


def _localnet() -> dict[str, Any] | None:
    if LOCALNET_FILE.exists():
        data: dict[str, Any] = json.loads(LOCALNET_FILE.read_text())
        return data
    return None


def resolve_chain(chain_url: str | None, contract: str | None) -> tuple[str, str | None]:
    """The chain URL and contract address from options, environment, or the local network."""
    local = _localnet()
    url = chain_url or (local["chain_url"] if local else None)
    if url is None:
        raise ConfigError("no chain given: pass --chain-url (or SWARM_CHAIN_URL)")
    address = contract or (local["contract"] if local and url == local["chain_url"] else None)
    return url, (check_address(address, "contract") if address is not None else None)


def check_address(value: str, what: str = "address") -> str:
    """``value`` if it is an Ethereum address (0x and 40 hex digits; a mixed-case one must carry
    a valid checksum), else a ConfigError that says so."""
    if not is_hex_address(value):
        raise ConfigError(f"{what} {value!r} is not an Ethereum address: 0x and 40 hex digits")
    digits = value[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(value):
        raise ConfigError(
            f"{what} {value!r} has a wrong checksum (its upper and lower case letters): "
            "a digit may be mistyped"
        )
    return value


#: Fewest hospitals a consortium may run with (the contract's MIN_PEERS_FLOOR): with two, each
#: could subtract its own update from the sum and read the other's (docs/threat-model.md).
MIN_HOSPITALS = 3


def check_hospital_count(value: int) -> int:
    """Typer callback for ``--peers`` of ``localnet up`` and ``demo``: one line below 3."""
    if value < MIN_HOSPITALS:
        raise typer.BadParameter(
            f"{value} is too few: a consortium needs at least {MIN_HOSPITALS} hospitals (with "
            "two, each could read the other's update; docs/threat-model.md)"
        )
    return value


def ledger_client(
    chain_url: str | None, contract: str | None, identity: Identity | None = None
) -> LedgerClient:
    url, address = resolve_chain(chain_url, contract)
    if address is None:
        raise ConfigError("no contract given: pass --contract (or SWARM_CONTRACT)")
    return LedgerClient(connect(url), address, identity)


def check_peer_config(config: PeerConfig) -> None:
    """What a peer config's file syntax cannot say: the contract is an address, the task (file
    or built-in name) and site resolve, and the task's training config with the overrides is one
    that can train. The data itself is read when the peer starts (`swarm task check` reads it
    without starting anything)."""
    import dataclasses

    from swarm.training.taskfile import consortium_task

    check_address(config.contract, "config: [ledger] contract")
    if config.data is not None and not config.data.exists():
        raise ConfigError(f"config: [task] data {config.data}: no such file or folder")
    if config.task_file is None:
        from swarm.training import get_task

        try:
            get_task(config.task)
        except ValueError as exc:
            raise ConfigError(f"config: [task] name: {exc}") from None
    resolved = consortium_task(
        task_file=config.task_file,
        data=config.data,
        site=config.site,
        name=config.task,
        seed=config.seed,
    )
    try:
        dataclasses.replace(resolved.task.default_config, **config.training.given())
    except ValueError as exc:
        raise ConfigError(f"config: [training]: {exc}") from None


def print_error(message: str) -> None:
    """``error: message`` on stderr, the message as plain text (a ``[section]`` in it is not
    rich markup), never wrapped: one line a script can match."""
    err_console.print(
        Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True
    )


class Interrupted(BaseException):
    """A stop signal (SIGTERM, SIGHUP) turned into an exception, so clean-up code runs.

    A BaseException, like KeyboardInterrupt, so ``except Exception`` does not swallow it; but
    not a KeyboardInterrupt, which typer turns into a silent exit 130."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Interrupted` (SIGINT already raises
    KeyboardInterrupt), so ``finally`` blocks run and stop what the command started."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Within the block (starting processes and writing down their pids), SIGINT, SIGTERM and
    SIGHUP wait: the first one is raised when the block is done, so that what the block started
    is known to the clean-up that follows."""
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, handler) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if received:
        raise KeyboardInterrupt if received[0] == signal.SIGINT else Interrupted(received[0])


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Within the block (clean-up), SIGINT, SIGTERM and SIGHUP are ignored: an impatient
    second Ctrl-C must not leave half of what the command started running."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def read_password(password_file: Path | None, *, confirm: bool = False) -> str:
    """The key's password: a file, $SWARM_PASSWORD, or a prompt on a terminal."""
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\n")
        except OSError as exc:
            raise ConfigError(f"cannot read password file {password_file}: {exc}") from exc
    env = os.environ.get("SWARM_PASSWORD")
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise PasswordUnavailableError(
            "no password: pass --password-file or set SWARM_PASSWORD (no terminal to ask on)"
        )
    password: str = typer.prompt("Key password", hide_input=True, confirmation_prompt=confirm)
    return password


def load_identity(keystore: Path, password_file: Path | None) -> Identity:
    read_keystore_address(keystore)  # a missing or broken file is reported before any prompt
    return load_keystore(keystore, read_password(password_file))


def short(value: str | bytes | None, n: int = 10) -> str:
    if value is None:
        return "-"
    text = "0x" + value.hex() if isinstance(value, bytes) else value
    return text if len(text) <= n + 4 else f"{text[: n + 2]}…"


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Rows may hold rich markup: escape (``rich.markup.escape``) what comes from the ledger.

    On a narrow terminal cells wrap between words but no word is cut short (an address or a
    name ending in "…" is worse than a wide table)."""
    table = Table(title=title, title_justify="left")
    cells = [[str(v) for v in row] for row in rows]
    for i, c in enumerate(columns):
        words = [w for row in cells for w in Text.from_markup(row[i]).plain.split()]
        table.add_column(c, min_width=max((len(w) for w in words), default=None))
    for row in cells:
        table.add_row(*row)
    console.print(table, crop=False)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
