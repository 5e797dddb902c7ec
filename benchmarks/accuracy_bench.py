"""Accuracy of the swarm on real data: any task file's sites, or UCI Heart Disease built in.

Four ways to train the same model with the same preprocessing and the same budget (every
training row is seen ``rounds x epochs`` times), each over 5 seeds (a seed fixes the sites'
train/test splits, the initial weights and the shuffling):

- swarm: FedAvg (or the task file's server optimizer) over the sites, ``rounds`` rounds of the
  task's local training config. Each round goes through the real CKKS path of swarm.crypto
  (fresh round key, each site encrypts n_i * delta_i, the merge peer adds ciphertexts with the
  public context only, a key holder decrypts and applies the mean). The same run in plaintext
  (swarm.merge.weighted_sum, identical arithmetic without the encryption) is reported beside it.
- centralized: all sites' train rows pooled in one place (each row encoded by its own site's
  encoder, exactly the features the swarm trains on), ``rounds x epochs`` epochs.
- local-only: each site trains alone on its own train rows, ``rounds x epochs`` epochs, and is
  evaluated on its own test rows.
- personalized: each site builds its personal model from the swarm's final model (plaintext
  run) and its own train rows (swarm.training.personalize, the task file's
  ``[personalization]``; by default the swarm model mixed with the site's own locally trained
  model): what a peer keeps as its personal model.

Accuracy and ROC AUC (macro one-vs-rest for a multiclass task) on each site's test set and on
all test rows pooled (local-only and personalized: each site's own model on its own rows), mean
+- std over seeds. Goals: swarm pooled >= 99 % of centralized; personalized >= local-only at
every site (means over seeds).

Hyperparameters are chosen on *validation* splits carved out of the train rows (seeds 100-104,
disjoint from the reported seeds 0-4); test rows are never used for choosing. ``--tune`` is the
built-in heart task's grid (model, scaling, rounds, lr, FedProx, baselines);
``--tune-personal`` tunes the personalization of any task (the mixture's swarm weight; the
fine-tuning's epochs, lr, FedProx and validation choice). Both write their tables to
docs/benchmarks.md too.

    .venv/bin/python benchmarks/accuracy_bench.py [--task-file F --data D1 D2 ...] [--seeds 5]
        [--plaintext-only] [--no-write]
    .venv/bin/python benchmarks/accuracy_bench.py --builtin        # swarm.training.heart
    .venv/bin/python benchmarks/accuracy_bench.py --tune-personal [--task-file F --data ...]
    .venv/bin/python benchmarks/accuracy_bench.py --tune [--no-write]   # built-in heart task
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import itertools
import math
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import write_section
from swarm.merge import apply_mean_update, model_delta, weighted_sum
from swarm.training.heart import HeartDiseaseTask
from swarm.training.heart_data import SITES, Scaling
from swarm.training.loop import predict_logits
from swarm.training.metrics import accuracy, macro_roc_auc, multiclass_accuracy, roc_auc
from swarm.training.personalize import (
    DEFAULT_METHOD,
    DEFAULT_SWARM_WEIGHT,
    carve_validation,
    personalize,
)
from swarm.training.task import SiteData, Task, TrainConfig

State = dict[str, torch.Tensor]
Update = tuple[Mapping[str, torch.Tensor], int]
POOLED = "pooled"
REPORT_SEEDS = range(0, 5)
TUNE_SEEDS = range(100, 105)
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TASK_FILE = ROOT / "examples" / "heart" / "task.toml"
DEFAULT_DATA = tuple(
    ROOT / "examples" / "heart" / "data" / f"{name}.csv"
    for name in ("cleveland", "hungary", "switzerland", "va-long-beach")
)
#: the heart sites' labels: a site's split is seeded by its label, so with these the task file
#: splits and encodes exactly as the built-in task (and as peers configured with these sites)
DEFAULT_SITES = SITES
#: learning rate of the centralized and local-only baselines (one long run of ``rounds x
#: epochs`` epochs, not ``rounds`` short ones), tuned on validation splits per task
#: (accuracy-tune, stage 3); any other task: its own [training] lr unless --baseline-lr
TUNED_BASELINE_LR = {"heart-disease-uci": 0.01, "heart-disease-uci/logreg": 0.01}


@dataclass(frozen=True)
class PersonalSetting:
    """How each site builds its personal model (swarm.training.personalize)."""

    epochs: int = 1
    lr: float | None = None
    fedprox_mu: float | None = None
    select: bool = True
    method: str = DEFAULT_METHOD
    swarm_weight: float | None = None

    @property
    def weight(self) -> float:
        return DEFAULT_SWARM_WEIGHT if self.swarm_weight is None else self.swarm_weight

    def label(self, base: TrainConfig) -> str:
        lr = base.lr if self.lr is None else self.lr
        if self.method == "mixture":
            return (
                f"mixture: {self.weight:g} x the swarm model + {1 - self.weight:g} x the site's "
                f"own model ({self.epochs} epochs, lr {lr:g}, from the swarm's initial model)"
            )
        mu = base.fedprox_mu if self.fedprox_mu is None else self.fedprox_mu
        chosen = ", validation choice vs the swarm model" if self.select else ""
        return (
            f"fine-tuning: {self.epochs} epochs, lr {lr:g}, mu {mu:g} (anchor: the swarm "
            f"model){chosen}"
        )

    def row(self) -> str:
        """The setting's cells in the --tune-personal table."""
        if self.method == "mixture":
            return f"mixture | {self.weight:g} | {self.epochs} | {self.lr:g} | | "
        mu = "" if self.fedprox_mu is None else f"{self.fedprox_mu:g}"
        select = "yes" if self.select else "no"
        return f"finetune | | {self.epochs} | {self.lr:g} | {mu} | {select}"


