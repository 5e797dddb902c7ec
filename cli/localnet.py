"""`swarm localnet`: a local consortium on this machine (anvil + contract + hospital keys)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cli.common import JsonOpt, check_hospital_count, console, print_json, print_table
from localnet import network

app = typer.Typer(help="Run a local consortium on this machine, for trying swarm out and tests.")

DirOpt = Annotated[
    Path, typer.Option("--dir", help="Where the local network keeps its chain, keys and config.")
]
TaskFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--task-file",
        metavar="FILE",
        help="The consortium's task file (docs/own-data.md). Default: the heart study, "
        "examples/heart/task.toml, with its four hospitals' CSVs.",
        show_default=False,
    ),
]
DataOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--data",
        metavar="PATH",
        help="One hospital's own data (a CSV file, an image folder, a plugin's path): once per "
        "hospital, in order. Checked against the task before anything starts.",
        show_default=False,
    ),
]
SiteOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--site",
        metavar="NAME",
        help="Each hospital's name (its site label), one per --data, in order. Default: the "
        "data file's or folder's name.",
        show_default=False,
    ),
]


def hospital_count(value: int | None) -> int | None:
    """``--peers`` of ``localnet up`` and ``demo``: unset means one hospital per --data."""
    return None if value is None else check_hospital_count(value)


PeersOpt = Annotated[
    int | None,
    typer.Option(
        "--peers",
        "-n",
        help="How many hospitals to admit (at least 3). Default: one per --data (the heart "
        "study: 4); more than that reuse the data in turn.",
        callback=hospital_count,
        show_default=False,
    ),
]


def plan(
    task_file: Path | None, data: list[Path] | None, sites: list[str] | None, peers: int | None
) -> network.LocalTask:
    """The hospitals and their data, checked (one line: a ConfigError), with a spinner: the
    check reads every hospital's data and builds the task's model once."""
    with console.status("checking the task file and each hospital's data…"):
        return network.local_task(task_file, data or (), sites or (), peers)


def print_task(task: network.LocalTask) -> None:
    fp = task.fingerprint
    console.print(
        f"task      {escape(fp.name)} ({escape(str(task.task_file))}, seed {fp.seed}): "
        f"task id 0x{fp.task_id.hex()}, initial model 0x{fp.initial_model_hash.hex()}, "
        f"{fp.param_count:,} parameters",
        highlight=False,
        soft_wrap=True,
    )


@app.command("up")
def up(
    peers: PeersOpt = None,
    task_file: TaskFileOpt = None,
    data: DataOpt = None,
    site: SiteOpt = None,
    workdir: DirOpt = network.DEFAULT_DIR,
    run_peers: Annotated[
        bool,
        typer.Option("--run-peers/--chain-only", help="Also start each hospital's peer process."),
    ] = True,
) -> None:
    """Start a local chain (anvil), deploy the contract with the task file's id and initial
    model, admit one hospital per --data with fresh keys, and run each hospital's peer as its
    own background process on its own data, training round after round.

    Everything keeps running (state under --dir) until `swarm localnet down`. Watch it with
    `swarm audit rounds` or the peers' logs (--dir/peers/*/peer.log).
    """
    from localnet.peers import save_pids, start_peer, write_peer_configs

    task = plan(task_file, data, site, peers)
    with console.status("starting anvil, deploying, admitting hospitals…"):
        params = (
            network.swarm_params(fingerprint=task.fingerprint, hospitals=len(task.hospitals))
            if run_peers
            else None
        )
        config = network.up(workdir, params=params, task=task)
        if run_peers:
            paths = write_peer_configs(config, workdir)
            save_pids(workdir, [start_peer(path, detach=True) for path in paths])
    console.print(
        f"chain     {config.chain_url} (chain id {config.chain_id}, anvil pid {config.anvil_pid})"
    )
    console.print(f"contract  {config.contract}")
    console.print(f"admin     {config.admin_address}  key {config.admin_keystore}")
    print_task(task)
    print_table(
        "Hospitals",
        ["name", "site", "data", "address", "listen"],
        [[p.name, p.site, p.data, p.address, p.listen] for p in config.peers],
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
    if config.task_file:
        console.print(f"task file {escape(config.task_file)}", highlight=False)
    console.print(f"hospitals {len(config.peers)}")
