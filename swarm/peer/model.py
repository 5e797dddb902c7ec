"""The model a peer holds: where it comes from at start-up, how a new one is adopted.

A model is accepted only if its tensors are exactly the task's (names, shapes, dtypes): a
checkpoint or a fetched model that merely has the right names would be adopted and then make the
peer refuse every update of every later round.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from swarm.errors import CheckpointError, ConfigError
from swarm.training.checkpoint import latest_checkpoint, model_hash, write_checkpoint

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


class ModelSpec:
    """The tensors a task's model has, in the model's own order (the update layout's order)."""

    def __init__(self, reference: Mapping[str, torch.Tensor]) -> None:
        self.names = list(reference)
        self.shapes = {k: tuple(v.shape) for k, v in reference.items()}
        self.dtypes = {k: v.dtype for k, v in reference.items()}

    def conform(self, state: Mapping[str, torch.Tensor], what: str) -> StateDict:
        """``state`` in the model's order, or CheckpointError naming the first difference."""
        if set(state) != set(self.names):
            missing = sorted(set(self.names) - set(state))
            extra = sorted(set(state) - set(self.names))
            raise CheckpointError(
                f"{what} is not this task's model: missing tensors {missing}, unexpected {extra}"
            )
        for name in self.names:
            shape, dtype = tuple(state[name].shape), state[name].dtype
            if shape != self.shapes[name] or dtype != self.dtypes[name]:
                raise CheckpointError(
                    f"{what} is not this task's model: tensor {name} is {dtype} {list(shape)}, "
                    f"the task's is {self.dtypes[name]} {list(self.shapes[name])}"
                )
        return {name: state[name] for name in self.names}


class ModelKeeper:
    """The current model, its ledger hash and round; checkpoints in ``directory``."""

    def __init__(
        self,
        directory: Path,
        initial: Mapping[str, torch.Tensor],
        consortium_initial_hash: bytes,
        checkpoint_meta: Mapping[str, Any],
    ) -> None:
        self.directory = directory
        self.spec = ModelSpec(initial)
        self.meta = dict(checkpoint_meta)
        ck = latest_checkpoint(directory)
        if ck is not None:
            state = self.spec.conform(ck.state_dict, f"checkpoint of round {ck.round_id}")
            log.info("resuming from round %d checkpoint 0x%s", ck.round_id, ck.model_hash.hex())
            self.state, self.hash, self.round = state, ck.model_hash, ck.round_id
            return
        digest = model_hash(initial)
        if digest != consortium_initial_hash:
            raise ConfigError(
                f"this task's initial model hashes to 0x{digest.hex()}, but the consortium "
                f"recorded 0x{consortium_initial_hash.hex()}: the peer's task or seed differs "
                "from the consortium's (check [task] in the peer config with the admin)"
            )
        self.state, self.hash, self.round = dict(initial), digest, 0

    def adopt(self, round_id: int, state: Mapping[str, torch.Tensor], digest: bytes) -> None:
        """Checkpoint ``state`` (whose hash the ledger finalized) and make it the current model.
        Blocking (disk): call from a worker thread."""
        ordered = self.spec.conform(state, f"the model of round {round_id}")
        write_checkpoint(self.directory, round_id, ordered, self.meta)
        self.state, self.hash, self.round = ordered, digest, round_id


__all__ = ["ModelKeeper", "ModelSpec", "StateDict"]
