"""Issue 13's Done criterion: a consortium trains a CSV task it brought itself, from the CLI alone.

An outside team's study the project never saw (30-day readmission: different column names,
numeric, binary and categorical columns with missing values, four hospitals of different sizes
and class balance) is declared in a task file, each hospital's CSV is checked with ``swarm task
check``, and ``swarm localnet up --task-file ... --data ...`` trains it on 4 peer processes. Every
command runs as a user types it (``python -m cli.app`` in a subprocess, from the user's own
folder, with relative paths); the test itself only reads what came out: the ledger, the exported
models and the pooled test rows. The study trains with AdamW locally and FedAvgM on the
aggregate, so the server optimizer's state is computed at every key holder, hashed with the
model, checkpointed and served to peers that catch up: all four checkpoints must still agree
bit for bit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

#: rounds the swarm must finalize (each ~10 s on 2 cores): enough to beat the majority class
ROUNDS = 3
#: (file name, rows, mean age, share of emergency admissions): sizes and case mix differ, and
#: with them each hospital's share of readmissions
HOSPITALS = (
    ("northgate", 420, 58.0, 0.45),
    ("riverside", 260, 66.0, 0.60),
    ("hillcrest", 170, 72.0, 0.30),
    ("lakeshore", 110, 49.0, 0.25),
)

TASK_FILE = """\
[task]
name = "readmission-30d"
kind = "csv"
seed = 7
rounds = 10
description = "30-day readmission after a cardiac admission (a synthetic study)"

[data]
label = "readmitted_30d"
positive = ["yes"]
negative = ["no"]
test_fraction = 0.3
missing = ["", "NA", "n/a"]

[[data.features]]
column = "patient_age"
type = "numeric"
range = [20.0, 100.0]

[[data.features]]
column = "systolic_mmhg"
type = "numeric"
range = [90.0, 190.0]

[[data.features]]
column = "hba1c_pct"
type = "numeric"
range = [4.0, 12.0]

[[data.features]]
column = "body_mass_index"
type = "numeric"
mean = 28.0
std = 5.0

[[data.features]]
column = "smokes"
type = "binary"
positive = "Y"
negative = "N"

[[data.features]]
column = "admitted_via"
type = "categorical"
categories = ["emergency", "clinic", "transfer"]

[model]
architecture = "logreg"

[training]
optimizer = "adamw"
epochs = 3
batch_size = 16
lr = 0.05
weight_decay = 0.0001
fedprox_mu = 0.1

[server]
optimizer = "fedavgm"
lr = 1.0
momentum = 0.5
"""

COLUMNS = (
    "record_no",
    "patient_age",
    "systolic_mmhg",
    "hba1c_pct",
    "body_mass_index",
    "smokes",
    "admitted_via",
    "readmitted_30d",
)


def write_hospitals(folder: Path, seed: int = 1307) -> list[Path]:
    """Four hospitals' CSV files drawn from one logistic model of readmission (so the task is
    learnable and one model fits every site), with each hospital's own case mix, size and
    missing cells; a record number the task does not use rides along, as in a real export."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows, mean_age, emergency in HOSPITALS:
        age = np.clip(rng.normal(mean_age, 11.0, rows), 21, 99)
        sbp = np.clip(rng.normal(128 + 0.3 * (age - 60), 16.0, rows), 92, 188)
        hba1c = np.clip(rng.normal(6.2 + 0.02 * (age - 60), 1.1, rows), 4.2, 11.8)
        bmi = np.clip(rng.normal(28.0, 5.0, rows), 16, 48)
        smokes = rng.random(rows) < 0.3
        route = rng.choice(
            ["emergency", "clinic", "transfer"],
            size=rows,
            p=[emergency, (1 - emergency) * 0.7, (1 - emergency) * 0.3],
        )
        logit = (
            -1.6
            + 0.08 * (age - 60)
            + 1.6 * (hba1c - 6.3)
            + 2.0 * smokes
            + 2.2 * (route == "emergency")
            - 1.2 * (route == "clinic")
            + 0.04 * (sbp - 130)
        )
        readmitted = rng.random(rows) < 1 / (1 + np.exp(-logit))
        lines = [",".join(COLUMNS)]
        for i in range(rows):
            cells = [
                f"R{rng.integers(10**6):06d}",
                f"{age[i]:.0f}",
                "NA" if rng.random() < 0.06 else f"{sbp[i]:.0f}",
                "" if rng.random() < 0.12 else f"{hba1c[i]:.1f}",
                "n/a" if rng.random() < 0.05 else f"{bmi[i]:.1f}",
                "Y" if smokes[i] else "N",
                "" if rng.random() < 0.03 else str(route[i]),
                "yes" if readmitted[i] else "no",
            ]
            lines.append(",".join(cells))
        path = folder / f"{name}.csv"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths


