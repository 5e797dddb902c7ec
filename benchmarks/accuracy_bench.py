"""Accuracy of the swarm on real data: UCI Heart Disease at four hospitals.

Three ways to train the same model with the same preprocessing policy and the same budget
(every training row is seen ``rounds x epochs`` times), each over 5 seeds (a seed fixes the
sites' train/test splits, the initial weights and the shuffling):

- swarm: FedAvg over the four hospitals, ``rounds`` rounds of ``epochs`` local epochs. Each
  round goes through the real CKKS path of swarm.crypto (fresh round key, each site encrypts
  n_i * delta_i, the merge peer adds ciphertexts with the public context only, a key holder
  decrypts and applies the mean with swarm.merge.apply_mean_update). The same run in plaintext
  (swarm.merge.fedavg, identical arithmetic without the encryption) is reported beside it.
- centralized: all four hospitals' train rows pooled in one place (each row encoded by its own
  site's encoder, exactly the features the swarm trains on), ``rounds x epochs`` epochs.
- local-only: each hospital trains alone on its own train rows, ``rounds x epochs`` epochs,
  and is evaluated on its own test rows.

Accuracy (probability > 0.5) and ROC AUC on each hospital's test set and on all test rows
pooled (for local-only: each hospital's own model on its own rows), mean +- std over seeds.

Hyperparameters were chosen with ``--tune`` on *validation* splits carved out of the train rows
(seeds 100-104, disjoint from the reported seeds 0-4); test rows are never used for choosing.
The tuning table is written to docs/benchmarks.md too.

    .venv/bin/python benchmarks/accuracy_bench.py [--seeds 5] [--plaintext-only] [--no-write]
    .venv/bin/python benchmarks/accuracy_bench.py --tune [--no-write]
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import write_section
from swarm.merge import apply_mean_update, fedavg, model_delta
from swarm.training.heart import HeartDiseaseTask
from swarm.training.heart_data import SITES, Scaling
from swarm.training.loop import predict_logits, train_binary
from swarm.training.metrics import accuracy, roc_auc
from swarm.training.task import SiteData, TrainConfig

State = dict[str, torch.Tensor]
Update = tuple[Mapping[str, torch.Tensor], int]
POOLED = "pooled"
REPORT_SEEDS = range(0, 5)
TUNE_SEEDS = range(100, 105)


@dataclass(frozen=True)
class Setting:
    """Everything that defines one training method's run, but the seed."""

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

    def task(self) -> HeartDiseaseTask:
        return HeartDiseaseTask(model=self.model, scaling=self.scaling)  # type: ignore[arg-type]

    def config(self, seed: int) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            lr=self.lr,
            weight_decay=self.weight_decay,
            fedprox_mu=self.fedprox_mu,
            seed=seed,
        )

    def label(self) -> str:
        mu = f", mu {self.fedprox_mu:g}" if self.fedprox_mu else ""
        return (
            f"{self.model}, {self.scaling.value} scaling, {self.rounds} x {self.epochs} epochs, "
            f"lr {self.lr:g}{mu}"
        )


# The settings --tune chose (docs/benchmarks.md, "accuracy-tune"): same model, scaling and
# budget for all three; the learning rate tuned per method (and FedProx for the swarm). The
# swarm's setting is the task's own default (swarm.training.heart.DEFAULT_TRAINING).
def _swarm_setting(model: str, scaling: Scaling = Scaling.REFERENCE) -> Setting:
    task = HeartDiseaseTask(model=model, scaling=scaling)  # type: ignore[arg-type]
    config = task.default_config
    return Setting(
        model=model,
        scaling=scaling,
        rounds=task.default_rounds,
        epochs=config.epochs,
        lr=config.lr,
        fedprox_mu=config.fedprox_mu,
        weight_decay=config.weight_decay,
    )


SWARM = _swarm_setting("logreg")
CENTRALIZED = replace(SWARM, rounds=1, epochs=SWARM.budget, lr=0.01, fedprox_mu=0.0)
LOCAL = replace(SWARM, rounds=1, epochs=SWARM.budget, lr=0.01, fedprox_mu=0.0)
#: shown for comparison only: the best site-scaled swarm setting of --tune
SWARM_SITE_SCALED = replace(SWARM, scaling=Scaling.SITE, fedprox_mu=0.0)
SITE_SCALED_ROW = "swarm with site-standardized features (plaintext; comparison only)"
#: shown for comparison only: the MLP task with its own tuned defaults
SWARM_MLP = _swarm_setting("mlp")
MLP_ROW = "swarm, MLP task (plaintext; comparison only)"


# --- aggregation: plaintext reference and the CKKS path ------------------------------------


