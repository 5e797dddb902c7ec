"""The hospital's personal model at the peer: fine-tuned after each finalized round, kept on
disk next to the swarm's checkpoints, never offered, pushed or reported anywhere.

After a round is finalized the peer evaluates the swarm model on its test split (catchup's
``report_metrics``); when the consortium's task file asks for personalization
(``[personalization] epochs`` > 0) it also builds its personal model from the swarm model and
its own train rows (swarm.training.personalize: by default the swarm model mixed with the
hospital's own locally trained model), evaluates it on the same test split and keeps it at
``data_dir/personal/latest.ckpt`` (swarm.training.checkpoint format, round and settings in its
header). Only the two numbers ``personal_accuracy`` and ``personal_auc`` go into the local
``metrics`` event; the ledger's metrics stay the swarm model's.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from swarm.errors import CheckpointError
from swarm.training.checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from swarm.training.personalize import (
    DEFAULT_SWARM_WEIGHT,
    StateDict,
    personalize,
    train_own_model,
)
from swarm.training.task import Metrics, SiteData, Task, TrainConfig
from swarm.training.taskfile import Personalization

if TYPE_CHECKING:
    from swarm.peer.runner import Peer

log = logging.getLogger(__name__)

#: under the peer's data_dir
PERSONAL_DIR = "personal"
LATEST = "latest.ckpt"


#: what the task file's ``[personalization]`` asks for (epochs 0: off)
PersonalSettings = Personalization


def settings_of(peer: Any) -> Personalization:
    """The peer's personalization settings; off when it has no task file (a built-in task)."""
    spec = getattr(peer, "task_file", None)
    return spec.personalization if spec is not None else Personalization()


@dataclass(frozen=True)
class PersonalOutcome:
    metrics: Metrics
    chosen: str
    path: Path


class OwnModelCache:
    """The hospital's own model of the mixture, trained once per process.

    It is the swarm's initial model trained on this hospital's train rows alone: it depends on
    the data, the initial model and the settings, never on the round's swarm model. Retraining
    it after every round (as before) cost each peer its whole personalization budget per round
    (40 epochs: ~0.1-0.4 CPU-s of a 2-core machine's ~2 CPU-s per heart round) for an equivalent
    model. Its shuffling seed is fixed (derived from the config's seed and the site, not the
    round), so a restarted peer trains the same one again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._state: StateDict | None = None
        self.trained = 0  # how many times it was trained (read by tests)

    def get(self, key: tuple[Any, ...], train: Callable[[], StateDict]) -> StateDict:
        """The model kept for ``key``, trained now if there is none or the key changed."""
        with self._lock:
            if self._state is None or self._key != key:
                self._state = train()
                self._key = key
                self.trained += 1
            return self._state


def own_model_seed(config: TrainConfig, site: str) -> int:
    """The own model's shuffling seed: the same in every round and after a restart."""
    return config.for_round(0, f"{site}/personal-own").seed


def latest_path(data_dir: Path) -> Path:
    return Path(data_dir) / PERSONAL_DIR / LATEST


def save_personal(
    data_dir: Path, round_id: int, state: Mapping[str, torch.Tensor], header: Mapping[str, Any]
) -> Path:
    """Write the personal model as ``personal/latest.ckpt``, atomically: a checkpoint file
    written and verified by swarm.training.checkpoint, then renamed over the previous one."""
    directory = Path(data_dir) / PERSONAL_DIR
    written = write_checkpoint(directory, round_id, state, header)
    target = directory / LATEST
    os.replace(written, target)
    return target


def load_personal(data_dir: Path) -> Checkpoint | None:
    """The personal model kept last, or None if there is none (or it does not verify)."""
    path = latest_path(data_dir)
    if not path.exists():
        return None
    try:
        return read_checkpoint(path)
    except CheckpointError as exc:
        log.warning("personal model not read: %s", exc)
        return None


def update_personal_model(
    task: Task,
    state: Mapping[str, torch.Tensor],
    data: SiteData,
    settings: PersonalSettings,
    *,
    config: TrainConfig,
    round_id: int,
    model_seed: int,
    data_dir: Path,
    own_models: OwnModelCache | None = None,
) -> PersonalOutcome:
    """Build the personal model from the swarm model of ``round_id``, evaluate it on the test
    split, keep it.

    Blocking (training and a file write): the peer runs it in a worker thread. The shuffling
    seed is derived from (config seed, round, site), and the hospital's own model starts from
    the swarm's initial model (``model_seed``), so a restarted peer rebuilds the same personal
    model from the same swarm model. With ``own_models`` the mixture's own model is trained
    once and kept there (:class:`OwnModelCache`).
    """
    seed = config.for_round(round_id, f"{data.site}/personal").seed
    own = None
    if settings.method == "mixture" and settings.epochs > 0 and own_models is not None:
        lr = settings.lr if settings.lr is not None else config.lr
        own_config = dataclasses.replace(config, lr=lr)
        own_seed = own_model_seed(config, data.site)
        own = own_models.get(
            (settings, own_config, model_seed, data.site),
            lambda: train_own_model(
                task, data, own_config, epochs=settings.epochs, seed=own_seed, model_seed=model_seed
            ),
        )
    result = personalize(
        task,
        state,
        data,
        epochs=settings.epochs,
        lr=settings.lr,
        fedprox_mu=settings.fedprox_mu,
        select=settings.select,
        seed=seed,
        config=config,
        method=settings.method,
        swarm_weight=settings.swarm_weight,
        model_seed=model_seed,
        own=own,
    )
    model = task.build_model(model_seed)
    model.load_state_dict(result.state)
    metrics = task.evaluate(model, data)
    header = {
        "site": data.site,
        "swarm_round": round_id,
        "epochs": settings.epochs,
        "lr": settings.lr if settings.lr is not None else config.lr,
        "chosen": result.chosen,
        "method": settings.method,
    }
    if settings.method == "mixture":
        header["swarm_weight"] = (
            settings.swarm_weight if settings.swarm_weight is not None else DEFAULT_SWARM_WEIGHT
        )
    path = save_personal(data_dir, round_id, result.state, header)
    log.info(
        "personal model of round %d (%s): accuracy %.4f auc %.4f",
        round_id,
        result.chosen,
        metrics.accuracy,
        metrics.auc,
    )
    return PersonalOutcome(metrics=metrics, chosen=result.chosen, path=path)


async def after_round(peer: Peer, round_id: int) -> dict[str, float]:
    """The ``metrics`` event's personal fields for ``round_id`` ({} when personalization is
    off or failed: the swarm's own metrics are reported either way)."""
    settings = settings_of(peer)
    if settings.epochs <= 0:
        return {}
    config = peer.train_config  # the site's own: batch size, optimizer, device
    try:
        outcome = await peer.call(
            lambda: update_personal_model(
                peer.task,
                peer.model.state,
                peer.data,
                settings,
                config=config,
                round_id=round_id,
                model_seed=peer.seed,
                data_dir=peer.config.data_dir,
                own_models=peer.own_models,
            )
        )
    except (OSError, ValueError, CheckpointError) as exc:
        log.warning("personal model of round %d not updated: %s", round_id, exc)
        return {}
    return {"personal_accuracy": outcome.metrics.accuracy, "personal_auc": outcome.metrics.auc}


__all__ = [
    "OwnModelCache",
    "PersonalOutcome",
    "PersonalSettings",
    "after_round",
    "latest_path",
    "load_personal",
    "own_model_seed",
    "save_personal",
    "settings_of",
    "update_personal_model",
]
