"""Pulling round keys from the key steward (/swarm/roundkey-fetch/1.0.0), between two services.

A participant that restarted, or whose delivery failed, asks the round's key steward for the
round's public context and its own sealed secret key. The steward's provider decides, from the
requester's authenticated address, what (if anything) it gets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from swarm.errors import PayloadTooLargeError, TransferInterruptedError, TransferRefusedError
from swarm.p2p import RoundKeyBundle, TransferPolicy
from swarm.p2p.membership import StaticMembershipSource
from swarm.p2p.service import P2PService, open_p2p
from tests.p2p.helpers import FAST_POLICY, config_for, free_port, identities, make_member, run_trio

CONTEXT = bytes(range(256)) * 2000  # 512,000 bytes, about a public context without Galois keys
THREE = dataclasses.replace(FAST_POLICY, attempts=3)


@asynccontextmanager
async def steward_and_participant() -> AsyncIterator[tuple[P2PService, P2PService]]:
    ids = identities(2)
    ports = [free_port(), free_port()]
    source = StaticMembershipSource([make_member(i, p) for i, p in zip(ids, ports, strict=True)])
    async with (
        open_p2p(ids[0], config_for(ports[0]), source) as steward,
        open_p2p(ids[1], config_for(ports[1]), source) as participant,
    ):
        yield steward, participant


def run(body: Callable[[P2PService, P2PService], Awaitable[None]]) -> None:
    async def main() -> None:
        async with steward_and_participant() as (steward, participant):
            await body(steward, participant)

    run_trio(main)


def test_a_participant_fetches_the_context_and_its_own_sealed_key() -> None:
    """Fault: a participant that missed the steward's delivery had no way to get the round's
    keys. It fetches them; the provider is told who asks (the checksummed address of the
    authenticated key) and for which round, and may be async."""
    asked: list[tuple[str, int]] = []

    async def body(steward: P2PService, participant: P2PService) -> None:
        async def provider(requester: str, round_id: int) -> RoundKeyBundle | None:
            await trio.lowlevel.checkpoint()
            asked.append((requester, round_id))
            return RoundKeyBundle(CONTEXT, b"sealed for " + requester.encode())

        steward.serve_round_keys(provider)
        bundle = await participant.fetch_round_key(
            steward.address, 7, max_context=1 << 20, max_key=4096
        )
        assert bundle == RoundKeyBundle(CONTEXT, b"sealed for " + participant.address.encode())
        assert asked == [(participant.address, 7)]

    run(body)


def test_the_merge_peer_gets_the_context_without_a_key() -> None:
    """Fault: a requester that must not hold the secret key (the merge peer) must still be able
    to get the public context: sealed_key None travels as None, not as empty bytes."""

    async def body(steward: P2PService, participant: P2PService) -> None:
        steward.serve_round_keys(lambda requester, round_id: RoundKeyBundle(CONTEXT, None))
        bundle = await participant.fetch_round_key(
            steward.address, 1, max_context=1 << 20, max_key=0
        )
        assert bundle.context == CONTEXT and bundle.sealed_key is None

    run(body)


def test_a_refusal_is_raised_at_once() -> None:
    """Fault: a steward's "no" must reach the caller as TransferRefusedError, without retries
    (the provider is asked once although the policy allows three attempts)."""
    calls = 0

    async def body(steward: P2PService, participant: P2PService) -> None:
        def provider(requester: str, round_id: int) -> RoundKeyBundle | None:
            nonlocal calls
            calls += 1
            return None

        steward.serve_round_keys(provider)
        with pytest.raises(TransferRefusedError) as info:
            await participant.fetch_round_key(
                steward.address, 3, max_context=1 << 20, max_key=4096, policy=THREE
            )
        assert info.value.code == "refused"
        assert "round 3" in info.value.reason
        assert calls == 1

    run(body)


def test_a_peer_serving_no_round_keys_says_so() -> None:
    """Fault: a peer that is not a steward must answer (not_found), not leave the caller to
    time out on a protocol it does not serve."""

    async def body(steward: P2PService, participant: P2PService) -> None:
        with pytest.raises(TransferRefusedError) as info:
            await participant.fetch_round_key(steward.address, 1, max_context=100, max_key=100)
        assert info.value.code == "not_found"

    run(body)


@pytest.mark.parametrize(
    ("context_size", "key_size", "what"),
    [(2 << 20, 10, "round context"), (1000, 5000, "sealed round key")],
)
def test_an_oversized_answer_is_refused_before_it_is_read(
    context_size: int, key_size: int, what: str
) -> None:
    """Fault: a steward (buggy or hostile) announcing a context or key larger than the caller's
    limit must be refused on the announced size, before the bytes are read, and not retried."""
    calls = 0

    async def body(steward: P2PService, participant: P2PService) -> None:
        def provider(requester: str, round_id: int) -> RoundKeyBundle:
            nonlocal calls
            calls += 1
            return RoundKeyBundle(b"c" * context_size, b"k" * key_size)

        steward.serve_round_keys(provider)
        with pytest.raises(PayloadTooLargeError, match=what) as info:
            await participant.fetch_round_key(
                steward.address, 2, max_context=1 << 20, max_key=4096, policy=THREE
            )
        assert (info.value.size, info.value.limit) == (
            (context_size, 1 << 20) if what == "round context" else (key_size, 4096)
        )
        assert calls == 1

    run(body)


def test_a_failed_attempt_is_retried_and_a_single_attempt_is_not() -> None:
    """Fault: the fetch must be retried like the other calls (a steward whose provider fails
    once still answers on the next attempt), and a one-try policy must make exactly one try,
    so a caller can re-check the ledger between tries."""
    calls = 0

    async def body(steward: P2PService, participant: P2PService) -> None:
        def flaky(requester: str, round_id: int) -> RoundKeyBundle:
            nonlocal calls
            calls += 1
            if calls % 2 == 1:
                raise RuntimeError("steward hiccup")
            return RoundKeyBundle(CONTEXT, b"k")

        steward.serve_round_keys(flaky)
        bundle = await participant.fetch_round_key(
            steward.address, 4, max_context=1 << 20, max_key=10, policy=THREE
        )
        assert bundle.sealed_key == b"k" and calls == 2
        with pytest.raises(TransferInterruptedError):
            await participant.fetch_round_key(
                steward.address,
                4,
                max_context=1 << 20,
                max_key=10,
                policy=TransferPolicy(attempts=5).single_attempt(),
            )
        assert calls == 3

    run(body)


def test_a_provider_that_cannot_decide_in_time_is_answered_busy() -> None:
    """Fault: a provider that hangs (e.g. on a slow ledger read) left the caller to time out,
    which also dropped a healthy connection. The steward answers "busy" (retryable) while the
    caller still listens; the connection is kept."""

    async def body(steward: P2PService, participant: P2PService) -> None:
        async def stuck(requester: str, round_id: int) -> RoundKeyBundle | None:
            await trio.sleep_forever()
            raise AssertionError

        steward.serve_round_keys(stuck)
        with pytest.raises(TransferRefusedError) as info:
            await participant.fetch_round_key(
                steward.address,
                5,
                max_context=100,
                max_key=100,
                policy=FAST_POLICY.single_attempt(),
            )
        assert info.value.code == "busy"
        assert participant.host.is_connected(participant.members()[steward.address])

    run(body)
