"""Threshold sharing of mask secrets: t of n rebuild, t-1 do not; tampering is refused with a
typed error; a reveal only ever holds what the reveal rule allows."""

from __future__ import annotations

import struct

import pytest
from Crypto.Protocol.SecretSharing import Shamir

from swarm.crypto import (
    MaskContext,
    ShareSetup,
    build_reveal,
    collect,
    new_self_seed,
    open_shares,
    seal_shares,
    shares_hash,
    split,
    threshold_for,
)
from swarm.crypto.shares import VERSION, HeldShares, ReconstructionState, _row, revealable
from swarm.errors import MaskReconstructionError, MaskRevealError, MaskShareError

from .conftest import ATTEMPT, CHAIN_ID, CONTRACT, ROUND, member_address, member_identity

N = 5
T = threshold_for(N, 66)  # 4
CTX = MaskContext(CHAIN_ID, CONTRACT, ROUND, ATTEMPT)
ADDRS = tuple(member_address(i) for i in range(N))


class Round:
    """Every owner's secrets split and sealed to every holder, as after commitUpdate."""

    def __init__(self, ctx: MaskContext = CTX) -> None:
        self.secrets = [{k: new_self_seed() for k in range(N)} for _ in range(N)]
        self.manifests: dict[int, bytes] = {}
        self.hashes: dict[int, bytes] = {}
        self.blobs: dict[tuple[int, int], bytes] = {}
        for owner in range(N):
            setup = ShareSetup(ctx, owner, ADDRS, T)
            manifest, plain = split(setup, self.secrets[owner])
            self.manifests[owner] = manifest
            self.hashes[owner] = shares_hash(manifest)
            for h in range(N):
                self.blobs[(owner, h)] = seal_shares(
                    setup, h, plain[h], member_identity(h).encryption_public_key
                )

    def open(self, owner: int, holder: int, blob: bytes | None = None) -> HeldShares:
        return open_shares(
            self.blobs[(owner, holder)] if blob is None else blob,
            ctx=CTX,
            owner_index=owner,
            holder_index=holder,
            addresses=ADDRS,
            private_key=member_identity(holder).encryption_private_key(),
            expected_hash=self.hashes[owner],
        )

    def held(self, holder: int) -> dict[int, HeldShares]:
        return {owner: self.open(owner, holder) for owner in range(N)}

    def reveal(self, holder: int, contributors: set[int]) -> bytes:
        return build_reveal(CTX, holder, self.held(holder), contributors)

    def state(self, contributors: set[int]) -> ReconstructionState:
        return ReconstructionState(CTX, self.hashes, frozenset(contributors), N, T)


@pytest.fixture(scope="module")
def rnd() -> Round:
    return Round()


def test_t_of_n_reconstructs_and_t_minus_1_does_not(rnd: Round) -> None:
    contributors = {0, 1, 2, 3}
    state = collect(
        CTX, [rnd.reveal(h, contributors) for h in range(T)], rnd.hashes, contributors, N
    )
    assert state.missing() == []
    recovered = state.recovered()
    for c in contributors:
        assert recovered[c] == {c: rnd.secrets[c][c], 4: rnd.secrets[c][4]}

    short = collect(
        CTX, [rnd.reveal(h, contributors) for h in range(T - 1)], rnd.hashes, contributors, N
    )
    assert short.missing() == sorted(contributors)
    with pytest.raises(MaskReconstructionError, match="too few revealed shares"):
        short.recovered()
    # and t-1 shares interpolate to something else than the secret
    held = [rnd.open(0, h).shares[0] for h in range(T - 1)]
    guess = Shamir.combine([(h + 1, s) for h, s in enumerate(held)], ssss=False)
    assert guess != rnd.secrets[0][0]


def test_secrets_rebuilt_with_shared_coefficients_match_shamir_combine() -> None:
    """The key holder's interpolation (Lagrange coefficients once per set of holders) gives
    what pycryptodome's Shamir.combine gives, for any t of n holders, t = 1 included."""
    import random

    from swarm.crypto.shares import _interpolate, _lagrange_at_zero

    rng = random.Random(7)
    for n, t in ((1, 1), (3, 1), (4, 3), (10, 7), (20, 14)):
        secret = new_self_seed()
        points = (
            [(h + 1, secret) for h in range(n)]
            if t == 1
            else Shamir.split(t, n, secret, ssss=False)
        )
        chosen = sorted(rng.sample(points, t))
        coefficients = _lagrange_at_zero([x for x, _ in chosen])
        assert _interpolate(coefficients, [bytes(y) for _, y in chosen]) == secret
        if t > 1:
            assert Shamir.combine(chosen, ssss=False) == secret


