"""The built-in task: heart disease at four hospitals (UCI Heart Disease), MLP or logistic model.

Each hospital is one site with its own rows; ``load_site`` splits them (stratified, seeded) and
encodes them with an encoder fitted on that site's train rows only (swarm.training.heart_data).
The label is ``num > 0`` (any angiographic disease). Data, preprocessing and the choice of
scaling are described in docs/data.md; the tuned training config and the federated vs
centralized vs local-only comparison in docs/benchmarks.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from swarm.training.heart_data import (
    FEATURE_NAMES,
    SITES,
    Scaling,
    fit_encoder,
    load_table,
    site_rows,
    split_indices,
)
from swarm.training.loop import evaluate_binary, train_binary
from swarm.training.models import MLP, LogisticRegression, build_seeded
from swarm.training.task import Metrics, SiteData, TrainConfig

log = logging.getLogger(__name__)

ModelKind = Literal["mlp", "logreg"]

#: local training per round and number of rounds, per model, chosen on validation splits
#: (benchmarks/accuracy_bench.py --tune; docs/benchmarks.md, "accuracy-tune")
DEFAULT_TRAINING: dict[str, tuple[TrainConfig, int]] = {
    "logreg": (TrainConfig(epochs=1, lr=0.1, weight_decay=1e-4, fedprox_mu=1.0), 40),
    "mlp": (TrainConfig(epochs=2, lr=0.03, weight_decay=1e-4), 20),
}


@dataclass(frozen=True)
class HeartDiseaseTask:
    """UCI Heart Disease at Cleveland, Hungary, Switzerland and VA Long Beach.

    ``scaling`` picks how numeric columns are scaled (fixed reference ranges by default, see
    docs/data.md); ``test_fraction`` is each site's share of test rows.
    """

    model: ModelKind = "logreg"
    #: hidden units of the MLP (ignored by logistic regression)
    hidden: int = 16
    scaling: Scaling = Scaling.REFERENCE
    test_fraction: float = 0.25
    sites: tuple[str, ...] = SITES

    @property
    def default_config(self) -> TrainConfig:
        return DEFAULT_TRAINING[self.model][0]

    @property
    def default_rounds(self) -> int:
        return DEFAULT_TRAINING[self.model][1]

    @property
    def name(self) -> str:
        # every field that changes the model or its features is in the name, so two peers that
        # agree on a name train the same thing
        width = f"-h{self.hidden}" if self.model == "mlp" and self.hidden != 16 else ""
        scaled = "" if self.scaling is Scaling.REFERENCE else f"+{self.scaling.value}-scaled"
        split = "" if self.test_fraction == 0.25 else f"+test{self.test_fraction:g}"
        return f"heart-disease-uci/{self.model}{width}{scaled}{split}"

    @property
    def feature_names(self) -> tuple[str, ...]:
        return FEATURE_NAMES

    def build_model(self, seed: int) -> nn.Module:
        features = len(FEATURE_NAMES)
        if self.model == "mlp":
            return build_seeded(lambda: MLP(features, self.hidden), seed)
        if self.model == "logreg":
            return build_seeded(lambda: LogisticRegression(features), seed)
        raise ValueError(f"unknown model kind {self.model!r}")

    def load_site(self, site: str, seed: int, *, validation: bool = False) -> SiteData:
        """This hospital's rows, split by ``seed`` and encoded with a train-only encoder.

        ``validation=True`` is for tuning: the test split is left out entirely and the train
        split is split again (same fraction) into train and a validation split, returned in
        place of the test split, so hyperparameters are never chosen on test rows.
        """
        rows = site_rows(load_table(), site)
        train_idx, test_idx = split_indices(rows.labels, seed, site, self.test_fraction)
        train, test = rows.take(train_idx), rows.take(test_idx)
        if validation:
            inner_train, inner_val = split_indices(
                train.labels, seed, f"{site}/validation", self.test_fraction
            )
            train, test = train.take(inner_train), train.take(inner_val)
        encoder = fit_encoder(train, self.scaling)  # train rows only: no test leak
        log.debug("site %s: %d train / %d test rows", site, len(train), len(test))
        return SiteData(
            site=site,
            x_train=torch.from_numpy(encoder.transform(train)),
            y_train=torch.from_numpy(train.labels.copy()),
            x_test=torch.from_numpy(encoder.transform(test)),
            y_test=torch.from_numpy(test.labels.copy()),
            feature_names=FEATURE_NAMES,
        )

    def train(
        self,
        model: nn.Module,
        data: SiteData,
        config: TrainConfig,
        global_model: Mapping[str, torch.Tensor] | None = None,
    ) -> int:
        return train_binary(model, data.x_train, data.y_train, config, global_model)

    def evaluate(self, model: nn.Module, data: SiteData) -> Metrics:
        return evaluate_binary(model, data.x_test, data.y_test)
