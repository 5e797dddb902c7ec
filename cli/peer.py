"""`swarm peer`: what a hospital's operator runs."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from cli.common import (
    ChainUrlOpt,
    ContractOpt,
    JsonOpt,
    console,
    load_identity,
    print_json,
    resolve_chain,
)
from swarm.errors import ConfigError

if TYPE_CHECKING:
    from swarm.peer import PeerHooks

app = typer.Typer(help="Set up and run this hospital's peer.")

#: Test hooks for `swarm peer run` (tests/e2e/faulty_peer.py sets them); None in real use.
PEER_HOOKS: PeerHooks | None = None

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", envvar="SWARM_PEER_CONFIG", help="The peer's config file.")
]


@app.command("init")
def init(
    keystore: Annotated[Path, typer.Option("--keystore", "-k", help="This hospital's key file.")],
    site: Annotated[
        str, typer.Option(help="Which of the task's sites is this hospital's data, e.g. Cleveland.")
    ],
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    listen: Annotated[
        list[str] | None,
        typer.Option(help="Where the peer listens (repeatable). Default /ip4/0.0.0.0/tcp/4001."),
    ] = None,
    task: Annotated[str, typer.Option(help="The consortium's task.")] = "heart-disease-uci/logreg",
    data_dir: Annotated[Path, typer.Option(help="Checkpoints and round data.")] = Path(
        "swarm-data"
    ),
    password_file: Annotated[
        Path | None, typer.Option(help="File with the key's password, for unattended runs.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Config file to write.")] = Path(
        "peer.toml"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing config file.")] = False,
) -> None:
    """Write this hospital's peer config: its key, the ledger, where it listens, its data."""
    from swarm.config import PeerConfig
    from swarm.training import get_task

    url, address = resolve_chain(chain_url, contract)
    if address is None:
        raise ConfigError("no contract given: pass --contract (or SWARM_CONTRACT)")
    if not keystore.exists():
        raise ConfigError(f"{keystore}: no such key file (make one: swarm keys new)")
    sites = get_task(task).sites
    if site not in sites:
        raise ConfigError(f"site {site!r} is not one of the task's sites: {', '.join(sites)}")
    if out.exists() and not force:
        raise ConfigError(f"{out} exists (use --force to overwrite)")
    config = PeerConfig(
        keystore=keystore.resolve(),
        password_file=password_file.resolve() if password_file else None,
        chain_url=url,
        contract=address,
        listen=tuple(listen or ["/ip4/0.0.0.0/tcp/4001"]),
        task=task,
        site=site,
        data_dir=data_dir.resolve(),
    )
    out.write_text(config.to_toml())
    console.print(f"wrote {out}: run it with `swarm peer run --config {out}`")


@app.command("run")
def run(
    config_path: ConfigOpt = Path("peer.toml"),
    rounds: Annotated[
        int | None, typer.Option(help="Stop once the ledger has this many finalized rounds.")
    ] = None,
    plain: Annotated[bool, typer.Option(help="Plain log lines (for files and services).")] = False,
) -> None:
    """Run the peer: join rounds, train on local data, exchange encrypted updates, merge when
    chosen, and keep the finalized models (checkpoints in the data directory)."""
    import dataclasses

    import trio

    from swarm.config import PeerConfig
    from swarm.ledger import LedgerClient, connect
    from swarm.peer import Peer

    config = PeerConfig.load(config_path)
    if rounds is not None:
        config = dataclasses.replace(config, rounds=rounds)
    identity = load_identity(config.keystore, config.password_file)
    ledger = LedgerClient(connect(config.chain_url), config.contract, identity)
    if not ledger.is_member(identity.address):
        raise ConfigError(f"{identity.address} is not an active member of this consortium")

    def show(kind: str, data: dict[str, Any]) -> None:
        text = " ".join(f"{k}={_short(v)}" for k, v in data.items())
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        if plain:
            print(f"{stamp} [{config.site}] {kind} {text}", flush=True)
        else:
            style = {"finalized": "green", "warning": "yellow", "lapsed": "red"}.get(kind, "")
            line = Text(f"{stamp} ")
            line.append(config.site, style="bold")
            line.append(f" {kind}", style=style)
            line.append(f" {text}")
            console.print(line, highlight=False)

    peer = Peer(config, identity, ledger, on_event=show, hooks=PEER_HOOKS)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_sigterm, nursery.cancel_scope)
            await peer.run()
            nursery.cancel_scope.cancel()

    trio.run(main)


async def _stop_on_sigterm(scope: Any) -> None:
    import trio

    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


@app.command("status")
def status(config_path: ConfigOpt = Path("peer.toml"), json_out: JsonOpt = False) -> None:
    """This peer's newest checkpoint next to the ledger's latest model and current round."""
    from swarm.config import PeerConfig
    from swarm.identity import read_keystore_address
    from swarm.ledger import LedgerClient, connect
    from swarm.training.checkpoint import latest_checkpoint

    config = PeerConfig.load(config_path)
    address = read_keystore_address(config.keystore)
    ledger = LedgerClient(connect(config.chain_url), config.contract)
    ck = latest_checkpoint(config.data_dir / "checkpoints")
    latest = ledger.latest_model()
    rid = ledger.current_round()
    state = ledger.round(rid).state.name.lower() if rid else "none"
    info = {
        "address": address,
        "member": ledger.is_member(address),
        "site": config.site,
        "checkpoint_round": ck.round_id if ck else None,
        "checkpoint_model": ck.model_hash if ck else None,
        "ledger_latest_model": latest,
        "in_sync": bool(ck and ck.model_hash == latest),
        "current_round": rid,
        "current_round_state": state,
    }
    if json_out:
        print_json(info)
        return
    console.print(
        f"peer       {address} ({config.site}), member: {'yes' if info['member'] else 'NO'}"
    )
    console.print(
        f"checkpoint round {info['checkpoint_round'] or '-'}, model "
        f"{('0x' + ck.model_hash.hex()[:16]) if ck else '-'}"
    )
    console.print(f"ledger     latest model 0x{latest.hex()[:16]}, round {rid} {state}")
    console.print(
        "in sync" if info["in_sync"] else "not in sync (the peer catches up when it runs)"
    )