#: the personalization --tune-personal chose on validation splits (section accuracy-personal);
#: used for the built-in task and for a task file whose [personalization] is off. The site's
#: own model gets local-only's budget and learning rate (rounds x epochs = 40 epochs at 0.01,
#: accuracy-tune stage 3).
PERSONAL_DEFAULT = PersonalSetting(
    epochs=40, lr=0.01, method="mixture", swarm_weight=DEFAULT_SWARM_WEIGHT
)


@dataclass(frozen=True)
class Site:
    """One site of the study: its task (bound to its data for a task file) and its data."""

    name: str
    task: Task
    data: SiteData


@dataclass
class Study:
    """What is benchmarked: the sites' tasks, the swarm's config and the baselines'."""

    title: str
    tasks: dict[str, Task]  # site name -> task bound to its data
    config: TrainConfig
    rounds: int
    baseline_lr: float
    personal: PersonalSetting
    server: Any = None  # swarm.merge.server.ServerOptimizer of a task file, None: FedAvg

    @property
    def site_names(self) -> list[str]:
        return list(self.tasks)

    @property
    def budget(self) -> int:
        return self.rounds * self.config.epochs

    def build_model(self, seed: int) -> nn.Module:
        return next(iter(self.tasks.values())).build_model(seed)

    def load(self, seed: int, validation: bool = False) -> list[Site]:
        """Every site's data split by ``seed``; ``validation``: the test rows left out and a
        validation split of the train rows in their place (the task's own when its load_site
        takes ``validation``, as the heart and CSV tasks do; else carve_validation)."""
        out = []
        for name, task in self.tasks.items():
            if not validation:
                data = task.load_site(name, seed)
            elif "validation" in inspect.signature(task.load_site).parameters:
                data = task.load_site(name, seed, validation=True)  # type: ignore[call-arg]
            else:
                data = carve_validation(task.load_site(name, seed), seed)
            out.append(Site(name, task, data))
        return out


def builtin_study(model: str = "logreg", scaling: Scaling = Scaling.REFERENCE) -> Study:
    task = HeartDiseaseTask(model=model, scaling=scaling)  # type: ignore[arg-type]
    return Study(
        title=f"built-in task {task.name}",
        tasks=dict.fromkeys(SITES, task),
        config=task.default_config,
        rounds=task.default_rounds,
        baseline_lr=TUNED_BASELINE_LR.get(task.name, task.default_config.lr),
        personal=PERSONAL_DEFAULT,
    )


SITE_SCALED_ROW = "swarm with site-standardized features (plaintext; comparison only)"
MLP_ROW = "swarm, MLP task (plaintext; comparison only)"


def comparisons() -> list[tuple[str, Study, str]]:
    """Rows shown for comparison only (built-in heart task): the best site-scaled swarm
    setting of --tune, and the MLP task with its own tuned defaults."""
    site_scaled = builtin_study(scaling=Scaling.SITE)
    site_scaled.config = replace(site_scaled.config, fedprox_mu=0.0)
    mlp = builtin_study("mlp")
    return [
        (SITE_SCALED_ROW, site_scaled, "site scaling, " + swarm_label(site_scaled)),
        (MLP_ROW, mlp, "mlp, " + swarm_label(mlp)),
    ]


def swarm_label(study: Study) -> str:
    config = study.config
    mu = f", mu {config.fedprox_mu:g}" if config.fedprox_mu else ""
    return f"{study.rounds} x {config.epochs} epochs, lr {config.lr:g}{mu}"


def file_study(
    task_file: Path,
    data: Sequence[Path],
    baseline_lr: float | None,
    sites: Sequence[str] | None = None,
) -> Study:
    """The study of a task file over the given sites' data (one path per site; site labels
    default to the data's file names)."""
    from swarm.training.taskfile import TaskFile, default_site, open_task

    spec = TaskFile.load(task_file)
    if sites is not None and len(sites) != len(data):
        raise SystemExit(f"{len(sites)} site labels for {len(data)} data paths")
    tasks: dict[str, Task] = {}
    for index, path in enumerate(data):
        site = sites[index] if sites is not None else default_site(path)
        if site in tasks:
            raise SystemExit(f"two data paths give the site name {site!r}")
        tasks[site] = open_task(spec, path, site)
    personal = spec.personalization
    setting = (
        PersonalSetting(
            epochs=personal.epochs,
            lr=personal.lr,
            fedprox_mu=getattr(personal, "fedprox_mu", None),
            select=bool(getattr(personal, "select", True)),
            method=str(getattr(personal, "method", None) or DEFAULT_METHOD),
            swarm_weight=getattr(personal, "swarm_weight", None),
        )
        if personal.epochs
        else PERSONAL_DEFAULT
    )
    server = spec.server
    shown = task_file.resolve()
    shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    return Study(
        title=f"task file {shown}",
        tasks=tasks,
        config=spec.training,
        rounds=spec.rounds,
        baseline_lr=(
            baseline_lr
            if baseline_lr is not None
            else TUNED_BASELINE_LR.get(spec.name, spec.training.lr)
        ),
        personal=setting,
        server=None if getattr(server, "kind", "fedavg") == "fedavg" else server,
    )


# --- aggregation: plaintext reference and the CKKS path ------------------------------------


