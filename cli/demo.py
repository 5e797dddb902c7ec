"""`swarm demo`: the README's main command."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from cli.common import console, print_table, short
from localnet import network
from swarm.ledger import LedgerClient, RpcChain


def demo(
    peers: Annotated[int, typer.Option("--peers", "-n", help="How many hospitals.")] = 4,
    workdir: Annotated[
        Path, typer.Option("--dir", help="Scratch directory (deleted at the end unless --keep).")
    ] = Path(".demo"),
    keep: Annotated[
        bool, typer.Option(help="Leave the chain running and the files in place.")
    ] = False,
) -> None:
    """Start a local chain, deploy the consortium contract, admit the hospitals, show the ledger.

    This is the consortium half of swarm. Training rounds between hospital peers come with the
    swarm issue (see docs/roadmap.md).
    """
    if (workdir / network.CONFIG_NAME).exists():
        network.down(workdir)
        shutil.rmtree(workdir)
    with console.status("starting a local chain (anvil), deploying, admitting hospitals…"):
        config = network.up(workdir, peers=peers)
    try:
        ledger = LedgerClient(RpcChain(config.chain_url), config.contract)
        console.print(f"chain     {config.chain_url} (chain id {config.chain_id})")
        console.print(f"contract  {config.contract}, admin {config.admin_address}")
        print_table(
            "Members on the ledger",
            ["name", "address", "peer id", "listens on", "status"],
            [
                [
                    m.name,
                    m.address,
                    short(m.peer_id, 14),
                    ", ".join(m.multiaddrs),
                    "active" if m.active else "removed",
                ]
                for m in ledger.members()
            ],
        )
        p = ledger.params()
        windows = " / ".join(
            str(w)
            for w in (p.join_window, p.key_window, p.commit_window, p.merge_window, p.ack_window)
        )
        print_table(
            "Consortium parameters",
            ["parameter", "value"],
            [
                ["min peers", p.min_peers],
                ["join / key / commit / merge / ack windows (s)", windows],
                ["CKKS parameter set", p.ckks_params_id],
                ["task id", short(p.task_id, 16)],
                ["initial model hash", short(p.initial_model_hash, 16)],
                ["metrics reported", "yes" if p.metrics_enabled else "no"],
                ["latest model", short(ledger.latest_model(), 16)],
                ["rounds so far", ledger.current_round()],
            ],
        )  # fmt: skip
        console.print(
            f"{len(ledger.events())} events on the ledger so far: `swarm audit` reads them"
        )
    finally:
        if keep:
            console.print(f"left running; stop with: swarm localnet down --dir {workdir}")
        else:
            network.down(workdir)
            shutil.rmtree(workdir, ignore_errors=True)
