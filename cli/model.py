"""`swarm model`: the consortium's model, for use outside swarm."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import (
    ChainUrlOpt,
    ContractOpt,
    check_address,
    console,
    ledger_client,
    resolve_chain,
)
from swarm.errors import ChainUnavailableError, CheckpointError, ConfigError, ContractNotFoundError

if TYPE_CHECKING:
    from swarm.training.checkpoint import Checkpoint

app = typer.Typer(help="The consortium's model: export it for use outside swarm.")

#: the ``format`` entry of an exported file's metadata
EXPORT_FORMAT = "swarm-model/1"


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="The safetensors file to write.")] = Path(
        "model.safetensors"
    ),
    config_path: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="SWARM_PEER_CONFIG",
            help="A peer's config: its newest checkpoint, its ledger. Default: peer.toml, "
            "unless --checkpoint is given.",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint file (round-NNNNNN.ckpt), or a folder of them (the newest).",
            show_default=False,
        ),
    ] = None,
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a finalized model as safetensors, with its ledger hash, round and task in the
    file's metadata.

    The model is the newest checkpoint of the peer's data directory (--config), or the
    checkpoint given. Its hash is checked against the model the ledger finalized in its round:
    a checkpoint the ledger did not finalize is refused. When no chain is given or it cannot be
    reached the file is still written, says so, and its metadata records ``ledger_check``.
    """
    from safetensors.torch import save

    from swarm._files import write_atomic
    from swarm.config import PeerConfig
    from swarm.training.checkpoint import latest_checkpoint, read_checkpoint

    if out.exists() and not force:
        raise ConfigError(f"{out} exists (use --force to overwrite)")
    config = None
    if config_path is not None or checkpoint is None:
        config = PeerConfig.load(config_path or Path("peer.toml"))
    chain_url = chain_url or (config.chain_url if config else None)
    contract = contract or (config.contract if config else None)
    if contract is not None:
        check_address(contract, "contract")  # a typo is an error, not "could not check"
    source = checkpoint
    if source is None:
        assert config is not None
        source = config.data_dir / "checkpoints"
    if source.is_dir():
        ck = latest_checkpoint(source)
        if ck is None:
            raise ConfigError(f"{source}: no checkpoint in it (a peer writes one per round)")
    elif source.exists():
        ck = read_checkpoint(source)  # CheckpointError if corrupt
    else:
        raise ConfigError(f"{source}: no such checkpoint file or folder")
    if ck.round_id < 1:
        raise CheckpointError(f"{source}: round {ck.round_id} is not a finalized round")

    task = str(ck.config.get("task") or (config.task if config else ""))
    check = _check_against_ledger(ck, chain_url, contract)
    metadata = {
        "format": EXPORT_FORMAT,
        "model_hash": "0x" + ck.model_hash.hex(),
        "round": str(ck.round_id),
        "task": task,
        "ledger_check": check,
    }
    # the model only: a server optimizer's state (FedAdam's moments, ...) is the swarm's, not
    # the model's, though the ledger's hash covers both
    from swarm.merge.server import split_swarm_state

    weights, _server = split_swarm_state(ck.state_dict)
    write_atomic(out, save(weights, metadata=metadata))
    console.print(
        f"wrote {out}: round {ck.round_id}, model 0x{ck.model_hash.hex()}, "
        f"task {task or 'unknown'}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    console.print(check, markup=False, highlight=False, soft_wrap=True)


def _check_against_ledger(ck: Checkpoint, chain_url: str | None, contract: str | None) -> str:
    """``checked against the ledger ...`` if the ledger finalized this model in its round; a
    CheckpointError if it did not; ``not checked against the ledger: why`` if it cannot say."""
    from swarm.ledger import RoundState

    try:
        url, address = resolve_chain(chain_url, contract)
    except ConfigError as exc:
        if "no chain given" not in str(exc):
            raise
        return "not checked against the ledger: no chain given (--chain-url, --contract)"
    if address is None:
        return "not checked against the ledger: no contract given (--contract)"
    try:
        info = ledger_client(url, address).round(ck.round_id)
    except (ChainUnavailableError, ContractNotFoundError) as exc:
        return f"not checked against the ledger: {exc}"
    where = f"contract {address} at {url}"
    if info.state != RoundState.FINALIZED:
        raise CheckpointError(
            f"round {ck.round_id} has no finalized model on the ledger ({where}): "
            f"it is {info.state.name.lower()}; refusing to export it"
        )
    if info.final_model != ck.model_hash:
        raise CheckpointError(
            f"the checkpoint's model 0x{ck.model_hash.hex()} is not the model the ledger "
            f"finalized in round {ck.round_id} (0x{info.final_model.hex()}, {where}); "
            "refusing to export it"
        )
    return f"checked against the ledger: the model finalized in round {ck.round_id} ({where})"
