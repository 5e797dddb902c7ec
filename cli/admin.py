"""`swarm admin`: what a consortium admin does on the ledger."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cli.common import (
    ChainUrlOpt,
    ContractOpt,
    JsonOpt,
    PasswordFileOpt,
    console,
    ledger_client,
    load_identity,
    print_json,
    resolve_chain,
)
from swarm.errors import ConfigError
from swarm.ledger import LedgerClient, Params, check_member_card, connect

app = typer.Typer(
    help="Deploy the consortium's contract, admit and remove hospitals, set parameters."
)

AdminKeyOpt = Annotated[
    Path,
    typer.Option(
        "--keystore", "-k", envvar="SWARM_KEYSTORE", help="The admin's encrypted key file."
    ),
]

MinPeersOpt = Annotated[
    int | None, typer.Option(help="Fewest hospitals a round may proceed with (at least 2).")
]
JoinOpt = Annotated[int | None, typer.Option(help="Seconds a round stays open for joining.")]
KeyOpt = Annotated[int | None, typer.Option(help="Seconds the key steward has to publish the key.")]
CommitOpt = Annotated[int | None, typer.Option(help="Seconds to train, encrypt and commit.")]
MergeOpt = Annotated[
    int | None, typer.Option(help="Seconds the merge peer has after commits close.")
]
AckOpt = Annotated[int | None, typer.Option(help="Seconds to decrypt and acknowledge the model.")]
CkksOpt = Annotated[int | None, typer.Option(help="CKKS parameter-set id (see docs/crypto.md).")]
TaskOpt = Annotated[
    str | None, typer.Option(help="Task/model name; the ledger stores its sha256 as the task id.")
]
InitialOpt = Annotated[
    str | None, typer.Option(help="sha256 (hex) of the initial model, the first round's base.")
]
MetricsOpt = Annotated[
    bool | None,
    typer.Option("--metrics/--no-metrics", help="Hospitals report test metrics per model."),
]


def _hex32(value: str, name: str) -> bytes:
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError as exc:
        raise ConfigError(f"--{name} is not hex") from exc
    if len(raw) != 32:
        raise ConfigError(f"--{name} must be 32 bytes (64 hex digits)")
    return raw


def _merge_params(
    base: Params,
    min_peers: int | None,
    join_window: int | None,
    key_window: int | None,
    commit_window: int | None,
    merge_window: int | None,
    ack_window: int | None,
    ckks_params_id: int | None,
    task: str | None,
    initial_model_hash: str | None,
    metrics: bool | None,
) -> Params:
    changes: dict[str, object] = {
        k: v
        for k, v in {
            "min_peers": min_peers,
            "join_window": join_window,
            "key_window": key_window,
            "commit_window": commit_window,
            "merge_window": merge_window,
            "ack_window": ack_window,
            "ckks_params_id": ckks_params_id,
            "metrics_enabled": metrics,
        }.items()
        if v is not None
    }
    if task is not None:
        changes["task_id"] = hashlib.sha256(task.encode()).digest()
    if initial_model_hash is not None:
        changes["initial_model_hash"] = _hex32(initial_model_hash, "initial-model-hash")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@app.command("deploy")
def deploy(
    keystore: AdminKeyOpt,
    chain_url: ChainUrlOpt = None,
    password_file: PasswordFileOpt = None,
    min_peers: MinPeersOpt = None,
    join_window: JoinOpt = None,
    key_window: KeyOpt = None,
    commit_window: CommitOpt = None,
    merge_window: MergeOpt = None,
    ack_window: AckOpt = None,
    ckks_params_id: CkksOpt = None,
    task: TaskOpt = None,
    initial_model_hash: InitialOpt = None,
    metrics: MetricsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Deploy a new consortium contract. Your key becomes its first admin.

    Unset parameters take the defaults of docs/admin-guide.md. Prints the contract's address:
    every hospital's config needs it.
    """
    from localnet.network import default_params

    identity = load_identity(keystore, password_file)
    url, _ = resolve_chain(chain_url, None)
    params = _merge_params(
        default_params(task or "heart-disease-uci/logreg"),
        min_peers, join_window, key_window, commit_window, merge_window, ack_window,
        ckks_params_id, None, initial_model_hash, metrics,
    )  # fmt: skip
    chain = connect(url)
    ledger = LedgerClient.deploy(chain, identity, params)
    if json_out:
        print_json({"contract": ledger.address, "chain_url": url, "chain_id": chain.chain_id})
    else:
        console.print(f"deployed SwarmLedger at [bold]{ledger.address}[/] on {url}")


@app.command("add-member")
def add_member(
    keystore: AdminKeyOpt,
    name: Annotated[
        str, typer.Option(help="Display name of the hospital, e.g. 'Cleveland Clinic'.")
    ],
    card: Annotated[
        Path | None,
        typer.Option(help="The hospital's member card: the JSON of `swarm keys show --json`."),
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="The hospital's address (without --card).")
    ] = None,
    public_key: Annotated[
        str | None, typer.Option(help="Its public key, hex (without --card).")
    ] = None,
    multiaddr: Annotated[
        list[str] | None,
        typer.Option(help="Where its peer listens, e.g. /ip4/10.0.0.5/tcp/4001 (repeatable)."),
    ] = None,
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Admit a hospital. Its public key must belong to its address (the contract checks)."""
    if card is not None:
        try:
            card_data = json.loads(card.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read member card {card}: {exc}") from exc
    elif address and public_key:
        card_data = {"address": address, "public_key": public_key}
    else:
        raise ConfigError("give --card, or both --address and --public-key")
    account, key, peer_id = check_member_card(card_data)
    ledger = ledger_client(chain_url, contract, load_identity(keystore, password_file))
    ledger.add_member(account, key, name, multiaddr or [], peer_id)
    console.print(f"admitted {escape(name)} ({account}, peer {peer_id})")


@app.command("remove-member")
def remove_member(
    keystore: AdminKeyOpt,
    address: Annotated[str, typer.Argument(help="Address of the hospital to remove.")],
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Remove a hospital. Its record stays on the ledger; it can no longer take part."""
    ledger = ledger_client(chain_url, contract, load_identity(keystore, password_file))
    ledger.remove_member(address)
    console.print(f"removed {address}")


@app.command("set-params")
def set_params(
    keystore: AdminKeyOpt,
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    password_file: PasswordFileOpt = None,
    min_peers: MinPeersOpt = None,
    join_window: JoinOpt = None,
    key_window: KeyOpt = None,
    commit_window: CommitOpt = None,
    merge_window: MergeOpt = None,
    ack_window: AckOpt = None,
    ckks_params_id: CkksOpt = None,
    task: TaskOpt = None,
    initial_model_hash: InitialOpt = None,
    metrics: MetricsOpt = None,
) -> None:
    """Change consortium parameters; the ones not given keep their current values.

    Running rounds keep the deadlines they already have.
    """
    ledger = ledger_client(chain_url, contract, load_identity(keystore, password_file))
    params = _merge_params(
        ledger.params(),
        min_peers, join_window, key_window, commit_window, merge_window, ack_window,
        ckks_params_id, task, initial_model_hash, metrics,
    )  # fmt: skip
    ledger.set_params(params)
    console.print("parameters updated")