class Aggregation:
    """Turns the round's (delta, n_i) pairs into the float64 sum of n_i * delta_i."""

    name = "plaintext FedAvg"

    def __init__(self) -> None:
        self.timings: dict[str, list[float]] = defaultdict(list)

    def __call__(self, round_id: int, updates: Sequence[Update]) -> dict[str, torch.Tensor]:
        start = time.perf_counter()
        out = weighted_sum(updates)
        self.timings["aggregate (plaintext)"].append(time.perf_counter() - start)
        return out


class CkksAggregation(Aggregation):
    """One real encrypted round per call: what the swarm's peers compute, in one process."""

    name = "CKKS FedAvg"

    def __init__(self) -> None:
        super().__init__()
        import swarm.crypto as crypto  # the library itself stays free of crypto imports

        self.crypto = crypto

    def __call__(self, round_id: int, updates: Sequence[Update]) -> dict[str, torch.Tensor]:
        crypto = self.crypto
        clock = time.perf_counter
        start = clock()
        keys = crypto.generate_round_keys()  # the key steward, fresh each round
        self.timings["round key (steward)"].append(clock() - start)
        layout = crypto.layout_of(updates[0][0])
        merge_peer = b"\x00" * 20
        aggregator = crypto.Aggregator(
            keys.public, round_id=round_id, layout=layout, merge_peer=merge_peer
        )
        for index, (delta, samples) in enumerate(updates):
            start = clock()
            blob = crypto.encrypt_update(
                delta,
                keys,
                layout=layout,
                weight=samples,
                round_id=round_id,
                sender=bytes([index + 1]) * 20,
            )
            self.timings["encrypt (per site)"].append(clock() - start)
            start = clock()
            aggregator.add(blob, expected_id=crypto.blob_id(blob))
            self.timings["add (merge peer, per site)"].append(clock() - start)
        start = clock()
        aggregate = aggregator.finish()
        summed = crypto.decrypt_aggregate(
            aggregate, keys, round_id=round_id, layout=layout, expected_count=len(updates)
        )
        # exactly the peer's arithmetic (swarm.peer.keyholder): float64 sum, one rounding after
        out: dict[str, torch.Tensor] = crypto.unflatten(summed, layout, dtype=np.float64)
        self.timings["finish + decrypt"].append(clock() - start)
        return out


class ServerStep:
    """Applies the decrypted sum: FedAvg (apply_mean_update), or the task file's server
    optimizer (swarm.merge.server) with its state carried from round to round."""

    def __init__(self, server: Any, model_state: Mapping[str, torch.Tensor]) -> None:
        self.server = server
        self.state: dict[str, torch.Tensor] = (
            server.initial_state(dict(model_state)) if server is not None else {}
        )

    def __call__(
        self, base: Mapping[str, torch.Tensor], summed: Mapping[str, torch.Tensor], total: int
    ) -> State:
        if self.server is None:
            return apply_mean_update(base, summed, total)
        from swarm.merge.server import mean_delta

        new_state, self.state = self.server.step(dict(base), self.state, mean_delta(summed, total))
        return dict(new_state)


# --- the methods -----------------------------------------------------------------------------


@dataclass
class RunResult:
    """Test (or validation) logits per site, from each site's model for this method."""

    logits: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    train_ms: dict[str, list[float]] = field(default_factory=dict)
    final_state: State | None = None
    notes: dict[str, str] = field(default_factory=dict)


def _evaluate(models: Mapping[str, nn.Module], sites: Sequence[Site]) -> RunResult:
    logits = {s.name: predict_logits(models[s.name], s.data.x_test).numpy() for s in sites}
    labels = {s.name: s.data.y_test.numpy() for s in sites}
    return RunResult(logits=logits, labels=labels)


def _copy(model: nn.Module) -> State:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def run_swarm(
    study: Study,
    sites: Sequence[Site],
    seed: int,
    aggregation: Callable[[int, Sequence[Update]], Mapping[str, torch.Tensor]],
) -> RunResult:
    config = replace(study.config, seed=seed)
    model = study.build_model(seed)
    local = study.build_model(seed)
    apply = ServerStep(study.server, model.state_dict())
    train_ms: dict[str, list[float]] = defaultdict(list)
    for round_id in range(1, study.rounds + 1):
        base = _copy(model)
        updates: list[Update] = []
        for site in sites:
            local.load_state_dict(base)
            start = time.perf_counter()
            samples = site.task.train(local, site.data, config.for_round(round_id, site.name), base)
            train_ms[site.name].append(1000 * (time.perf_counter() - start))
            updates.append((model_delta(local.state_dict(), base), samples))
        summed = aggregation(round_id, updates)
        model.load_state_dict(apply(base, summed, sum(n for _, n in updates)))
    result = _evaluate(dict.fromkeys((s.name for s in sites), model), sites)
    result.train_ms = dict(train_ms)
    result.final_state = _copy(model)
    return result


def _baseline_config(study: Study, seed: int, site: str) -> TrainConfig:
    """One long run with the swarm's budget: ``rounds x epochs`` epochs at the baseline lr."""
    return replace(
        study.config, epochs=study.budget, lr=study.baseline_lr, fedprox_mu=0.0, seed=seed
    ).for_round(0, site)


def run_centralized(study: Study, sites: Sequence[Site], seed: int) -> RunResult:
    model = study.build_model(seed)
    first = sites[0]
    pooled = dataclasses.replace(
        first.data,
        site=POOLED,
        x_train=torch.cat([s.data.x_train for s in sites]),
        y_train=torch.cat([s.data.y_train for s in sites]),
    )
    first.task.train(model, pooled, _baseline_config(study, seed, POOLED))
    return _evaluate(dict.fromkeys((s.name for s in sites), model), sites)


