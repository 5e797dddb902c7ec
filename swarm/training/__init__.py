"""Local training: the task interface, built-in tasks, and the canonical model encoding.

Pure torch: nothing here does network or ledger I/O, and nothing imports swarm.crypto.

- :mod:`swarm.training.task`: the :class:`Task` protocol a model plus a data source implements
  (``build_model``, ``load_site``, ``train``, ``evaluate``) and its value types
  (:class:`TrainConfig`, :class:`SiteData`, :class:`Metrics`);
- :mod:`swarm.training.registry`: tasks by name (:func:`get_task`);
- :mod:`swarm.training.heart`, :mod:`swarm.training.heart_data`: the built-in task, UCI Heart
  Disease at four hospitals (docs/data.md);
- :mod:`swarm.training.loop`: deterministic local training with optional FedProx, evaluation;
- :mod:`swarm.training.privacy`: DP-SGD local training (Opacus, imported lazily) and a site's
  persisted privacy account (RDP accountant);
- :mod:`swarm.training.models`, :mod:`swarm.training.metrics`: the models, accuracy and AUC;
- :mod:`swarm.training.checkpoint`: model bytes, model hash, checkpoints.

The update arithmetic around the encrypted sum (``model_delta``, ``apply_mean_update``, the
plaintext ``fedavg`` reference) lives in :mod:`swarm.merge` (pure torch too) and is re-exported
here, so a round's training side reads from one import.
"""

from swarm.merge import apply_mean_update, fedavg, model_delta
from swarm.training.privacy import (
    DpConfig,
    Mechanism,
    PrivacyAccount,
    PrivacyAccountError,
    PrivateStep,
    noise_for_budget,
    sampling_plan,
    train_private,
)
from swarm.training.registry import DEFAULT_TASK, get_task, register_task, task_names
from swarm.training.task import Metrics, SiteData, Task, TrainConfig

__all__ = [
    "DEFAULT_TASK",
    "DpConfig",
    "Mechanism",
    "Metrics",
    "PrivacyAccount",
    "PrivacyAccountError",
    "PrivateStep",
    "SiteData",
    "Task",
    "TrainConfig",
    "apply_mean_update",
    "fedavg",
    "get_task",
    "model_delta",
    "noise_for_budget",
    "register_task",
    "sampling_plan",
    "task_names",
    "train_private",
]
