"""The peer's personal model (swarm.peer.personal and the hook in catchup.report_metrics), with
the real heart task and a stand-in peer around the code under test (no ledger, no network).

Faults exercised: personalization running when the task file turns it off (or there is no task
file); the personal numbers reaching the ledger instead of the swarm model's; the swarm model
changed by fine-tuning; the personal model not kept on disk, kept as one file per round, or
kept differently by a restarted peer; a failed fine-tuning that stops the swarm's own metrics.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import trio

from swarm.peer import personal
from swarm.peer.actions import ReportMetrics
from swarm.peer.catchup import report_metrics
from swarm.training.checkpoint import model_hash, read_checkpoint
from swarm.training.heart import HeartDiseaseTask
from swarm.training.personalize import DEFAULT_SWARM_WEIGHT
from swarm.training.taskfile import Personalization

TASK = HeartDiseaseTask()
SITE = "VA Long Beach"


def swarm_state() -> dict[str, torch.Tensor]:
    model = TASK.build_model(0)
    TASK.train(model, TASK.load_site("Cleveland", 0), dataclasses.replace(TASK.default_config))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Ledger:
    def __init__(self) -> None:
        self.reported: list[tuple[Any, ...]] = []

    def report_metrics(self, *args: Any) -> None:
        self.reported.append(args)


def fake_peer(
    tmp_path: Path,
    epochs: int | None,
    lr: float | None = 0.03,
    select: bool = False,
    method: str | None = None,
) -> Any:
    """The attributes report_metrics and swarm.peer.personal read."""
    events: list[tuple[str, dict[str, Any]]] = []

    async def call(fn: Any, *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args)

    task_file = (
        None
        if epochs is None
        else SimpleNamespace(
            personalization=Personalization(
                epochs=epochs, lr=lr, select=select, method=method or "mixture"
            )
        )
    )
    return SimpleNamespace(
        task=TASK,
        task_file=task_file,
        seed=0,
        data=TASK.load_site(SITE, 0),
        train_config=dataclasses.replace(TASK.default_config, seed=0),
        model=SimpleNamespace(state=swarm_state()),
        config=SimpleNamespace(data_dir=tmp_path, report_metrics=True),
        params=SimpleNamespace(metrics_enabled=True),
        ledger=Ledger(),
        metrics_round=0,
        own_models=personal.OwnModelCache(),
        call=call,
        events=events,
        emit=lambda kind, **data: events.append((kind, data)),
    )


def report(peer: Any, round_id: int) -> dict[str, Any]:
    trio.run(report_metrics, peer, ReportMetrics(round_id=round_id))
    ((kind, data),) = [e for e in peer.events if e[1].get("round") == round_id]
    assert kind == "metrics"
    return data


def test_personal_metrics_sit_next_to_the_swarms_and_only_the_swarms_reach_the_ledger(
    tmp_path: Path,
) -> None:
    peer = fake_peer(tmp_path, epochs=5)
    before = model_hash(peer.model.state)
    data = report(peer, 3)
    assert {"accuracy", "auc", "loss", "personal_accuracy", "personal_auc"} <= set(data)
    assert model_hash(peer.model.state) == before  # the swarm model is untouched
    ((round_id, samples, acc, auc, loss),) = peer.ledger.reported
    assert (round_id, acc, auc, loss) == (3, data["accuracy"], data["auc"], data["loss"])
    assert samples == peer.data.test_samples
    kept = read_checkpoint(personal.latest_path(tmp_path))
    assert kept.round_id == 3 and kept.model_hash != before
    assert kept.config["site"] == SITE and kept.config["epochs"] == 5
    assert kept.config["chosen"] == kept.config["method"] == "mixture"  # the default
    assert kept.config["swarm_weight"] == DEFAULT_SWARM_WEIGHT
    # the numbers reported are the kept model's
    model = TASK.build_model(0)
    model.load_state_dict(kept.state_dict)
    metrics = TASK.evaluate(model, peer.data)
    assert (metrics.accuracy, metrics.auc) == (data["personal_accuracy"], data["personal_auc"])


def test_a_fine_tuning_task_file_keeps_the_fine_tuned_copy(tmp_path: Path) -> None:
    """``method = "finetune"``: the copy fine-tuned from the swarm model, not a mixture."""
    peer = fake_peer(tmp_path, epochs=3, method="finetune")
    report(peer, 2)
    kept = read_checkpoint(personal.latest_path(tmp_path))
    assert kept.config["chosen"] == "fine-tuned" and kept.config["method"] == "finetune"
    assert "swarm_weight" not in kept.config


def test_only_the_latest_personal_model_is_kept_and_a_restart_rebuilds_the_same(
    tmp_path: Path,
) -> None:
    peer = fake_peer(tmp_path, epochs=2)
    report(peer, 1)
    report(peer, 2)
    assert sorted(p.name for p in (tmp_path / "personal").iterdir()) == ["latest.ckpt"]
    second = read_checkpoint(personal.latest_path(tmp_path))
    assert second.round_id == 2
    again = fake_peer(tmp_path / "restarted", epochs=2)
    report(again, 2)
    assert read_checkpoint(personal.latest_path(tmp_path / "restarted")).model_hash == (
        second.model_hash
    )


def test_the_own_model_is_trained_once_and_the_personal_model_follows_the_swarm_model(
    tmp_path: Path,
) -> None:
    """The mixture's own model does not depend on the round: trained in the first round and
    reused, while each round's personal model still mixes in that round's swarm model. A
    restarted peer (a new cache) trains the same own model again."""
    peer = fake_peer(tmp_path, epochs=3)
    report(peer, 1)
    first = read_checkpoint(personal.latest_path(tmp_path))
    peer.model.state = {k: v + 0.5 for k, v in peer.model.state.items()}
    report(peer, 2)
    second = read_checkpoint(personal.latest_path(tmp_path))
    assert peer.own_models.trained == 1
    assert second.model_hash != first.model_hash  # the new swarm model is in it
    # 0.1 x swarm + 0.9 x own: the own model is what is left after the swarm's share
    weight = DEFAULT_SWARM_WEIGHT
    own_1 = {
        k: (first.state_dict[k].double() - weight * (second_state - 0.5).double()) / (1 - weight)
        for k, second_state in peer.model.state.items()
    }
    own_2 = {
        k: (second.state_dict[k].double() - weight * peer.model.state[k].double()) / (1 - weight)
        for k in own_1
    }
    for k in own_1:
        assert torch.allclose(own_1[k], own_2[k], atol=1e-5)
    restarted = fake_peer(tmp_path / "restarted", epochs=3)
    restarted.model.state = peer.model.state
    report(restarted, 2)
    again = read_checkpoint(personal.latest_path(tmp_path / "restarted"))
    assert again.model_hash == second.model_hash and restarted.own_models.trained == 1


def test_changed_settings_train_the_own_model_again(tmp_path: Path) -> None:
    peer = fake_peer(tmp_path, epochs=2)
    report(peer, 1)
    peer.task_file.personalization = Personalization(epochs=3, lr=0.03)
    report(peer, 2)
    assert peer.own_models.trained == 2


def test_off_without_a_task_file_or_with_zero_epochs(tmp_path: Path) -> None:
    for index, epochs in enumerate((None, 0)):
        peer = fake_peer(tmp_path / str(index), epochs=epochs)
        data = report(peer, 1)
        assert "personal_accuracy" not in data and "personal_auc" not in data
        assert not (tmp_path / str(index) / "personal").exists()
        assert len(peer.ledger.reported) == 1


def test_a_failed_fine_tuning_leaves_the_swarms_metrics_reported(tmp_path: Path) -> None:
    """The personal directory cannot be created (a file sits where it should be): a warning,
    and the metrics event and the ledger report go out as without personalization."""
    peer = fake_peer(tmp_path, epochs=1)
    (tmp_path / "personal").write_text("not a directory")
    data = report(peer, 1)
    assert "personal_accuracy" not in data and "accuracy" in data
    assert len(peer.ledger.reported) == 1


def test_settings_follow_the_task_file() -> None:
    """Keys a task file does not have take their defaults: the mixture with the library's
    swarm weight, the training config's FedProx mu, and the validation choice on."""
    spec = SimpleNamespace(personalization=Personalization(epochs=4, lr=None))
    assert personal.settings_of(SimpleNamespace(task_file=spec)) == personal.PersonalSettings(
        epochs=4, lr=None, fedprox_mu=None, select=True, method="mixture", swarm_weight=None
    )
    spec = SimpleNamespace(
        personalization=Personalization(epochs=2, lr=0.1, method="finetune", swarm_weight=0.5)
    )
    settings = personal.settings_of(SimpleNamespace(task_file=spec))
    assert (settings.method, settings.swarm_weight) == ("finetune", 0.5)
    assert personal.settings_of(SimpleNamespace()).epochs == 0
    assert personal.settings_of(SimpleNamespace(task_file=None)).epochs == 0


def test_the_heart_task_files_personalization_runs_at_a_peer(tmp_path: Path) -> None:
    """The real task file (examples/heart/task.toml) bound to one hospital's CSV: its
    [personalization] drives the fine-tuning and the kept model is that task's model."""
    from swarm.training.taskfile import TaskFile, open_task

    root = Path(__file__).resolve().parents[2] / "examples" / "heart"
    spec = TaskFile.load(root / "task.toml")
    task = open_task(spec, root / "data" / "hungary.csv", "Hungary")
    peer = fake_peer(tmp_path, epochs=None)
    peer.task, peer.task_file, peer.seed = task, spec, spec.seed
    peer.data = task.load_site("Hungary", spec.seed)
    peer.train_config = spec.training
    peer.model.state = {
        k: v.detach().clone() for k, v in task.build_model(spec.seed).state_dict().items()
    }
    data = report(peer, 1)
    assert spec.personalization.epochs > 0
    assert 0.0 <= data["personal_accuracy"] <= 1.0 and 0.0 <= data["personal_auc"] <= 1.0
    kept = read_checkpoint(personal.latest_path(tmp_path))
    assert set(kept.state_dict) == set(peer.model.state)
