"""`swarm localnet`: a local consortium on this machine (anvil + contract + hospital keys)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from cli.common import JsonOpt, check_hospital_count, console, print_json, print_table
from localnet import network

app = typer.Typer(help="Run a local consortium on this machine, for trying swarm out and tests.")

DirOpt = Annotated[
    Path, typer.Option("--dir", help="Where the local network keeps its chain, keys and config.")
]


@app.command("up")
def up(
    peers: Annotated[
        int,
        typer.Option(
            "--peers",
            "-n",
            help="How many hospitals to admit (at least 3).",
            callback=check_hospital_count,
        ),
    ] = 4,
    workdir: DirOpt = network.DEFAULT_DIR,
    run_peers: Annotated[
        bool,
        typer.Option("--run-peers/--chain-only", help="Also start each hospital's peer process."),
    ] = True,
) -> None:
    """Start a local chain (anvil), deploy the contract, admit N hospitals with fresh keys, and
    run each hospital's peer as its own background process, training round after round.

    Everything keeps running (state under --dir) until `swarm localnet down`. Watch it with
    `swarm audit rounds` or the peers' logs (--dir/peers/*/peer.log).
    """
    from localnet.peers import save_pids, start_peer, write_peer_configs

    with console.status("starting anvil, deploying, admitting hospitals…"):
        params = network.swarm_params() if run_peers else None
        config = network.up(workdir, peers=peers, params=params)
        if run_peers:
            paths = write_peer_configs(config, workdir)
            save_pids(workdir, [start_peer(path, detach=True) for path in paths])
    console.print(
        f"chain     {config.chain_url} (chain id {config.chain_id}, anvil pid {config.anvil_pid})"
    )
    console.print(f"contract  {config.contract}")
    console.print(f"admin     {config.admin_address}  key {config.admin_keystore}")
    print_table(
        "Hospitals",
        ["name", "address", "listen", "key"],
        [[p.name, p.address, p.listen, p.keystore] for p in config.peers],
    )
    console.print(f"keys' password in {config.password_file} (a development network only)")


@app.command("down")
def down(
    workdir: DirOpt = network.DEFAULT_DIR,
    purge: Annotated[bool, typer.Option(help="Also delete the chain state and keys.")] = False,
) -> None:
    """Stop the peers (all at once) and the local chain. Their state stays in --dir unless
    --purge."""
    from localnet.peers import load_pids, stop_peers

    stop_peers(load_pids(workdir))
    was_running = network.down(workdir)
    console.print("stopped the local chain" if was_running else "the local chain was not running")
    if purge:
        shutil.rmtree(workdir)
        console.print(f"deleted {workdir}")


@app.command("status")
def status(workdir: DirOpt = network.DEFAULT_DIR, json_out: JsonOpt = False) -> None:
    """Whether the local chain runs, and where its contract and keys are."""
    config, alive = network.status(workdir)
    if json_out:
        print_json(
            {"running": alive, **config.__dict__, "peers": [p.__dict__ for p in config.peers]}
        )
        return
    console.print(f"chain     {config.chain_url}: {'running' if alive else 'stopped'}")
    console.print(f"contract  {config.contract}")
    console.print(f"hospitals {len(config.peers)}")