def test_the_holders_own_share_counts(rnd: Round) -> None:
    """The owner keeps its own share like every holder: any t holders do, including the owner."""
    contributors = set(range(N))
    state = collect(
        CTX, [rnd.reveal(h, contributors) for h in (4, 3, 2, 0)], rnd.hashes, contributors, N
    )
    assert state.recovered() == {c: {c: rnd.secrets[c][c]} for c in range(N)}


def test_a_reveal_holds_only_what_the_rule_allows(rnd: Round) -> None:
    """Never a pairwise seed between two contributors, nothing of a non-contributor."""
    contributors = {0, 2, 3}
    for h in range(N):
        state = rnd.state(contributors)
        state.add(rnd.reveal(h, contributors))
        for owner, k in state.shares:
            assert owner in contributors
            assert k == owner or k not in contributors
        assert {owner for owner, _ in state.shares} == contributors
    assert revealable(1, contributors, N) == []
    assert revealable(0, contributors, N) == [0, 1, 4]


def _forged_reveal(rnd: Round, holder: int, owner: int, ks: list[int]) -> bytes:
    """A reveal built by hand, holding owner's shares ks (valid shares, forbidden choice)."""
    item = rnd.open(owner, holder)
    body = struct.pack(">II", owner, len(item.manifest)) + item.manifest
    body += _row(CTX.pack(), owner, holder, item.shares)
    body += struct.pack(">I", len(ks)) + b"".join(struct.pack(">I", k) + item.shares[k] for k in ks)
    return struct.pack(">B44sII", VERSION, CTX.pack(), holder, 1) + body


def test_a_reveal_of_a_pairwise_seed_between_contributors_is_refused(rnd: Round) -> None:
    """Bad input: a reveal holding owner 0's pairwise seed with contributor 1."""
    state = rnd.state({0, 1, 2})
    with pytest.raises(MaskRevealError, match="secret 1, which the reveal rule keeps hidden"):
        state.add(_forged_reveal(rnd, 2, 0, [0, 1]))
    assert state.shares == {}


def test_a_reveal_of_a_non_contributor_is_refused(rnd: Round) -> None:
    """Bad input: a reveal holding the self seed share of participant 4, not a contributor."""
    state = rnd.state({0, 1, 2})
    with pytest.raises(MaskRevealError, match="non-contributor 4"):
        state.add(_forged_reveal(rnd, 2, 4, [4]))


def test_a_tampered_share_in_a_reveal_is_refused(rnd: Round) -> None:
    """Bad input: one bit of a revealed share flipped."""
    contributors = {0, 1, 2, 3}
    reveal = bytearray(rnd.reveal(1, contributors))
    reveal[-1] ^= 1
    state = rnd.state(contributors)
    with pytest.raises(MaskShareError, match="does not match the manifest"):
        state.add(bytes(reveal))
    # collect skips it and says why
    skipped = collect(CTX, [bytes(reveal)], rnd.hashes, contributors, N)
    assert skipped.shares == {} and len(skipped.rejected) == 1


def test_a_tampered_manifest_in_a_reveal_is_refused(rnd: Round) -> None:
    """Bad input: a manifest entry changed (so a forged share would match it): the manifest no
    longer matches the sharesHash on the ledger."""
    contributors = {0, 1, 2, 3}
    reveal = bytearray(rnd.reveal(1, contributors))
    start = 4 + 44 + 8 + 8  # reveal head, then owner 0's index and manifest length
    reveal[start + 100] ^= 1  # in the row hashes (the manifest head is 81 bytes)
    with pytest.raises(MaskShareError, match="does not match its sharesHash"):
        rnd.state(contributors).add(bytes(reveal))


def test_a_tampered_row_in_a_reveal_is_refused(rnd: Round) -> None:
    """Bad input: one hash of the holder's row changed (so a forged share would match it): the
    row no longer hashes to the manifest's entry for that holder."""
    contributors = {0, 1, 2, 3}
    reveal = bytearray(rnd.reveal(1, contributors))
    manifest = len(rnd.manifests[0])
    start = 4 + 44 + 8 + 8 + manifest  # reveal head, owner 0's index and length, its manifest
    reveal[start + 5] ^= 1
    with pytest.raises(MaskShareError, match="row of owner 0's shares does not match"):
        rnd.state(contributors).add(bytes(reveal))


