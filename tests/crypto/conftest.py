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
    SealBinding,
    SecretRoundContext,
    address_of,
    generate_round_keys,
    layout_of,
    open_sealed_key,
    seal_secret_key,
)
from swarm.crypto.params import PARAMETER_SETS
from swarm.identity import Identity

ROUND = 7
ATTEMPT = 0
CHAIN_ID = 31337
CONTRACT = bytes.fromhex("cc" * 20)


def member_key(index: int) -> coincurve.PrivateKey:
    """A deterministic secp256k1 key for hospital ``index`` (never 0: not a valid key)."""
    return coincurve.PrivateKey((index + 1).to_bytes(32, "big"))


def member_address(index: int) -> bytes:
    return address_of(member_key(index).public_key)


def member_identity(index: int) -> Identity:
    """Hospital ``index``'s identity (same secret as :func:`member_key`): its X25519 encryption
    key is derived from it."""
    return Identity(member_key(index).secret)


def binding(
    ctx: PublicRoundContext | SecretRoundContext, index: int, **changes: object
) -> SealBinding:
    """The binding of a round key sealed to hospital ``index`` for ``ctx``; ``changes`` replace
    fields (chain_id, contract, round_id, attempt, context_hash, recipient)."""
    fields: dict[str, object] = dict(
        chain_id=CHAIN_ID,
        contract=CONTRACT,
        round_id=ROUND,
        attempt=ATTEMPT,
        context_hash=ctx.context_hash,
        recipient=member_address(index),
    )
    fields.update(changes)
    return SealBinding(**fields)  # type: ignore[arg-type]


def seal_to(steward: SecretRoundContext, index: int, **changes: object) -> bytes:
    """The steward's secret key sealed to hospital ``index`` (its encryption key)."""
    return seal_secret_key(
        steward, binding(steward, index, **changes), member_identity(index).encryption_public_key
    )


def open_as(
    sealed: bytes, public: PublicRoundContext, index: int, **changes: object
) -> SecretRoundContext:
    """Hospital ``index`` opens ``sealed``, expecting the binding ``changes`` describe."""
    return open_sealed_key(
        sealed,
        public,
        binding=binding(public, index, **changes),
        private_key=member_identity(index).encryption_private_key(),
    )


@pytest.fixture(scope="session", params=sorted(PARAMETER_SETS), ids=lambda i: f"ckks{i}")
def steward(request: pytest.FixtureRequest) -> SecretRoundContext:
    """The round's key pair, under each parameter set (every test using it runs for each)."""
    return generate_round_keys(request.param)


@pytest.fixture(scope="session")
def public_ctx(steward: SecretRoundContext) -> PublicRoundContext:
    """What the merge peer holds: built from the published bytes only."""
    return PublicRoundContext.from_bytes(
        steward.public_bytes, params_id=steward.params_id, expected_hash=steward.context_hash
    )


@pytest.fixture(scope="session")
def holder(public_ctx: PublicRoundContext, steward: SecretRoundContext) -> SecretRoundContext:
    """Participant 1's context, opened from a key sealed to it."""
    return open_as(seal_to(steward, 1), public_ctx, 1)


@pytest.fixture(scope="session")
def other_steward(steward: SecretRoundContext) -> SecretRoundContext:
    """Another round's key pair, same parameter set."""
    return generate_round_keys(steward.params_id)


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
