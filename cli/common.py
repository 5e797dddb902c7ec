"""Options and helpers shared by the commands: where the ledger is, whose key, how to print."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from swarm.errors import ConfigError, PasswordUnavailableError
from swarm.identity import Identity, load_keystore, read_keystore_address
from swarm.ledger import LedgerClient, connect

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
    return url, address


def ledger_client(
    chain_url: str | None, contract: str | None, identity: Identity | None = None
) -> LedgerClient:
    url, address = resolve_chain(chain_url, contract)
    if address is None:
        raise ConfigError("no contract given: pass --contract (or SWARM_CONTRACT)")
    return LedgerClient(connect(url), address, identity)


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
    """Rows may hold rich markup: escape (``rich.markup.escape``) what comes from the ledger."""
    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
