"""Fixtures for the crypto tests: round keys are made once per session (a key pair costs
~0.1 s), models are tiny, and every expectation is computed in plaintext next to the
ciphertext path."""

from __future__ import annotations

from collections.abc import Callable

import coincurve
import numpy as np
import pytest
import torch

from swarm.crypto import (
    Layout,
    PublicRoundContext,
    SecretRoundContext,
    address_of,
    generate_round_keys,
    layout_of,
    open_sealed_key,
    seal_secret_key,
)

ROUND = 7


def member_key(index: int) -> coincurve.PrivateKey:
    """A deterministic secp256k1 key for hospital ``index`` (never 0: not a valid key)."""
    return coincurve.PrivateKey((index + 1).to_bytes(32, "big"))


def member_address(index: int) -> bytes:
    return address_of(member_key(index).public_key)


@pytest.fixture(scope="session")
def steward() -> SecretRoundContext:
    return generate_round_keys()


@pytest.fixture(scope="session")
def public_ctx(steward: SecretRoundContext) -> PublicRoundContext:
    """What the merge peer holds: built from the published bytes only."""
    return PublicRoundContext.from_bytes(
        steward.public_bytes, params_id=1, expected_hash=steward.context_hash
    )


@pytest.fixture(scope="session")
def holder(public_ctx: PublicRoundContext, steward: SecretRoundContext) -> SecretRoundContext:
    """Participant 1's context, opened from a key sealed to it."""
    key = member_key(1)
    sealed = seal_secret_key(steward, round_id=ROUND, recipient_public_key=key.public_key)
    return open_sealed_key(sealed, public_ctx, round_id=ROUND, private_key=key.secret)


@pytest.fixture(scope="session")
def other_steward() -> SecretRoundContext:
    """Another round's key pair."""
    return generate_round_keys()


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    # 2 chunks of 4096 slots and a partial third: 30*200+200 + 200 (BN w) + 200 (BN b)
    # + 200 + 200 (running stats) + 200*10+10
    return torch.nn.Sequential(
        torch.nn.Linear(30, 200), torch.nn.BatchNorm1d(200), torch.nn.Linear(200, 10)
    )


@pytest.fixture(scope="session")
def layout() -> Layout:
    return layout_of(tiny_model().state_dict())


@pytest.fixture()
def make_delta(layout: Layout) -> Callable[[int], dict[str, torch.Tensor]]:
    """A random update shaped like the tiny model, reproducible from a seed."""

    def make(seed: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(seed)
        return {
            spec.name: torch.from_numpy(rng.normal(0.0, 1e-2, spec.shape).astype(np.float32))
            for spec in layout.tensors
        }

    return make