def run_local(study: Study, sites: Sequence[Site], seed: int) -> RunResult:
    models: dict[str, nn.Module] = {}
    for site in sites:
        model = study.build_model(seed)
        site.task.train(model, site.data, _baseline_config(study, seed, site.name))
        models[site.name] = model
    return _evaluate(models, sites)


def run_personalized(
    study: Study,
    sites: Sequence[Site],
    seed: int,
    swarm_state: Mapping[str, torch.Tensor],
    setting: PersonalSetting,
) -> RunResult:
    """Each site builds its personal model from the swarm's final model and its own train rows,
    as its peer does (swarm.peer.personal: seed derived from the round and the site; the own
    model of a mixture starts from the swarm's initial model)."""
    config = replace(study.config, seed=seed)
    models: dict[str, nn.Module] = {}
    notes: dict[str, str] = {}
    for site in sites:
        result = personalize(
            site.task,
            swarm_state,
            site.data,
            epochs=setting.epochs,
            lr=setting.lr,
            fedprox_mu=setting.fedprox_mu,
            select=setting.select,
            seed=config.for_round(study.rounds, f"{site.name}/personal").seed,
            config=config,
            method=setting.method,
            swarm_weight=setting.swarm_weight,
            model_seed=seed,
        )
        model = study.build_model(seed)
        model.load_state_dict(result.state)
        models[site.name] = model
        notes[site.name] = result.chosen
    out = _evaluate(models, sites)
    out.notes = notes
    return out


# --- scoring ---------------------------------------------------------------------------------


def metric_pair(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, AUC): binary for float labels, multiclass (macro one-vs-rest) otherwise."""
    if np.issubdtype(labels.dtype, np.floating):
        return accuracy(logits, labels), roc_auc(logits, labels)
    return multiclass_accuracy(logits, labels), macro_roc_auc(logits, labels)


def scores(result: RunResult) -> dict[str, tuple[float, float]]:
    """(accuracy, AUC) per site and pooled over all sites' rows."""
    out = {s: metric_pair(result.logits[s], result.labels[s]) for s in result.logits}
    all_logits = np.concatenate(list(result.logits.values()))
    all_labels = np.concatenate(list(result.labels.values()))
    out[POOLED] = metric_pair(all_logits, all_labels)
    return out


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return math.nan, math.nan
    return statistics.fmean(kept), (statistics.stdev(kept) if len(kept) > 1 else 0.0)


def fmt(values: Iterable[float]) -> str:
    mean, std = mean_std(values)
    return "n/a" if math.isnan(mean) else f"{mean:.3f} ± {std:.3f}"


# --- report ----------------------------------------------------------------------------------

SWARM_CKKS = "swarm (FedAvg through CKKS)"
SWARM_PLAIN = "swarm (plaintext FedAvg)"
CENTRAL = "centralized (pooled data)"
LOCAL = "local-only (each site alone)"
PERSONAL = "personalized (each site's personal model)"


