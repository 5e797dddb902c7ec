"""Differential privacy at a peer: train a round with DP-SGD and keep this hospital's account.

The consortium's parameters (on the ledger) say whether rounds are private and with what noise
multiplier, clipping norm, delta and budget; swarm.training.privacy trains and accounts. This
module holds the account on disk (``privacy.json`` in the data directory), refuses a round the
budget cannot pay for *before* any patient row is touched, and records each round's step
before its update can leave the peer (a crash then over-counts, never under-counts).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from swarm.ledger.client import epsilon_to_micro
from swarm.ledger.types import Params
from swarm.peer.work import ActionSupersededError, StateDict
from swarm.training import TrainConfig, model_delta
from swarm.training.privacy import DpConfig, PrivacyAccount, sampling_plan, train_private

if TYPE_CHECKING:
    from swarm.peer.runner import Peer

log = logging.getLogger(__name__)


class PrivacyKeeper:
    """This hospital's privacy account, loaded lazily and saved after every recorded round."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._account: PrivacyAccount | None = None

    @property
    def account(self) -> PrivacyAccount:
        if self._account is None:
            self._account = PrivacyAccount.load(self.path, missing_ok=True)
        return self._account


def warm_up() -> None:
    """Pay once, at start-up, what the first DP-SGD round would otherwise pay on the round's
    critical path: importing Opacus (and SciPy) and torch.optim's first-step set-up, seconds of
    CPU per process. Trains a throwaway two-weight model on four made-up rows."""
    import torch

    from swarm.training import SiteData
    from swarm.training.models import LogisticRegression

    x = torch.zeros((4, 1))
    y = torch.tensor([0.0, 1.0, 0.0, 1.0])
    data = SiteData("warm-up", x, y, x, y, ("x",))
    train_private(
        LogisticRegression(1),
        data,
        TrainConfig(epochs=1, batch_size=2),
        DpConfig(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5),
    )


def dp_config(params: Params) -> DpConfig:
    return DpConfig(
        noise_multiplier=params.dp_noise_multiplier,
        max_grad_norm=params.dp_clip_norm,
        delta=params.dp_delta,
    )


def affordable(peer: Peer, params: Params, cfg: TrainConfig) -> tuple[bool, float]:
    """Whether one more round of DP-SGD stays within the consortium's budget, and the
    cumulative epsilon it would bring us to. Compared as the ledger will compare it
    (micro-epsilon, spending rounded up), so a commit that follows never reverts for it."""
    dp = dp_config(params)
    sample_rate, steps = sampling_plan(peer.data.train_samples, cfg)
    projected = peer.privacy.account.projected(dp.noise_multiplier, sample_rate, steps, dp.delta)
    return epsilon_to_micro(projected) <= epsilon_to_micro(params.epsilon_budget), projected


def refuse(peer: Peer, params: Params, round_id: int, projected: float) -> None:
    """Stop joining rounds (until the consortium raises the budget), and say so once."""
    if not peer.privacy_spent:
        account = peer.privacy.account
        peer.emit(
            "privacy budget spent",
            round=round_id,
            epsilon=round(account.epsilon(params.dp_delta), 4) if account.history else 0.0,
            would_be=round(projected, 4),
            budget=params.epsilon_budget,
        )
    peer.privacy_spent = True


def train_round(
    peer: Peer, params: Params, cfg: TrainConfig, base: StateDict, round_id: int
) -> tuple[StateDict, int, tuple[float, float]]:
    """One round of DP-SGD from ``base`` (blocking). Returns the update, the sample count and
    (this round's epsilon, our cumulative epsilon). Raises ActionSuperseded, and marks the peer
    as spent, when the round would take us past the consortium's budget."""
    dp = dp_config(params)
    account = peer.privacy.account
    ok, projected = affordable(peer, params, cfg)
    if not ok:
        refuse(peer, params, round_id, projected)
        raise ActionSupersededError(
            f"another round would spend epsilon {projected:.3f} of the budget "
            f"{params.epsilon_budget:g}: not training"
        )
    model = peer.task.build_model(peer.seed)
    model.load_state_dict(base)
    step = train_private(model, peer.data, cfg, dp, base)
    account.record(step)
    account.save(peer.privacy.path)
    spent = (account.round_epsilon(step, dp.delta), account.epsilon(dp.delta))
    log.info("round %d: epsilon %.4f this round, %.4f in all", round_id, *spent)
    return model_delta(model.state_dict(), base), step.samples, spent


__all__ = ["PrivacyKeeper", "affordable", "dp_config", "refuse", "train_round", "warm_up"]
