"""`swarm task`: a consortium's task as the ledger knows it, and whether a site's data fits it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import JsonOpt, console, print_json
from swarm.errors import ConfigError

app = typer.Typer(
    help="The consortium's task: its id and model (info), and whether a hospital's data fits "
    "it (check)."
)

TaskSeedOpt = Annotated[
    int,
    typer.Option(
        "--seed",
        min=0,
        help="Seed of a built-in task's initial model (a task file holds its own seed).",
    ),
]


def _is_file(task: str) -> bool:
    return task.endswith(".toml") or Path(task).is_file()


def _round_bytes(param_count: int) -> tuple[int, int]:
    """About what one update and the aggregate weigh on the wire (swarm.sizing) under the
    default CKKS parameter set, the one new consortia get: a seeded ciphertext keeps one
    polynomial of 60-bit coefficients per ciphertext's values, and so does the aggregate, plus
    a seed per contributor (counted here for the fewest, 3)."""
    from swarm.sizing import round_bytes

    sizes = round_bytes(param_count, 3)
    return sizes.update, sizes.aggregate


@app.command("info")
def info(
    task: Annotated[
        str,
        typer.Argument(
            help="A task file (task.toml), or a built-in task's name (heart-disease-uci/logreg)."
        ),
    ],
    seed: TaskSeedOpt = 0,
    json_out: JsonOpt = False,
) -> None:
    """Print the task id and initial-model hash that `swarm admin deploy` records for this task,
    its model's parameter count and about how many bytes each round moves. Every peer checks
    the id and the hash at start."""
    from swarm.training.task_id import task_fingerprint
    from swarm.training.taskfile import TaskFile, fingerprint

    extra: dict[str, Any] = {}
    if _is_file(task):
        spec = TaskFile.load(Path(task))
        fp = fingerprint(spec)
        cfg = spec.training
        extra = {
            "kind": spec.kind,
            "file": str(spec.path),
            "local training": f"{cfg.optimizer}, {cfg.epochs} epoch(s), lr {cfg.lr:g}, "
            f"batch {cfg.batch_size}, fedprox mu {cfg.fedprox_mu:g}",
            "server optimizer": f"{spec.server.kind} (server lr {spec.server.lr:g})",
            "rounds": spec.rounds,
        }
    else:
        fp = task_fingerprint(task, seed)
    update, aggregate = _round_bytes(fp.param_count)
    rows: dict[str, Any] = {
        "task": fp.name,
        "seed": fp.seed,
        **extra,
        "task_id": "0x" + fp.task_id.hex(),
        "initial_model_hash": "0x" + fp.initial_model_hash.hex(),
        "param_count": fp.param_count,
        "update_bytes": update,
        "aggregate_bytes": aggregate,
    }
    if json_out:
        print_json(rows)
        return
    labels = {
        "task_id": "task id",
        "initial_model_hash": "initial model",
        "param_count": "parameters",
        "update_bytes": "update",
        "aggregate_bytes": "aggregate",
    }
    for key, value in rows.items():
        if key in ("update_bytes", "aggregate_bytes"):
            value = (
                f"about {_mb(value)} per hospital per round"
                if key == "update_bytes"
                else (f"about {_mb(value)} to each key holder per round")
            )
        elif key == "param_count":
            value = f"{value:,}"
        label = labels.get(key, key)
        console.print(f"{label:<18}{value}", markup=False, highlight=False, soft_wrap=True)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.0f} kB"


@app.command("check")
def check(
    task_file: Annotated[Path, typer.Argument(help="The consortium's task file (task.toml).")],
    data: Annotated[
        Path,
        typer.Option(help="This hospital's data: a CSV file, an image folder, or the plugin's."),
    ],
    site: Annotated[
        str | None, typer.Option(help="This hospital's name (default: the data's file name).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check this hospital's data against the task without training or sending anything:
    columns, types, categories, labels and their balance, rows. Says what is wrong, one line
    each, and exits with 2 when the data cannot be used."""
    from swarm.training.taskfile import TaskFile, check_site

    spec = TaskFile.load(task_file)
    if not data.exists():
        raise ConfigError(f"{data}: no such file or folder")
    report = check_site(spec, data.resolve(), site)
    if json_out:
        print_json(
            {
                "task": spec.name,
                "site": report.site,
                "rows": report.rows,
                "label_counts": report.label_counts,
                "problems": report.problems,
                "notes": report.notes,
                "ok": report.ok,
            }
        )
    else:
        counts = ", ".join(f"{k}: {v}" for k, v in report.label_counts.items()) or "none"
        console.print(
            f"{report.site}: {report.rows} rows for task {spec.name} (labels {counts})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        for note in report.notes:
            console.print(f"  note: {note}", markup=False, highlight=False, soft_wrap=True)
        for problem in report.problems:
            console.print(f"  problem: {problem}", markup=False, highlight=False, soft_wrap=True)
    if not report.ok:
        first = report.problems[0]
        raise ConfigError(first if str(data) in first else f"{data}: {first}")