def report(study: Study, seeds: Sequence[int], with_ckks: bool, with_comparisons: bool) -> str:
    columns = [*study.site_names, POOLED]
    first = study.load(seeds[0])
    test_rows = {s.name: s.data.test_samples for s in first}
    train_rows = {s.name: s.data.train_samples for s in first}
    methods: dict[str, list[dict[str, tuple[float, float]]]] = defaultdict(list)
    train_ms: dict[str, list[float]] = defaultdict(list)
    aggregations: list[Aggregation] = []
    kept_swarm: dict[str, int] = defaultdict(int)
    max_weight_gap = 0.0
    extra = comparisons() if with_comparisons else []
    plain_label = SWARM_PLAIN if study.server is None else "swarm (plaintext, server optimizer)"
    ckks_label = SWARM_CKKS if study.server is None else "swarm (through CKKS, server optimizer)"
    for seed in seeds:
        sites = study.load(seed)
        plain = Aggregation()
        plain_run = run_swarm(study, sites, seed, plain)
        aggregations.append(plain)
        if with_ckks:
            ckks = CkksAggregation()
            ckks_run = run_swarm(study, sites, seed, ckks)
            aggregations.append(ckks)
            methods[ckks_label].append(scores(ckks_run))
            assert ckks_run.final_state is not None and plain_run.final_state is not None
            for name, tensor in ckks_run.final_state.items():
                if tensor.is_floating_point():
                    gap = float((tensor - plain_run.final_state[name]).abs().max())
                    max_weight_gap = max(max_weight_gap, gap)
        methods[plain_label].append(scores(plain_run))
        for site, values in plain_run.train_ms.items():
            train_ms[site].extend(values)
        methods[CENTRAL].append(scores(run_centralized(study, sites, seed)))
        methods[LOCAL].append(scores(run_local(study, sites, seed)))
        assert plain_run.final_state is not None
        personal_run = run_personalized(study, sites, seed, plain_run.final_state, study.personal)
        for site, chosen in personal_run.notes.items():
            kept_swarm[site] += chosen == "swarm"
        methods[PERSONAL].append(scores(personal_run))
        for label, variant, _ in extra:
            variant_sites = variant.load(seed)
            methods[label].append(scores(run_swarm(variant, variant_sites, seed, Aggregation())))
        print(f"seed {seed} done", file=sys.stderr, flush=True)

    lines: list[str] = []
    for metric, index in (("Accuracy", 0), ("AUC", 1)):
        lines += [
            f"**{metric}** (mean ± std over {len(seeds)} seeds)",
            "",
            "| method | " + " | ".join(columns) + " |",
            "|---|" + "---:|" * len(columns),
        ]
        for method, runs in methods.items():
            cells = [fmt(run[c][index] for run in runs) for c in columns]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")

    swarm_runs = methods[ckks_label if with_ckks else plain_label]
    central_runs = methods[CENTRAL]
    local_runs = methods[LOCAL]
    personal_runs = methods[PERSONAL]
    lines.append("**Goal check** (means over seeds)")
    lines.append("")
    for metric, index in (("accuracy", 0), ("AUC", 1)):
        swarm_mean = mean_std(r[POOLED][index] for r in swarm_runs)[0]
        central_mean = mean_std(r[POOLED][index] for r in central_runs)[0]
        ratio = swarm_mean / central_mean
        verdict = "met" if ratio >= 0.99 else "MISSED"
        lines.append(
            f"- pooled {metric}: swarm {swarm_mean:.3f} / centralized {central_mean:.3f} = "
            f"{100 * ratio:.1f} % (goal >= 99 %: {verdict})"
        )
    for who, runs in (("personalized", personal_runs), ("swarm", swarm_runs)):
        for metric, index in (("accuracy", 0), ("AUC", 1)):
            missed = []
            for site in study.site_names:
                ours = mean_std(r[site][index] for r in runs)[0]
                alone = mean_std(r[site][index] for r in local_runs)[0]
                if not ours >= alone:
                    missed.append(f"{site} ({ours:.3f} < {alone:.3f})")
            verdict = "met" if not missed else "MISSED at " + ", ".join(missed)
            goal = " (goal)" if who == "personalized" else " (for comparison)"
            lines.append(f"- {metric}, {who} >= each site alone{goal}: {verdict}")
    for label, runs in (("Personalized", personal_runs), ("Swarm", swarm_runs)):
        lines += [
            "",
            f"{label} minus local-only, per site, paired by seed (mean ± std over seeds; "
            "seeds where it is at least as good):",
            "",
            "| site | test rows | accuracy | AUC |",
            "|---|---:|---|---|",
        ]
        for site in study.site_names:
            cells = []
            for index in (0, 1):
                pairs = zip(runs, local_runs, strict=True)
                diffs = [s[site][index] - r[site][index] for s, r in pairs]
                kept = [d for d in diffs if not math.isnan(d)]
                better = sum(d >= 0 for d in kept)
                cells.append(f"{fmt(diffs)} ({better}/{len(kept)})")
            lines.append(f"| {site} | {test_rows[site]} | " + " | ".join(cells) + " |")
    lines.append("")

    config = study.config
    mu = f", FedProx mu {config.fedprox_mu:g}" if config.fedprox_mu else ""
    server = "FedAvg" if study.server is None else f"server optimizer {study.server.kind}"
    lines += [
        f"**Settings** ({study.title})",
        "",
        f"- swarm: {study.rounds} rounds x {config.epochs} local epochs, {config.optimizer} lr "
        f"{config.lr:g}{mu}, weight decay {config.weight_decay:g}, batch {config.batch_size}, "
        f"{server}",
        f"- centralized and local-only: 1 x {study.budget} epochs, lr {study.baseline_lr:g}, "
        "no FedProx",
        f"- personalized: {study.personal.label(config)}",
    ]
    if study.personal.method == "finetune" and study.personal.select:
        held = ", ".join(f"{site} {n}/{len(seeds)}" for site, n in kept_swarm.items())
        lines.append(f"- seeds where validation kept the swarm model: {held}")
    for label, _, described in extra:
        lines.append(f"- {label}: {described}")
    if with_ckks:
        lines.append(
            f"- CKKS vs plaintext, largest final weight difference over all seeds: "
            f"{max_weight_gap:.2e}"
        )
    lines.append("")

    lines += [
        "**Time per round** (this machine, median over rounds and seeds, ms; "
        "training is one thread)",
        "",
        "| step | ms |",
        "|---|---:|",
    ]
    for site in study.site_names:
        lines.append(
            f"| local training, {site} ({train_rows[site]} rows x {config.epochs} epochs) | "
            f"{statistics.median(train_ms[site]):.1f} |"
        )
    merged: dict[str, list[float]] = defaultdict(list)
    for aggregation in aggregations:
        for step, values in aggregation.timings.items():
            merged[step].extend(values)
    for step, values in merged.items():
        lines.append(f"| {step} | {1000 * statistics.median(values):.1f} |")
    return "\n".join(lines)


def notes(study: Study, seeds: Sequence[int]) -> str:
    rows = sum(s.data.test_samples for s in study.load(seeds[0]))
    return (
        f"{study.title}: {len(study.tasks)} sites, each split into train and test, stratified "
        "by label, per seed. Swarm = the task's federated training over all sites; "
        "centralized = the same model on all train rows pooled; local-only = each site alone, "
        "scored on its own test rows; personalized = each site's personal model, built from the "
        "swarm's final model and its own train rows (what each peer keeps, never shared). "
        "Same model, features and budget (passes over each row) for swarm, centralized and "
        f"local-only. Pooled = all {rows} test rows of the sites together."
    )


HEART_NOTES = (
    " Heart: four real hospitals (docs/data.md); each method's learning rate tuned on "
    "validation splits (section `accuracy-tune`), the personalization too (section "
    "`accuracy-personal`). Switzerland's test split has 2 healthy patients of 31, so its AUC "
    "rests on 2 x 29 pairs and moves a lot between seeds."
)