def test_a_reveal_grows_with_the_square_of_the_participants() -> None:
    """Per owner a reveal carries the manifest (n row hashes) and the holder's row (n share
    hashes), not every share hash of the owner (n^2): version 1's reveals grew with n^3 and
    were 256 KB each at 20 participants."""

    def reveal_size(n: int) -> int:
        addresses = tuple(member_address(i) for i in range(n))
        secrets = {k: new_self_seed() for k in range(n)}
        held = {}
        for owner in range(n):
            setup = ShareSetup(CTX, owner, addresses, threshold_for(n, 66))
            manifest, plain = split(setup, secrets)
            shares = plain[0][len(manifest) :]
            held[owner] = HeldShares(manifest, {k: shares[k * 16 : (k + 1) * 16] for k in range(n)})
        return len(build_reveal(CTX, 0, held, set(range(n))))

    small, large = reveal_size(10), reveal_size(20)
    assert large < 4.2 * small  # n^2: x4 (n^3 would be x8)
    assert large < 40_000


def test_a_reveal_for_another_attempt_is_refused(rnd: Round) -> None:
    """Bad input: a reveal replayed from another attempt."""
    other = MaskContext(CHAIN_ID, CONTRACT, ROUND, ATTEMPT + 1)
    reveal = build_reveal(other, 1, rnd.held(1), {0, 1})
    with pytest.raises(MaskRevealError, match="another round attempt"):
        rnd.state({0, 1}).add(reveal)


def test_a_truncated_reveal_is_refused(rnd: Round) -> None:
    """Bad input: a reveal cut short."""
    reveal = rnd.reveal(1, {0, 1})
    with pytest.raises(MaskRevealError, match="truncated"):
        rnd.state({0, 1}).add(reveal[:-5])


def test_shares_open_only_for_their_holder(rnd: Round) -> None:
    """Bad input: holder 2's shares opened by holder 3 (wrong key and binding)."""
    with pytest.raises(MaskShareError, match="not sealed to holder 3"):
        rnd.open(0, 3, blob=rnd.blobs[(0, 2)])


def test_a_tampered_shares_blob_is_refused(rnd: Round) -> None:
    """Bad input: the sealed box altered, or the manifest altered (no longer the ledger's)."""
    blob = bytearray(rnd.blobs[(1, 2)])
    blob[-3] ^= 1
    with pytest.raises(MaskShareError, match="tampered"):
        rnd.open(1, 2, blob=bytes(blob))
    blob = bytearray(rnd.blobs[(1, 2)])
    blob[100] ^= 1
    with pytest.raises(MaskShareError, match="sharesHash on the ledger"):
        rnd.open(1, 2, blob=bytes(blob))


def test_shares_for_another_owner_or_attempt_are_refused(rnd: Round) -> None:
    """Bad input: owner 1's blob presented as owner 0's; a blob of another attempt."""
    with pytest.raises(MaskShareError):
        open_shares(
            rnd.blobs[(1, 2)],
            ctx=CTX,
            owner_index=0,
            holder_index=2,
            addresses=ADDRS,
            private_key=member_identity(2).encryption_private_key(),
            expected_hash=rnd.hashes[1],
        )
    other = Round(MaskContext(CHAIN_ID, CONTRACT, ROUND, ATTEMPT + 1))
    with pytest.raises(MaskShareError, match="another round attempt"):
        open_shares(
            other.blobs[(1, 2)],
            ctx=CTX,
            owner_index=1,
            holder_index=2,
            addresses=ADDRS,
            private_key=member_identity(2).encryption_private_key(),
            expected_hash=None,
        )


def test_a_share_that_does_not_match_the_manifest_is_refused(rnd: Round) -> None:
    """Bad input: an owner seals holder 2 shares that are not the ones its manifest lists."""
    setup = ShareSetup(CTX, 0, ADDRS, T)
    manifest, plain = split(setup, rnd.secrets[0])
    _, other_plain = split(setup, rnd.secrets[0])  # fresh randomness: other shares
    forged = manifest + other_plain[2][len(manifest) :]
    blob = seal_shares(setup, 2, forged, member_identity(2).encryption_public_key)
    with pytest.raises(MaskShareError, match="do not match its manifest"):
        open_shares(
            blob,
            ctx=CTX,
            owner_index=0,
            holder_index=2,
            addresses=ADDRS,
            private_key=member_identity(2).encryption_private_key(),
            expected_hash=shares_hash(manifest),
        )
    assert plain[2] != forged


def test_threshold_of_a_manifest_is_checked(rnd: Round) -> None:
    """Bad input: a manifest stating another threshold than the consortium's."""
    state = ReconstructionState(CTX, rnd.hashes, frozenset({0, 1}), N, T - 1)
    with pytest.raises(MaskShareError, match="threshold"):
        state.add(rnd.reveal(0, {0, 1}))