class Aggregation:
    """Turns the round's (delta, n_i) pairs into the next model."""

    name = "plaintext FedAvg"

    def __init__(self) -> None:
        self.timings: dict[str, list[float]] = defaultdict(list)

    def __call__(self, round_id: int, base: State, updates: Sequence[Update]) -> State:
        start = time.perf_counter()
        out = fedavg(base, updates)
        self.timings["aggregate (plaintext)"].append(time.perf_counter() - start)
        return out


class CkksAggregation(Aggregation):
    """One real encrypted round per call: what the swarm's peers compute, in one process."""

    name = "CKKS FedAvg"

    def __init__(self) -> None:
        super().__init__()
        import swarm.crypto as crypto  # the library itself stays free of crypto imports

        self.crypto = crypto

    def __call__(self, round_id: int, base: State, updates: Sequence[Update]) -> State:
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
        # exactly the peer's arithmetic (swarm.peer.keyholder): float64 sum, one rounding
        tensors = crypto.unflatten(summed, layout, dtype=np.float64)
        out = apply_mean_update(base, tensors, sum(n for _, n in updates))
        self.timings["finish + decrypt + apply"].append(clock() - start)
        return out


# --- the three methods -----------------------------------------------------------------------


@dataclass
class RunResult:
    """Test (or validation) logits per site, from each site's model for this method."""

    logits: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    train_ms: dict[str, list[float]] = field(default_factory=dict)
    final_state: State | None = None


def load_sites(setting: Setting, seed: int, validation: bool) -> dict[str, SiteData]:
    task = setting.task()
    return {site: task.load_site(site, seed, validation=validation) for site in SITES}


def _evaluate(models: Mapping[str, nn.Module], sites: Mapping[str, SiteData]) -> RunResult:
    logits = {s: predict_logits(models[s], d.x_test).numpy() for s, d in sites.items()}
    labels = {s: d.y_test.numpy() for s, d in sites.items()}
    return RunResult(logits=logits, labels=labels)


def run_swarm(
    setting: Setting,
    sites: Mapping[str, SiteData],
    seed: int,
    aggregation: Callable[[int, State, Sequence[Update]], State],
) -> RunResult:
    task = setting.task()
    config = setting.config(seed)
    model = task.build_model(seed)
    local = task.build_model(seed)
    train_ms: dict[str, list[float]] = defaultdict(list)
    for round_id in range(1, setting.rounds + 1):
        base = {k: v.clone() for k, v in model.state_dict().items()}
        updates: list[Update] = []
        for site, data in sites.items():
            local.load_state_dict(base)
            start = time.perf_counter()
            samples = task.train(local, data, config.for_round(round_id, site), base)
            train_ms[site].append(1000 * (time.perf_counter() - start))
            updates.append((model_delta(local.state_dict(), base), samples))
        model.load_state_dict(aggregation(round_id, base, updates))
    result = _evaluate(dict.fromkeys(sites, model), sites)
    result.train_ms = dict(train_ms)
    result.final_state = {k: v.clone() for k, v in model.state_dict().items()}
    return result


def run_centralized(setting: Setting, sites: Mapping[str, SiteData], seed: int) -> RunResult:
    task = setting.task()
    model = task.build_model(seed)
    x = torch.cat([d.x_train for d in sites.values()])
    y = torch.cat([d.y_train for d in sites.values()])
    config = replace(setting.config(seed), epochs=setting.budget).for_round(0, POOLED)
    train_binary(model, x, y, config)
    return _evaluate(dict.fromkeys(sites, model), sites)


def run_local(setting: Setting, sites: Mapping[str, SiteData], seed: int) -> RunResult:
    task = setting.task()
    models: dict[str, nn.Module] = {}
    for site, data in sites.items():
        model = task.build_model(seed)
        config = replace(setting.config(seed), epochs=setting.budget).for_round(0, site)
        task.train(model, data, config)
        models[site] = model
    return _evaluate(models, sites)


# --- scoring ---------------------------------------------------------------------------------


def scores(result: RunResult) -> dict[str, tuple[float, float]]:
    """(accuracy, AUC) per site and pooled over all sites' rows."""
    out = {
        s: (
            accuracy(result.logits[s], result.labels[s]),
            roc_auc(result.logits[s], result.labels[s]),
        )
        for s in result.logits
    }
    all_logits = np.concatenate(list(result.logits.values()))
    all_labels = np.concatenate(list(result.labels.values()))
    out[POOLED] = (accuracy(all_logits, all_labels), roc_auc(all_logits, all_labels))
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