# --- tuning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One swarm setting of the built-in heart task's grid (--tune), but the seed."""

    model: str = "mlp"
    scaling: Scaling = Scaling.REFERENCE
    rounds: int = 20
    epochs: int = 2
    lr: float = 0.1
    fedprox_mu: float = 0.0
    weight_decay: float = 1e-4

    @property
    def budget(self) -> int:
        """Passes over each training row."""
        return self.rounds * self.epochs

    def study(self, baseline_lr: float = 0.01) -> Study:
        base = builtin_study(self.model, self.scaling)
        base.config = TrainConfig(
            epochs=self.epochs,
            lr=self.lr,
            weight_decay=self.weight_decay,
            fedprox_mu=self.fedprox_mu,
        )
        base.rounds = self.rounds
        base.baseline_lr = baseline_lr
        return base

    def label(self) -> str:
        mu = f", mu {self.fedprox_mu:g}" if self.fedprox_mu else ""
        return (
            f"{self.model}, {self.scaling.value} scaling, {self.rounds} x {self.epochs} epochs, "
            f"lr {self.lr:g}{mu}"
        )


def _validation_auc(
    runner: Callable[[Study, Sequence[Site], int], RunResult],
    study: Study,
    scaling: Scaling,
    cache: dict[tuple[Scaling, int], list[Site]],
) -> tuple[float, float]:
    """Mean pooled validation (AUC, accuracy) over the tuning seeds."""
    aucs, accs = [], []
    for seed in TUNE_SEEDS:
        key = (scaling, seed)
        if key not in cache:
            cache[key] = study.load(seed, validation=True)
        pooled = scores(runner(study, cache[key], seed))[POOLED]
        accs.append(pooled[0])
        aucs.append(pooled[1])
    return statistics.fmean(aucs), statistics.fmean(accs)


def _swarm_runner(study: Study, sites: Sequence[Site], seed: int) -> RunResult:
    return run_swarm(study, sites, seed, Aggregation())


def tune() -> str:
    """Grid search on validation splits of the built-in heart task; returns a markdown account
    of what was tried."""
    cache: dict[tuple[Scaling, int], list[Site]] = {}
    lines = [
        f"Validation = 25 % of each site's train rows (stratified), tuning seeds "
        f"{TUNE_SEEDS.start}-{TUNE_SEEDS.stop - 1}; score = pooled validation AUC "
        "(accuracy in brackets), mean over seeds. Test rows are never used here.",
        "",
        "**Stage 1: swarm (plaintext FedAvg), model x scaling x rounds x epochs x lr**",
        "",
        "| model | scaling | rounds x epochs | lr | val AUC (acc) |",
        "|---|---|---|---:|---:|",
    ]
    grid = itertools.product(
        ("mlp", "logreg"),
        (Scaling.REFERENCE, Scaling.SITE),
        ((10, 2), (20, 1), (20, 2), (40, 1)),
        (0.03, 0.1, 0.3),
    )
    best: tuple[float, Setting] | None = None
    best_per_policy: dict[tuple[str, Scaling], tuple[float, float, Setting]] = {}
    for model, scaling, (rounds, epochs), lr in grid:
        setting = Setting(model=model, scaling=scaling, rounds=rounds, epochs=epochs, lr=lr)
        auc, acc = _validation_auc(_swarm_runner, setting.study(), scaling, cache)
        lines.append(
            f"| {model} | {scaling.value} | {rounds} x {epochs} | {lr:g} | {auc:.4f} ({acc:.3f}) |"
        )
        print(lines[-1], file=sys.stderr, flush=True)
        if best is None or auc > best[0]:
            best = (auc, setting)
        policy = (model, scaling)
        if policy not in best_per_policy or auc > best_per_policy[policy][0]:
            best_per_policy[policy] = (auc, acc, setting)
    assert best is not None
    chosen = best[1]

    lines += ["", f"**Stage 2: FedProx at the best stage-1 setting ({chosen.label()})**", ""]
    lines += ["| mu | val AUC (acc) |", "|---:|---:|"]
    lines.append(f"| 0 | {best[0]:.4f} |")
    for mu in (0.01, 0.1, 1.0):
        setting = replace(chosen, fedprox_mu=mu)
        auc, acc = _validation_auc(_swarm_runner, setting.study(), setting.scaling, cache)
        lines.append(f"| {mu:g} | {auc:.4f} ({acc:.3f}) |")
        print(lines[-1], file=sys.stderr, flush=True)
        if auc > best[0]:
            best = (auc, setting)
    chosen = best[1]

    lines += [
        "",
        f"**Stage 3: baselines at the same model, scaling and budget ({chosen.budget} passes), "
        "lr tuned per method**",
        "",
        "| method | lr | val AUC (acc) |",
        "|---|---:|---:|",
    ]
    baseline_lr: dict[str, tuple[float, float]] = {}
    for method, runner in (("centralized", run_centralized), ("local-only", run_local)):
        for lr in (0.003, 0.01, 0.03, 0.1, 0.3):
            auc, acc = _validation_auc(runner, chosen.study(lr), chosen.scaling, cache)
            lines.append(f"| {method} | {lr:g} | {auc:.4f} ({acc:.3f}) |")
            print(lines[-1], file=sys.stderr, flush=True)
            if method not in baseline_lr or auc > baseline_lr[method][0]:
                baseline_lr[method] = (auc, lr)

    lines += [
        "",
        "**Scaling policy** (best stage-1 swarm setting per model and scaling)",
        "",
        "| model | scaling | best setting | val AUC (acc) |",
        "|---|---|---|---:|",
    ]
    for (model, scaling), (auc, acc, setting) in sorted(
        best_per_policy.items(), key=lambda item: (item[0][0], item[0][1].value)
    ):
        lines.append(f"| {model} | {scaling.value} | {setting.label()} | {auc:.4f} ({acc:.3f}) |")
    lines += [
        "",
        f"Chosen for the swarm: {chosen.label()}. Baselines: "
        + ", ".join(f"{method} lr {lr:g}" for method, (_, lr) in baseline_lr.items())
        + ". Personalization: section `accuracy-personal` (--tune-personal).",
    ]
    return "\n".join(lines)


