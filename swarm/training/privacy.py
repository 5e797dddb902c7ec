"""Differentially private local training (DP-SGD with Opacus) and the privacy account of a site.

DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016, arXiv:1607.00133):
every step draws a Poisson sample of the site's rows (each row independently with probability
``q = batch_size / rows``), computes each row's gradient, clips it to L2 norm ``C``
(``max_grad_norm``), sums, adds Gaussian noise N(0, (sigma * C)^2) per coordinate (``sigma`` =
``noise_multiplier``) and divides by the expected batch size. The released model is then
(epsilon, delta)-DP with respect to adding or removing one of the site's rows, epsilon given by
the Renyi-DP accountant of the subsampled Gaussian mechanism (Mironov, Talwar, Zhang 2019,
arXiv:1908.10530), composed over every step the site has ever taken (:class:`PrivacyAccount`).

The guarantee is the site's own ("local" to the hospital): whatever the swarm does with the
update afterwards (masking, CKKS, FedAvg with the weight ``n_i``, the ledger) is
post-processing and costs no privacy. Everything a site releases across rounds composes, so the
account must be persisted (:meth:`PrivacyAccount.save`) and checked against the budget before a
round (:meth:`PrivacyAccount.projected`).

Opacus 1.6.0 does the per-sample work: :class:`opacus.GradSampleModule` computes per-sample
gradients with hooks on the caller's module (nothing is copied: the caller's ``model`` is the
module trained, so its ``state_dict`` keys never gain Opacus's ``_module.`` prefix), and
:class:`opacus.optimizers.DPOptimizer` clips, sums, adds the noise and scales; the Poisson
batches come from :class:`opacus.utils.uniform_sampler.UniformWithReplacementSampler`, the
accounting from :class:`opacus.accountants.RDPAccountant`. ``PrivacyEngine`` is not used: it
wants a ``DataLoader`` and a module it may replace, and the rows here are already two tensors.

Same objective as :func:`swarm.training.loop.train_binary`: BCE with logits, SGD with momentum
and weight decay (``torch.optim.SGD``: DPOptimizer needs a real torch optimizer; importing
Opacus imports ``torch.optim`` anyway). The loss is summed over the batch so Opacus sees true
per-sample gradients, and the noisy sum is divided by the *expected* batch size (the actual
size of a Poisson batch varies and is itself private), i.e. Opacus's ``loss_reduction="mean"``
estimator. An empty Poisson batch is a step of pure noise, as the accountant assumes.

FedProx: the proximal gradient ``mu * (w - w_global)`` is added *after* clipping and noise (a
DPOptimizer step hook). It depends on no row, only on the current (already private) weights
and the round's public base model, so it is post-processing and costs no privacy; the same
holds for weight decay and momentum.

Randomness. Sampling is seeded from ``config.seed``. The noise is **not**, by default: a
round's ``config.seed`` is derived by :meth:`TrainConfig.for_round` from values every peer
knows, and anybody who can regenerate the noise can subtract it, which voids the guarantee.
``noise_seed=None`` (the default) draws a fresh 63-bit seed from the OS (``secrets``); pass an
integer only for reproducible runs (tests, benchmarks) or when it is derived from a secret the
site alone holds. Opacus's ``secure_mode`` is off by default: it makes each noise value a sum of
four Gaussians to resist floating-point attacks on the noise's low-order bits (Mironov 2012;
arXiv:2107.10138), which matters when an adversary sees the exact float32 update. In the swarm
nobody sees a single site's update (it is masked inside CKKS) and the decrypted sum is rounded
to a 2^-20 grid, so the attack's precondition does not hold; turn ``secure_mode`` on when
updates are released unmasked or unrounded. Neither setting makes torch's generator a CSPRNG.

Determinism: with a fixed ``noise_seed`` the same model, data and config give bit-identical
weights on the CPU (one intra-op thread, as :mod:`swarm.training.loop`).

Opacus is imported lazily (it costs seconds), so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from swarm._files import write_atomic
from swarm.errors import SwarmError
from swarm.training.loop import TRAIN_THREADS, _threads
from swarm.training.task import SiteData, TrainConfig

log = logging.getLogger(__name__)

#: the format of a saved account (:meth:`PrivacyAccount.save`)
ACCOUNT_VERSION = 1


class PrivacyAccountError(SwarmError, ValueError):
    """A privacy account file is missing, not JSON, or not a valid account."""


@dataclass(frozen=True)
class DpConfig:
    """DP-SGD's parameters: noise multiplier sigma, clipping norm C, and the delta of the
    (epsilon, delta) guarantee that is reported and budgeted."""

    noise_multiplier: float
    max_grad_norm: float
    delta: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0):
            raise ValueError(f"noise_multiplier must be positive, not {self.noise_multiplier}")
        if not (math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0):
            raise ValueError(f"max_grad_norm must be positive, not {self.max_grad_norm}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), not {self.delta}")


@dataclass(frozen=True)
class Mechanism:
    """One run of the subsampled Gaussian mechanism: ``steps`` steps at one (sigma, q)."""

    noise_multiplier: float
    sample_rate: float
    steps: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0):
            raise ValueError(f"noise_multiplier must be positive, not {self.noise_multiplier}")
        if not 0 < self.sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1], not {self.sample_rate}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, not {self.steps!r}")


@dataclass(frozen=True)
class PrivateStep:
    """What :func:`train_private` did: rows trained on (n_i), the Poisson sample rate, the
    number of noisy steps, and the noise multiplier they used (what the account records)."""

    samples: int
    sample_rate: float
    steps: int
    noise_multiplier: float

    @property
    def mechanism(self) -> Mechanism:
        return Mechanism(self.noise_multiplier, self.sample_rate, self.steps)


def sampling_plan(rows: int, config: TrainConfig) -> tuple[float, int]:
    """(sample rate, steps) of :func:`train_private` on ``rows`` rows: q = batch_size / rows
    (at most 1) and ``epochs * ceil(rows / batch_size)`` steps (= epochs * ceil(1 / q)).

    Known before training, so a site can check :meth:`PrivacyAccount.projected` first.
    """
    if rows < 1:
        raise ValueError("no training rows")
    batch = min(config.batch_size, rows)
    return batch / rows, config.epochs * -(-rows // batch)


@contextlib.contextmanager
def _quiet_opacus() -> Iterator[None]:
    """Silence Opacus's known harmless warnings for the duration of the call only (the
    filters are restored on exit; like any ``catch_warnings`` they apply to other threads
    while the call runs)."""
    with warnings.catch_warnings():
        # RDP conversion: the best order sits at the edge of the default alphas (happens for
        # very small or very large epsilon; the bound stays valid, only slightly loose)
        warnings.filterwarnings("ignore", message="Optimal order is the", category=UserWarning)
        # torch, about Opacus's per-sample hooks on the first layer, whose input (the data)
        # needs no gradient: the hook still gets the output gradient it needs
        warnings.filterwarnings(
            "ignore",
            message="Full backward hook is firing when gradients are computed with "
            "respect to module outputs",
            category=UserWarning,
        )
        yield


def train_private(
    model: nn.Module,
    data: SiteData,
    config: TrainConfig,
    dp: DpConfig,
    global_model: Mapping[str, torch.Tensor] | None = None,
    *,
    noise_seed: int | None = None,
    secure_mode: bool = False,
) -> PrivateStep:
    """Train ``model`` (logit output) in place with DP-SGD on ``data``'s train split.

    Poisson batches of expected size ``config.batch_size`` (seeded from ``config.seed``),
    per-sample clipping to ``dp.max_grad_norm``, Gaussian noise of std
    ``dp.noise_multiplier * dp.max_grad_norm`` (seeded from ``noise_seed``; fresh OS entropy
    when None: see the module docstring), ``config.epochs * ceil(rows / batch_size)`` steps of
    SGD with ``config``'s lr, momentum and weight decay; FedProx toward ``global_model`` (default:
    the weights at the start) when ``config.fedprox_mu`` > 0, at no privacy cost.

    The model keeps its class, its parameters (updated in place) and its ``state_dict`` keys;
    no Opacus hook or attribute is left on it. Record the result in the site's
    :class:`PrivacyAccount`.
    """
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    x, y = data.x_train, data.y_train
    rows = int(y.shape[0])
    if rows == 0:
        raise ValueError("no training rows")
    if x.shape[0] != rows:
        raise ValueError(f"{x.shape[0]} feature rows for {rows} labels")
    sample_rate, steps = sampling_plan(rows, config)
    expected_batch = min(config.batch_size, rows)
    params = [p for p in model.parameters() if p.requires_grad]
    anchor: list[torch.Tensor] | None = None
    if config.fedprox_mu > 0:
        source = global_model if global_model is not None else dict(model.named_parameters())
        anchor = [
            source[name].detach().clone().to(torch.float32)
            for name, p in model.named_parameters()
            if p.requires_grad
        ]
    if noise_seed is None:
        noise_seed = secrets.randbits(63)
    sample_rng = torch.Generator().manual_seed(config.seed)
    noise_rng = torch.Generator().manual_seed(noise_seed)
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")  # per-sample grads: see module docstring

    with _quiet_opacus(), _threads(TRAIN_THREADS), torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # for any stochastic layer, as train_binary
        wrapped = GradSampleModule(model, batch_first=True, loss_reduction="sum", strict=True)
        try:
            optimizer = DPOptimizer(
                torch.optim.SGD(
                    params,
                    lr=config.lr,
                    momentum=config.momentum,
                    weight_decay=config.weight_decay,
                    foreach=False,
                ),
                noise_multiplier=dp.noise_multiplier,
                max_grad_norm=dp.max_grad_norm,
                expected_batch_size=expected_batch,
                loss_reduction="mean",  # divide the noisy sum by the expected batch size
                generator=noise_rng,
                secure_mode=secure_mode,
            )
            if anchor is not None:
                mu = config.fedprox_mu
                fixed = anchor

                def proximal(_: object) -> None:
                    # after clip + noise + scaling, before the SGD update: post-processing
                    with torch.no_grad():
                        for param, center in zip(params, fixed, strict=True):
                            assert param.grad is not None
                            param.grad.add_(param - center, alpha=mu)

                optimizer.attach_step_hook(proximal)
            sampler = UniformWithReplacementSampler(
                num_samples=rows, sample_rate=sample_rate, generator=sample_rng, steps=steps
            )
            wrapped.train()
            for indices in sampler:
                batch = torch.as_tensor(indices, dtype=torch.long)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(wrapped(x[batch]), y[batch])
                loss.backward()
                optimizer.step()
        finally:
            wrapped.to_standard_module()  # removes hooks and grad_sample & co. from params
            for param in params:
                with contextlib.suppress(AttributeError):
                    del param.summed_grad  # type: ignore[attr-defined]  # DPOptimizer's
                param.grad = None
    model.eval()
    log.debug(
        "DP-trained %d rows: %d steps at q %.4f, sigma %g, C %g (lr %g, mu %g, seed %d)",
        rows,
        steps,
        sample_rate,
        dp.noise_multiplier,
        dp.max_grad_norm,
        config.lr,
        config.fedprox_mu,
        config.seed,
    )
    return PrivateStep(
        samples=rows, sample_rate=sample_rate, steps=steps, noise_multiplier=dp.noise_multiplier
    )


def _epsilon(history: Sequence[Mechanism], delta: float) -> float:
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), not {delta}")
    if not history:
        return 0.0
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(m.noise_multiplier, m.sample_rate, m.steps) for m in history]
    with _quiet_opacus():
        return float(accountant.get_epsilon(delta=delta))


class PrivacyAccount:
    """Everything one site has released under DP-SGD, and the epsilon it adds up to.

    The history is a list of :class:`Mechanism` entries (one per round's training); epsilon is
    the RDP accountant's over all of them, composed (tighter than adding per-round epsilons).
    Persist it with :meth:`save` after every round that released an update, *before* the
    update leaves the site.
    """

    def __init__(self, history: Sequence[Mechanism] = ()) -> None:
        self.history: list[Mechanism] = list(history)

    def __len__(self) -> int:
        return len(self.history)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrivacyAccount) and self.history == other.history

    def __repr__(self) -> str:
        return f"PrivacyAccount({len(self.history)} entries)"

    def record(self, step: PrivateStep | Mechanism) -> None:
        """Add one round's training to the history."""
        self.history.append(step.mechanism if isinstance(step, PrivateStep) else step)

    def epsilon(self, delta: float) -> float:
        """Total epsilon of the history at ``delta`` (0.0 for an empty history)."""
        return _epsilon(self.history, delta)

    def round_epsilon(self, step: PrivateStep | Mechanism, delta: float) -> float:
        """Epsilon of ``step``'s mechanism alone (what that round would cost a fresh site)."""
        mechanism = step.mechanism if isinstance(step, PrivateStep) else step
        return _epsilon([mechanism], delta)

    def projected(
        self, noise_multiplier: float, sample_rate: float, steps: int, delta: float
    ) -> float:
        """Total epsilon if one more (sigma, q, steps) entry were recorded: check this against
        the budget before training (:func:`sampling_plan` gives q and steps)."""
        return _epsilon([*self.history, Mechanism(noise_multiplier, sample_rate, steps)], delta)

    # --- persistence ---------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": ACCOUNT_VERSION,
                "accountant": "rdp",
                "history": [
                    {
                        "noise_multiplier": m.noise_multiplier,
                        "sample_rate": m.sample_rate,
                        "steps": m.steps,
                    }
                    for m in self.history
                ],
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str, *, source: str = "privacy account") -> PrivacyAccount:
        try:
            doc: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PrivacyAccountError(f"{source} is not valid JSON ({exc.msg})") from None
        if not isinstance(doc, dict) or doc.get("version") != ACCOUNT_VERSION:
            raise PrivacyAccountError(f"{source} is not a version-{ACCOUNT_VERSION} account")
        if doc.get("accountant") != "rdp" or not isinstance(doc.get("history"), list):
            raise PrivacyAccountError(f"{source} has no RDP history list")
        history = []
        for index, entry in enumerate(doc["history"]):
            try:
                if not isinstance(entry, dict) or set(entry) != {
                    "noise_multiplier",
                    "sample_rate",
                    "steps",
                }:
                    raise ValueError("wrong fields")
                history.append(
                    Mechanism(
                        float(entry["noise_multiplier"]),
                        float(entry["sample_rate"]),
                        entry["steps"],
                    )
                )
            except (TypeError, ValueError) as exc:
                raise PrivacyAccountError(
                    f"{source}: history entry {index} is invalid ({exc})"
                ) from None
        return cls(history)

    def save(self, path: str | Path) -> None:
        """Write the account to ``path`` atomically (temp file, fsync, rename)."""
        write_atomic(Path(path), (self.to_json() + "\n").encode())

    @classmethod
    def load(cls, path: str | Path, *, missing_ok: bool = False) -> PrivacyAccount:
        """Read an account written by :meth:`save`; a missing file is an error unless
        ``missing_ok`` (then: an empty account, a site that has released nothing yet)."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if missing_ok:
                return cls()
            raise PrivacyAccountError(f"privacy account {path} does not exist") from None
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise PrivacyAccountError(f"privacy account {path} is not UTF-8 text") from None
        return cls.from_json(text, source=f"privacy account {path}")


def noise_for_budget(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The smallest noise multiplier (to 0.5 % of ``epsilon``) whose ``steps`` steps at
    ``sample_rate`` spend at most ``epsilon`` at ``delta`` (RDP accountant).

    For R rounds of ``s`` steps each at one q, pass ``steps = R * s``.
    """
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be positive, not {epsilon}")
    Mechanism(1.0, sample_rate, steps)  # validates sample_rate and steps
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), not {delta}")
    from opacus.accountants.utils import get_noise_multiplier

    with _quiet_opacus():
        return float(
            get_noise_multiplier(
                target_epsilon=epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant="rdp",
                epsilon_tolerance=0.005 * epsilon,
            )
        )