def swarm(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``swarm ARGS`` as a user types it, in the user's folder."""
    return subprocess.run(
        [sys.executable, "-m", "cli.app", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_a_csv_task_the_project_never_saw_trains_on_four_peers_from_the_cli(
    tmp_path: Path,
) -> None:
    """The Done criterion: a study declared in a task file, each hospital with only its own
    file, trained by a local consortium of 4 peers through the CLI; every peer ends with the
    same model (the ledger's), and it beats the majority class on the pooled test rows. The
    faults exercised first: a CSV lacking a column of the schema, given to ``localnet up``, is
    one line naming the file and the column, exit 2, and nothing starts."""
    import torch
    from safetensors import safe_open

    from swarm.ledger import LedgerClient, RpcChain
    from swarm.training.checkpoint import read_checkpoint
    from swarm.training.loop import evaluate_classifier
    from swarm.training.taskfile import TaskFile, open_task

    home = tmp_path / "study"  # the user's own folder; every path below is relative to it
    data = write_hospitals(home / "exports")
    (home / "task.toml").write_text(TASK_FILE)
    rel = [str(p.relative_to(home)) for p in data]

    # Each hospital checks its own file against the task, locally.
    for name in rel:
        checked = swarm(home, "task", "check", "task.toml", "--data", name, timeout=120)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "problem" not in checked.stdout

    # A hospital whose export lacks a column of the schema: one line, exit 2, nothing started.
    header, *body = (home / rel[3]).read_text().splitlines()
    drop = COLUMNS.index("hba1c_pct")
    broken = home / "exports" / "lakeshore-old.csv"
    broken.write_text(
        "\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != drop)
                  for line in [header, *body]) + "\n"
    )  # fmt: skip
    netdir = home / "net"
    refused = swarm(
        home, "localnet", "up", "--task-file", "task.toml", "--dir", "net",
        *(x for p in [*rel[:3], "exports/lakeshore-old.csv"] for x in ("--data", p)),
        timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stdout + refused.stderr
    error = refused.stderr.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error, error
    assert "lakeshore-old.csv" in error and "hba1c_pct" in error, error
    assert not (netdir / "localnet.json").exists() and not (netdir / "peers.json").exists()

    # The consortium: 4 peers, each with its own hospital's file, from the CLI.
    started = time.monotonic()
    up = swarm(
        home, "localnet", "up", "--task-file", "task.toml", "--dir", "net",
        *(x for p in rel for x in ("--data", p)),
        timeout=180,
    )  # fmt: skip
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        config = json.loads((netdir / "localnet.json").read_text())
        assert [p["site"] for p in config["peers"]] == [h[0] for h in HOSPITALS]
        assert [Path(p["data"]) for p in config["peers"]] == [p.resolve() for p in data]
        spec = TaskFile.load(home / "task.toml")
        ledger = LedgerClient(RpcChain(config["chain_url"]), config["contract"])
        assert ledger.params().task_id == spec.task_id  # the file's hash is the ledger's task id
        deadline = time.monotonic() + 300
        while ledger.last_finalized_round() < ROUNDS and time.monotonic() < deadline:
            time.sleep(1.0)
        finalized = ledger.last_finalized_round()
        logs = {p.name: p.read_text()[-3000:] for p in netdir.glob("peers/*/peer.log")}
        assert finalized >= ROUNDS, f"only {finalized} rounds finalized: {logs}"
        elapsed = time.monotonic() - started

        # Every peer holds the ledger's model of that round, bit for bit; a user exports it
        # with the CLI, which checks it against the ledger.
        # (The ledger finalizes on a quorum of acknowledgements: a slower peer may write its
        # checkpoint of the round a little later, or catch the model up from the others.)
        final = ledger.round(ROUNDS).final_model
        folders = [Path(p["keystore"]).parent for p in config["peers"]]
        files = [f / "data" / "checkpoints" / f"round-{ROUNDS:06d}.ckpt" for f in folders]
        deadline = time.monotonic() + 120
        while not all(f.exists() for f in files) and time.monotonic() < deadline:
            time.sleep(1.0)
        held = [read_checkpoint(f) for f in files]
        assert [c.model_hash for c in held] == [final] * len(HOSPITALS)
        assert all(
            c.state_dict.keys() == held[0].state_dict.keys()
            and all(c.state_dict[k].equal(held[0].state_dict[k]) for k in c.state_dict)
            for c in held
        )
        out = tmp_path / "model.safetensors"
        exported = swarm(
            home, "model", "export", "--config", str(folders[3] / "peer.toml"),
            "--checkpoint", str(folders[3] / "data" / "checkpoints"), "--out", str(out),
            timeout=120,
        )  # fmt: skip
        assert exported.returncode == 0, exported.stdout + exported.stderr
        assert "checked against the ledger" in exported.stdout, exported.stdout
        with safe_open(str(out), framework="pt") as f:
            assert (
                bytes.fromhex(f.metadata()["model_hash"][2:])
                == ledger.round(int(f.metadata()["round"])).final_model
            )
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    finally:
        down = swarm(home, "localnet", "down", "--dir", "net", timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr

    # The swarm's model on every hospital's test rows together beats the majority class.
    xs, ys = [], []
    for csv in data:
        site = open_task(spec, csv).load_site(csv.stem, seed=spec.seed)
        xs.append(site.x_test)
        ys.append(site.y_test)
    x, y = torch.cat(xs), torch.cat(ys)
    model = open_task(spec, None).build_model(spec.seed)
    model.load_state_dict(state)
    metrics = evaluate_classifier(model, x, y)
    majority = max(float(y.mean()), 1 - float(y.mean()))
    print(
        f"{finalized} rounds in {elapsed:.0f} s; pooled test accuracy {metrics.accuracy:.3f} "
        f"(majority class {majority:.3f}, AUC {metrics.auc:.3f}, {len(y)} rows)"
    )
    assert metrics.accuracy > majority + 0.03, (metrics, majority)