#: the personalization grid of --tune-personal: the mixture's swarm weight (the site's own
#: model with local-only's budget and lr), and fine-tuning around the earlier choice
PERSONAL_GRID = (
    *(
        PersonalSetting(epochs=40, lr=0.01, method="mixture", swarm_weight=w)
        for w in (0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0)
    ),
    *(
        PersonalSetting(epochs=e, lr=lr, fedprox_mu=mu, select=sel, method="finetune")
        for e, lr, mu, sel in (
            (10, 0.01, 1.0, True),
            (10, 0.01, 1.0, False),
            (40, 0.01, 1.0, True),
            (3, 0.1, 1.0, True),
            (20, 0.01, 0.0, True),
        )
    ),
)
#: validation seeds of --tune-personal: the swarm's tuning seeds and 10 more, because on 5 the
#: heart task's Switzerland (2 healthy patients per validation split) ties every setting on
#: accuracy; still validation splits of train rows only, never a test row
PERSONAL_TUNE_SEEDS = range(100, 115)
#: blocks of PERSONAL_TUNE_SEEDS over which the chosen setting is shown again
PERSONAL_BLOCK = 5

Scores = dict[str, tuple[float, float]]


def _means(runs: Sequence[Scores], columns: Sequence[str]) -> Scores:
    return {
        c: (mean_std(r[c][0] for r in runs)[0], mean_std(r[c][1] for r in runs)[0]) for c in columns
    }


def _rank(m: Scores, local: Scores, names: Sequence[str]) -> tuple[int, float, int, float]:
    """Accuracy first (the goal's primary metric): (site, accuracy) wins or ties against
    local-only, the smallest per-site accuracy margin, AUC wins, pooled AUC."""
    acc_wins = sum(m[s][0] >= local[s][0] - 1e-9 for s in names)
    margin = round(min(m[s][0] - local[s][0] for s in names), 6)
    auc_wins = sum(m[s][1] >= local[s][1] - 1e-9 for s in names)
    return acc_wins, margin, auc_wins, m[POOLED][1]


def _validation_runs(
    study: Study, seeds: Iterable[int]
) -> tuple[dict[int, tuple[list[Site], State]], list[Scores], list[Scores]]:
    per_seed: dict[int, tuple[list[Site], State]] = {}
    local_runs, swarm_runs = [], []
    for seed in seeds:
        sites = study.load(seed, validation=True)
        run = run_swarm(study, sites, seed, Aggregation())
        assert run.final_state is not None
        per_seed[seed] = (sites, run.final_state)
        swarm_runs.append(scores(run))
        local_runs.append(scores(run_local(study, sites, seed)))
    return per_seed, local_runs, swarm_runs