def report(seeds: Sequence[int], with_ckks: bool) -> str:
    columns = [*SITES, POOLED]
    test_rows = {
        site: data.test_samples
        for site, data in load_sites(SWARM, seeds[0], validation=False).items()
    }
    methods: dict[str, list[dict[str, tuple[float, float]]]] = defaultdict(list)
    train_ms: dict[str, list[float]] = defaultdict(list)
    aggregations: list[Aggregation] = []
    max_weight_gap = 0.0
    for seed in seeds:
        sites = load_sites(SWARM, seed, validation=False)
        plain = Aggregation()
        plain_run = run_swarm(SWARM, sites, seed, plain)
        aggregations.append(plain)
        if with_ckks:
            ckks = CkksAggregation()
            ckks_run = run_swarm(SWARM, sites, seed, ckks)
            aggregations.append(ckks)
            methods["swarm (FedAvg through CKKS)"].append(scores(ckks_run))
            assert ckks_run.final_state is not None and plain_run.final_state is not None
            for name, tensor in ckks_run.final_state.items():
                gap = float((tensor - plain_run.final_state[name]).abs().max())
                max_weight_gap = max(max_weight_gap, gap)
        methods["swarm (plaintext FedAvg)"].append(scores(plain_run))
        for site, values in plain_run.train_ms.items():
            train_ms[site].extend(values)
        methods["centralized (pooled data)"].append(
            scores(run_centralized(CENTRALIZED, sites, seed))
        )
        methods["local-only (each hospital alone)"].append(scores(run_local(LOCAL, sites, seed)))
        site_scaled = load_sites(SWARM_SITE_SCALED, seed, validation=False)
        methods[SITE_SCALED_ROW].append(
            scores(run_swarm(SWARM_SITE_SCALED, site_scaled, seed, Aggregation()))
        )
        methods[MLP_ROW].append(scores(run_swarm(SWARM_MLP, sites, seed, Aggregation())))
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

    swarm_key = "swarm (FedAvg through CKKS)" if with_ckks else "swarm (plaintext FedAvg)"
    swarm_runs = methods[swarm_key]
    central_runs = methods["centralized (pooled data)"]
    local_runs = methods["local-only (each hospital alone)"]
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
    for metric, index in (("accuracy", 0), ("AUC", 1)):
        missed = []
        for site in SITES:
            swarm_mean = mean_std(r[site][index] for r in swarm_runs)[0]
            local_mean = mean_std(r[site][index] for r in local_runs)[0]
            if not swarm_mean > local_mean:
                missed.append(site)
        verdict = "met" if not missed else "MISSED at " + ", ".join(missed)
        lines.append(f"- {metric}, swarm vs each hospital alone: {verdict}")
    lines += [
        "",
        "Swarm minus local-only, per hospital, paired by seed (mean ± std over seeds; "
        "seeds where the swarm is better):",
        "",
        "| hospital | test rows | accuracy | AUC |",
        "|---|---:|---|---|",
    ]
    for site in SITES:
        cells = []
        for index in (0, 1):
            pairs = zip(swarm_runs, local_runs, strict=True)
            diffs = [s[site][index] - r[site][index] for s, r in pairs]
            better = sum(d > 0 for d in diffs)
            cells.append(f"{fmt(diffs)} ({better}/{len(diffs)})")
        lines.append(f"| {site} | {test_rows[site]} | " + " | ".join(cells) + " |")
    lines.append("")

    lines += [
        "**Settings** (chosen with `--tune` on validation splits; docs/benchmarks.md "
        "`accuracy-tune`)",
        "",
        f"- swarm: {SWARM.label()}, weight decay {SWARM.weight_decay:g}, SGD momentum 0.9, "
        "batch 32",
        f"- centralized: {CENTRALIZED.label()}",
        f"- local-only: {LOCAL.label()}",
        f"- site-standardized row: {SWARM_SITE_SCALED.label()} (the alternative scaling "
        "policy, docs/data.md)",
        f"- MLP row: {SWARM_MLP.label()} (task `heart-disease-uci/mlp`, its defaults)",
    ]
    if with_ckks:
        lines.append(
            f"- CKKS vs plaintext FedAvg, largest final weight difference over all seeds: "
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
    train_rows = {
        site: data.train_samples
        for site, data in load_sites(SWARM, seeds[0], validation=False).items()
    }
    for site in SITES:
        rows = train_rows[site]
        lines.append(
            f"| local training, {site} ({rows} rows x {SWARM.epochs} epochs) | "
            f"{statistics.median(train_ms[site]):.1f} |"
        )
    merged: dict[str, list[float]] = defaultdict(list)
    for aggregation in aggregations:
        for step, values in aggregation.timings.items():
            merged[step].extend(values)
    for step, values in merged.items():
        lines.append(f"| {step} | {1000 * statistics.median(values):.1f} |")
    return "\n".join(lines)


NOTES = (
    "UCI Heart Disease, four real hospitals (docs/data.md), each split 75/25 into train and "
    "test, stratified by label, per seed. Swarm = FedAvg over the four hospitals; centralized = "
    "the same model on all train rows pooled; local-only = each hospital alone, scored on its "
    "own test rows. Same model, features and budget (passes over each row) for all; each "
    "method's learning rate tuned on validation splits (section `accuracy-tune`). Pooled = all "
    "230 test rows of the four hospitals together. Switzerland's test split has 2 healthy "
    "patients of 31, so its AUC rests on 2 x 29 pairs and moves a lot between seeds."
)


# --- tuning ----------------------------------------------------------------------------------


def _validation_auc(
    runner: Callable[[Setting, Mapping[str, SiteData], int], RunResult],
    setting: Setting,
    cache: dict[tuple[Scaling, int], dict[str, SiteData]],
) -> tuple[float, float]:
    """Mean pooled validation (AUC, accuracy) over the tuning seeds."""
    aucs, accs = [], []
    for seed in TUNE_SEEDS:
        key = (setting.scaling, seed)
        if key not in cache:
            cache[key] = load_sites(setting, seed, validation=True)
        pooled = scores(runner(setting, cache[key], seed))[POOLED]
        accs.append(pooled[0])
        aucs.append(pooled[1])
    return statistics.fmean(aucs), statistics.fmean(accs)


def _swarm_runner(setting: Setting, sites: Mapping[str, SiteData], seed: int) -> RunResult:
    return run_swarm(setting, sites, seed, Aggregation())


def tune() -> str:
    """Grid search on validation splits; returns a markdown account of what was tried."""
    cache: dict[tuple[Scaling, int], dict[str, SiteData]] = {}
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
        auc, acc = _validation_auc(_swarm_runner, setting, cache)
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
        auc, acc = _validation_auc(_swarm_runner, setting, cache)
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
            setting = replace(chosen, rounds=1, epochs=chosen.budget, lr=lr, fedprox_mu=0.0)
            auc, acc = _validation_auc(runner, setting, cache)
            lines.append(f"| {method} | {lr:g} | {auc:.4f} ({acc:.3f}) |")
            print(lines[-1], file=sys.stderr, flush=True)
            if method not in baseline_lr or auc > baseline_lr[method][0]:
                baseline_lr[method] = (auc, lr)

    lines += [
        "",
        "**Stage 4: each hospital fine-tunes the swarm's final model on its own rows "
        "(personalization), swarm setting as chosen**",
        "",
        "| local epochs | lr | mu (to the swarm's model) | val AUC (acc) |",
        "|---:|---:|---:|---:|",
        f"| 0 (the swarm's model as is) | | | {best[0]:.4f} |",
    ]
    task = chosen.task()
    finals: dict[int, State] = {}
    for seed in TUNE_SEEDS:
        run = run_swarm(chosen, cache[(chosen.scaling, seed)], seed, Aggregation())
        assert run.final_state is not None
        finals[seed] = run.final_state
    for epochs, lr, mu in itertools.product((1, 3, 10), (0.01, 0.03), (0.0, 1.0)):
        aucs, accs = [], []
        for seed in TUNE_SEEDS:
            sites = cache[(chosen.scaling, seed)]
            models: dict[str, nn.Module] = {}
            for site, data in sites.items():
                personal = task.build_model(seed)
                personal.load_state_dict(finals[seed])
                config = TrainConfig(
                    epochs=epochs, lr=lr, fedprox_mu=mu, weight_decay=chosen.weight_decay, seed=seed
                )
                task.train(personal, data, config.for_round(0, site), finals[seed])
                models[site] = personal
            pooled = scores(_evaluate(models, sites))[POOLED]
            accs.append(pooled[0])
            aucs.append(pooled[1])
        lines.append(
            f"| {epochs} | {lr:g} | {mu:g} | {statistics.fmean(aucs):.4f} "
            f"({statistics.fmean(accs):.3f}) |"
        )
        print(lines[-1], file=sys.stderr, flush=True)

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
        + ".",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=len(REPORT_SEEDS))
    parser.add_argument("--tune", action="store_true", help="grid search on validation splits")
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
        body = NOTES + "\n\n" + report(list(range(args.seeds)), with_ckks=not args.plaintext_only)
        name = "accuracy-bench"
    body += f"\n\nWall time of this run: {time.perf_counter() - started:.0f} s."
    print(body)
    if not args.no_write:
        write_section(name, body, command.strip())


if __name__ == "__main__":
    main()
