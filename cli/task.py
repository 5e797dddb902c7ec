"""`swarm task`: what the ledger records about a task (its id, its initial model)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import JsonOpt, console, print_json

app = typer.Typer(help="The tasks a consortium can train, as the ledger knows them.")

TaskSeedOpt = Annotated[
    int,
    typer.Option(
        "--seed", min=0, help="Seed of the task's initial model (the peers' [task] seed)."
    ),
]


@app.command("info")
def info(
    name: Annotated[str, typer.Argument(help="Task name, e.g. heart-disease-uci/logreg.")],
    seed: TaskSeedOpt = 0,
    json_out: JsonOpt = False,
) -> None:
    """Print the task id and initial-model hash that `swarm admin deploy` records for this task
    and seed, and its model's parameter count. Every peer checks both at start."""
    from swarm.training.task_id import task_fingerprint

    fp = task_fingerprint(name, seed)
    if json_out:
        print_json(
            {
                "task": fp.name,
                "seed": fp.seed,
                "task_id": "0x" + fp.task_id.hex(),
                "initial_model_hash": "0x" + fp.initial_model_hash.hex(),
                "param_count": fp.param_count,
            }
        )
        return
    for label, value in (
        ("task", f"{fp.name} (seed {fp.seed})"),
        ("task id", "0x" + fp.task_id.hex()),
        ("initial model", "0x" + fp.initial_model_hash.hex()),
        ("parameters", str(fp.param_count)),
    ):
        console.print(f"{label:<14}{value}", markup=False, highlight=False, soft_wrap=True)