def tune_personal(study: Study) -> tuple[str, PersonalSetting]:
    """Personalization on validation splits: the mixture's swarm weight, and fine-tuning
    (epochs x lr x FedProx mu x validation choice) for comparison.

    The goal is per site (personalized >= local-only at every site, accuracy first), so a
    setting is ranked by :func:`_rank` of its means over PERSONAL_TUNE_SEEDS; the chosen one is
    shown again per block of seeds (how much the choice rests on a few seeds).
    """
    names = study.site_names
    columns = [*names, POOLED]
    seeds = list(PERSONAL_TUNE_SEEDS)
    per_seed, local_runs, swarm_runs = _validation_runs(study, seeds)
    local = _means(local_runs, columns)
    rows: list[tuple[tuple[int, float, int, float], str, Scores]] = []
    results: dict[PersonalSetting, tuple[int, float, int, float]] = {}
    setting_runs: dict[PersonalSetting, list[Scores]] = {}
    for setting in PERSONAL_GRID:
        runs = [
            scores(run_personalized(study, sites, seed, final, setting))
            for seed, (sites, final) in per_seed.items()
        ]
        setting_runs[setting] = runs
        m = _means(runs, columns)
        results[setting] = _rank(m, local, names)
        rows.append((results[setting], setting.row(), m))
        print(setting.row(), results[setting], file=sys.stderr, flush=True)
    chosen = max(PERSONAL_GRID, key=lambda s: results[s])

    def cells(m: Scores) -> str:
        return " | ".join(f"{m[c][0]:.3f} / {m[c][1]:.3f}" for c in columns)

    def score(key: tuple[int, float, int, float]) -> str:
        return f"{key[0]} | {key[1]:+.3f} | {key[2]}"

    width = len(columns)
    swarm = _means(swarm_runs, columns)
    lines = [
        f"{study.title}. Validation = 25 % of each site's train rows (stratified; the test "
        f"rows are left out), validation seeds {seeds[0]}-{seeds[-1]} (on the swarm's 5 "
        "tuning seeds alone every setting tied on accuracy at Switzerland), means over seeds. "
        "Cells: validation accuracy / AUC. Accuracy is the goal's primary metric: settings "
        f"are ranked by accuracy wins (sites, of {len(names)}, where the personal model is at "
        "least as good as local-only), then the smallest per-site accuracy margin over "
        "local-only, then AUC wins, then pooled AUC. Mixture: swarm weight w, the personal "
        "model = w x the swarm model + (1 - w) x the site's own model (trained from the "
        "swarm's initial model on the site's train rows alone: w = 0 is local-only up to "
        "shuffling, w = 1 the swarm model). Fine-tuning: the swarm model trained further at "
        "the site (FedProx mu toward it; validation choice = a validation split of the train "
        "rows decides between the copy and the swarm model).",
        "",
        "| method | swarm weight | epochs | lr | mu | validation choice | "
        + " | ".join(columns)
        + " | acc wins | min acc margin | AUC wins |",
        "|---|---:|---:|---:|---:|---|" + "---:|" * (width + 3),
        f"| local-only | | | | | | {cells(local)} | | | |",
        f"| swarm model as is | | | | | | {cells(swarm)} | {score(_rank(swarm, local, names))} |",
    ]
    for key, label, m in sorted(rows, key=lambda row: row[0], reverse=True):
        lines.append(f"| {label} | {cells(m)} | {score(key)} |")
    lines += [
        "",
        f"Chosen: {chosen.label(study.config)}.",
        "",
        f"The chosen setting and the swarm model per block of {PERSONAL_BLOCK} seeds, against "
        "local-only on the same seeds:",
        "",
        "| seeds | model | " + " | ".join(columns) + " | acc wins | min acc margin | AUC wins |",
        "|---|---|" + "---:|" * (width + 3),
    ]
    for start in range(0, len(seeds), PERSONAL_BLOCK):
        block = slice(start, start + PERSONAL_BLOCK)
        shown = seeds[block]
        block_local = _means(local_runs[block], columns)
        for label, runs in (
            ("local-only", local_runs),
            ("swarm model as is", swarm_runs),
            ("chosen", setting_runs[chosen]),
        ):
            m = _means(runs[block], columns)
            ranked = "| |" if label == "local-only" else score(_rank(m, block_local, names))
            lines.append(f"| {shown[0]}-{shown[-1]} | {label} | {cells(m)} | {ranked} |")
    return "\n".join(lines), chosen


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task-file", type=Path, default=None, help="default: examples/heart")
    parser.add_argument("--data", type=Path, nargs="+", default=None, help="one per site")
    parser.add_argument("--sites", nargs="+", default=None, help="site labels, one per --data")
    parser.add_argument("--builtin", action="store_true", help="the built-in heart task")
    parser.add_argument("--seeds", type=int, default=len(REPORT_SEEDS))
    parser.add_argument("--baseline-lr", type=float, default=None)
    parser.add_argument("--personal-epochs", type=int, default=None)
    parser.add_argument("--personal-lr", type=float, default=None)
    parser.add_argument("--personal-mu", type=float, default=None)
    parser.add_argument("--personal-method", choices=("mixture", "finetune"), default=None)
    parser.add_argument(
        "--personal-swarm-weight", type=float, default=None, help="mixture: the swarm's weight"
    )
    parser.add_argument(
        "--personal-select",
        choices=("yes", "no"),
        default=None,
        help="validation choice between the swarm model and the fine-tuned copy",
    )
    parser.add_argument("--tune", action="store_true", help="built-in heart task's grid")
    parser.add_argument(
        "--tune-personal", action="store_true", help="personalization grid on validation"
    )
    parser.add_argument(
        "--plaintext-only", action="store_true", help="skip the CKKS path (no swarm.crypto)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    command = "python benchmarks/accuracy_bench.py " + " ".join(sys.argv[1:])
    started = time.perf_counter()
    if args.tune:
        body = tune()
        name = "accuracy-tune"
    else:
        study = _study(args)
        if args.tune_personal:
            body, _ = tune_personal(study)
            name = "accuracy-personal"
        else:
            builtin = args.builtin or isinstance(next(iter(study.tasks.values())), HeartDiseaseTask)
            heart = builtin or "heart" in study.title
            seeds = list(range(args.seeds))
            body = notes(study, seeds) + (HEART_NOTES if heart else "")
            body += "\n\n" + report(
                study, seeds, with_ckks=not args.plaintext_only, with_comparisons=builtin
            )
            name = "accuracy-bench" if heart else "accuracy-bench-" + _slug(study.title)
    body += f"\n\nWall time of this run: {time.perf_counter() - started:.0f} s."
    print(body)
    if not args.no_write:
        write_section(name, body, command.strip())


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:60]


def _study(args: argparse.Namespace) -> Study:
    if args.builtin:
        study = builtin_study()
    else:
        task_file = args.task_file or DEFAULT_TASK_FILE
        data = tuple(args.data) if args.data else (DEFAULT_DATA if args.task_file is None else ())
        if not data:
            raise SystemExit("--task-file needs --data, one path per site")
        if args.task_file is None and not task_file.exists():
            print(f"{task_file} not found: the built-in heart task", file=sys.stderr)
            study = builtin_study()
        else:
            sites = args.sites or (DEFAULT_SITES if args.data is None else None)
            study = file_study(task_file, data, args.baseline_lr, sites)
    if args.baseline_lr is not None:
        study.baseline_lr = args.baseline_lr
    overrides = {
        "epochs": args.personal_epochs,
        "lr": args.personal_lr,
        "fedprox_mu": args.personal_mu,
        "method": args.personal_method,
        "swarm_weight": args.personal_swarm_weight,
    }
    given = {k: v for k, v in overrides.items() if v is not None}
    if args.personal_select is not None:
        given["select"] = args.personal_select == "yes"
    if given:
        study.personal = replace(study.personal, **given)
    return study


if __name__ == "__main__":
    main()
