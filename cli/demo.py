"""`swarm demo`: the README's main command: a whole swarm on this machine."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cli.common import (
    console,
    print_table,
    short,
    signals_deferred,
    signals_ignored,
    stop_signals_raise,
)
from cli.localnet import DataOpt, PeersOpt, SiteOpt, TaskFileOpt, plan, print_task

if TYPE_CHECKING:
    from localnet.network import LocalnetConfig, LocalTask
    from localnet.peers import PeerProcess
    from swarm.audit import ConsortiumHistory
    from swarm.ledger import LedgerClient, LedgerEvent


def demo(
    rounds: Annotated[int, typer.Option("--rounds", "-r", help="How many rounds to finalize.")] = 8,
    peers: PeersOpt = None,
    task_file: TaskFileOpt = None,
    data: DataOpt = None,
    site: SiteOpt = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Where the metrics table (CSV) and plot (PNG) go.")
    ] = Path("demo-output"),
    workdir: Annotated[
        Path, typer.Option("--dir", help="Scratch directory for the chain, keys and peers.")
    ] = Path(".demo"),
    timeout: Annotated[int, typer.Option(help="Give up after this many seconds.")] = 900,
    keep: Annotated[
        bool, typer.Option(help="Keep the scratch directory (logs, checkpoints).")
    ] = False,
) -> None:
    """Run a swarm of hospitals on this machine, end to end.

    Starts a local Ethereum chain (anvil), deploys the consortium contract with the task file's
    id and initial model, admits one hospital per --data (default: the four hospitals of the
    UCI Heart Disease study, examples/heart), and runs each as its own OS process with its own
    libp2p host and only its own data. They train, exchange CKKS-encrypted updates, merge and
    agree on each round's model on the ledger. Ends with every hospital's accuracy and AUC per
    round (a table, a CSV and a PNG plot), read back from the ledger.
    """
    task = plan(task_file, data, site, peers)  # one line for bad data, before anything starts
    print_task(task)
    with stop_signals_raise():  # SIGTERM and SIGHUP too end in the clean-up below
        _run_demo(task, rounds, out_dir, workdir, timeout, keep)


def _run_demo(
    task: LocalTask, rounds: int, out_dir: Path, workdir: Path, timeout: int, keep: bool
) -> None:
    from localnet import network
    from localnet.peers import start_peer, stop_peers, write_peer_configs
    from swarm.audit import build_history
    from swarm.ledger import LedgerClient, RpcChain

    if (workdir / network.CONFIG_NAME).exists():
        network.down(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    processes: list[PeerProcess] = []
    try:
        # A signal meanwhile waits until anvil's pid and the peers' are known to the clean-up.
        with (
            signals_deferred(),
            console.status("starting a local chain (anvil), deploying, admitting hospitals…"),
        ):
            params = network.swarm_params(
                fingerprint=task.fingerprint, hospitals=len(task.hospitals)
            )
            net = network.up(workdir, params=params, task=task)
            configs = write_peer_configs(net, workdir, rounds=rounds)
            console.print(f"chain {net.chain_url}, contract {net.contract}")
            ledger = LedgerClient(RpcChain(net.chain_url), net.contract)
            processes.extend(start_peer(path) for path in configs)
        names = {p.address: p.name for p in net.peers}
        console.print(
            f"started {len(processes)} hospital peers (logs: {workdir}/peers/*/peer.log): "
            + ", ".join(p.name for p in net.peers)
        )
        finished = False
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} rounds"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            bar = progress.add_task("swarm learning", total=rounds)
            shown = 0
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                done = ledger.last_finalized_round()
                rid = ledger.current_round()
                state = ledger.round(rid).state.name.lower() if rid else "starting"
                progress.update(
                    bar, completed=min(done, rounds), description=f"round {rid}: {state}"
                )
                head = ledger.w3.eth.block_number
                if head >= shown:
                    for event in ledger.events(from_block=shown, to_block=head):
                        if event.name in _SHOWN:
                            progress.console.print(_describe(event, names))
                    shown = head + 1
                if done >= rounds and not any(p.alive() for p in processes):
                    finished = True
                    break
                dead = [
                    p for p in processes if not p.alive() and p.process and p.process.returncode
                ]
                if dead:
                    raise typer.Exit(_report_crash(dead))
                time.sleep(0.5)
        if not finished:
            console.print(f"[red]the swarm did not finish {rounds} rounds in {timeout} s[/]")
        history = build_history(ledger.events())
        _report(history, names, ledger, workdir, net, out_dir)
        if not finished:
            raise typer.Exit(1)
    finally:
        with signals_ignored():  # stopping everything is what a second Ctrl-C wants anyway
            stop_peers(processes)  # all at once
            if (workdir / network.CONFIG_NAME).exists():
                network.down(workdir)
            if not keep:
                shutil.rmtree(workdir, ignore_errors=True)


_SHOWN = ("RoundFinalized", "RoundLapsed", "MergePeerReplaced", "KeyStewardReplaced")


def _describe(event: LedgerEvent, names: dict[str, str]) -> str:
    from swarm.audit.timeline import describe

    return f"round {event.args['round']}: {describe(event, names)}"


def _report_crash(dead: list[PeerProcess]) -> int:
    for p in dead:
        log = p.log_path.read_text(errors="replace").splitlines()[-15:]
        code = p.process.returncode if p.process else "?"
        console.print(f"[red]peer {escape(p.name)} exited with {code}[/]:")
        console.print(escape("\n".join(log)), highlight=False)
    return 1


def _report(
    history: ConsortiumHistory,
    names: dict[str, str],
    ledger: LedgerClient,
    workdir: Path,
    net: LocalnetConfig,
    out_dir: Path,
) -> None:
    from localnet.peers import peer_dir
    from swarm.training.checkpoint import latest_checkpoint

    rows = []
    for r in history.rounds.values():
        for m in sorted(r.metrics, key=lambda m: names.get(m["account"], "")):
            rows.append(
                (
                    r.round_id,
                    names.get(m["account"], m["account"]),
                    m["accuracy"],
                    m["auc"],
                    m["test_samples"],
                )
            )
    print_table(
        "Each hospital's test accuracy and AUC per round (the ledger's MetricsReported events)",
        ["round", "hospital", "accuracy", "AUC", "test samples"],
        [[r, n, f"{a:.3f}", f"{u:.3f}", s] for r, n, a, u, s in rows],
    )
    finals = [
        (r.round_id, r.outcome, short(r.final_model), len(r.contributors), r.total_samples)
        for r in history.rounds.values()
    ]
    print_table(
        "Rounds on the ledger",
        ["round", "outcome", "model", "contributors", "samples"],
        [list(f) for f in finals],
    )
    latest = ledger.latest_model()
    agree = []
    for entry in net.peers:
        ck = latest_checkpoint(peer_dir(workdir, entry) / "data" / "checkpoints")
        agree.append(
            (
                entry.name,
                ck.round_id if ck else "-",
                "yes" if ck and ck.model_hash == latest else "NO",
            )
        )
    print_table(
        f"Every hospital's newest checkpoint vs the ledger's latest model {short(latest)}",
        ["hospital", "checkpoint round", "same hash"],
        [list(a) for a in agree],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / "metrics.csv"
    csv.write_text(
        "round,hospital,accuracy,auc,test_samples\n"
        + "".join(f'{r},"{n}",{a:.6f},{u:.6f},{s}\n' for r, n, a, u, s in rows)
    )
    png = out_dir / "metrics.png"
    _plot(rows, png)
    console.print(f"wrote {csv} and {png}")


def _plot(rows: list[tuple[int, str, float, float, int]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for metric, ax, index in (("accuracy", axes[0], 2), ("AUC", axes[1], 3)):
        for name in sorted({r[1] for r in rows}):
            points = sorted((r[0], r[index]) for r in rows if r[1] == name)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
        ax.set_title(f"test {metric} per hospital")
        ax.set_xlabel("round")
        ax.set_ylabel(metric)
        ax.set_ylim(0.4, 1.0)
        ax.grid(alpha=0.3)
        rounds = sorted({r[0] for r in rows})
        if rounds:
            ax.set_xticks(rounds)
    axes[1].legend(loc="lower right", fontsize=8)
    hospitals = len({r[1] for r in rows})
    fig.suptitle(f"swarm: {hospitals} hospitals, CKKS-encrypted aggregation, no central server")
    fig.savefig(path, dpi=110)
    plt.close(fig)
