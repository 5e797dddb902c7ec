"""Round keys: public context for everyone, the secret key sealed to each key holder, and
the merge peer's context that holds no secret key."""

from __future__ import annotations

import hashlib

import coincurve
import ecies
import numpy as np
import pytest
import tenseal as ts

from swarm.crypto import (
    PublicRoundContext,
    SecretRoundContext,
    _proto,
    address_of,
    decrypt_blob,
    encrypt_vector,
    generate_round_keys,
    max_public_context_size,
    max_sealed_key_size,
    open_sealed_key,
    read_sealed_key_header,
    seal_secret_key,
)
from swarm.crypto.blob import PayloadKind
from swarm.crypto.keys import SEALED_HEADER_SIZE, SealedKeyHeader
from swarm.crypto.layout import Layout, TensorSpec
from swarm.errors import (
    BlobMismatchError,
    MalformedContextError,
    OversizedBlobError,
    SealedKeyError,
    SealedKeyMismatchError,
    SecretKeyUnavailableError,
    UnknownParameterSetError,
)

from .conftest import ROUND, member_address, member_key

VECTOR_LAYOUT = Layout((TensorSpec("w", (100,)),))


def test_address_of_matches_the_well_known_address_of_private_key_1() -> None:
    """Recipient address derivation: keccak256(x || y)[-20:], in all accepted key forms."""
    public = coincurve.PrivateKey((1).to_bytes(32, "big")).public_key
    expected = bytes.fromhex("7e5f4552091a69125d5dfcb7b8c2659029395bdf")
    uncompressed = public.format(compressed=False)
    assert address_of(public) == expected
    assert address_of(uncompressed) == expected
    assert address_of(uncompressed[1:]) == expected


def test_public_context_holds_no_secret_key(public_ctx: PublicRoundContext) -> None:
    """The merge peer's process has no secret key: its context is public, decryption refused."""
    assert not public_ctx.is_private()
    assert not public_ctx.tenseal_context.has_secret_key()
    assert not hasattr(public_ctx, "_secret_key")
    blob = encrypt_vector(
        np.ones(100),
        public_ctx,
        layout=VECTOR_LAYOUT,
        weight=1.0,
        round_id=ROUND,
        sender=b"\x01" * 20,
    )
    with pytest.raises(SecretKeyUnavailableError):
        decrypt_blob(
            blob,
            public_ctx,
            round_id=ROUND,
            layout=VECTOR_LAYOUT,
            kinds=frozenset({PayloadKind.PUBLIC_UPDATE}),
        )


def test_contexts_are_built_only_through_their_constructors() -> None:
    """No secret-key path into a public context: direct construction is refused."""
    with pytest.raises(TypeError):
        PublicRoundContext()
    with pytest.raises(TypeError):
        SecretRoundContext()


def test_public_context_is_small_and_hashed(steward: SecretRoundContext) -> None:
    """Public context without relinearization or Galois keys; its hash is sha256 of its bytes."""
    assert steward.context_hash == hashlib.sha256(steward.public_bytes).digest()
    assert len(steward.public_bytes) < 500_000  # 1.86 MB with relin/Galois keys (STACK.md)
    assert len(steward.public_bytes) <= max_public_context_size(1)
    loaded = ts.context_from(steward.public_bytes)
    assert not loaded.has_relin_keys() and not loaded.has_galois_keys()
    assert not loaded.has_secret_key()


def test_public_context_with_another_hash_is_refused(steward: SecretRoundContext) -> None:
    """Public context from another round: the hash on the ledger does not match."""
    other = hashlib.sha256(b"another round").digest()
    with pytest.raises(BlobMismatchError) as info:
        PublicRoundContext.from_bytes(steward.public_bytes, params_id=1, expected_hash=other)
    assert info.value.field == "context_hash"


def test_public_context_carrying_a_secret_key_is_refused(steward: SecretRoundContext) -> None:
    """A secret key smuggled into the merge peer's context bytes is refused, not loaded: a real
    private context is already too large for a public one, and a small private section is
    refused by structure."""
    private_bytes = steward.tenseal_context.serialize(
        save_secret_key=True, save_galois_keys=False, save_relin_keys=False
    )
    with pytest.raises(OversizedBlobError):
        PublicRoundContext.from_bytes(private_bytes, params_id=1)
    smuggled = steward.public_bytes + _proto.bytes_field(3, _proto.bytes_field(1, b"k" * 64))
    with pytest.raises(MalformedContextError, match="secret key"):
        PublicRoundContext.from_bytes(smuggled, params_id=1)


def _with_public_field(public_bytes: bytes, number: int, value: bytes) -> bytes:
    top = _proto.fields_by_number(public_bytes)
    public_part = bytes(_proto.read_bytes(top[2][0])) + _proto.bytes_field(number, value)
    return _proto.bytes_field(1, _proto.read_bytes(top[1][0])) + _proto.bytes_field(2, public_part)


@pytest.mark.parametrize("number", [4, 5])
def test_public_context_with_relinearization_or_galois_keys_is_refused(
    steward: SecretRoundContext, number: int
) -> None:
    """Non-canonical context: extra key material (4x the size, never needed for sums)."""
    data = _with_public_field(steward.public_bytes, number, b"extra key material")
    with pytest.raises(MalformedContextError, match="relinearization"):
        PublicRoundContext.from_bytes(data, params_id=1)


def test_context_with_other_ckks_parameters_is_refused() -> None:
    """A context whose parameters are not those of the parameter set it claims."""
    weak = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 40])
    weak.global_scale = 2**40
    data = weak.serialize(save_secret_key=False, save_relin_keys=False, save_galois_keys=False)
    with pytest.raises(MalformedContextError, match="coefficient moduli"):
        PublicRoundContext.from_bytes(data, params_id=1)


@pytest.mark.parametrize("data", [b"", b"\x00" * 64, b"not a context at all"])
def test_garbage_context_bytes_are_malformed(data: bytes) -> None:
    """Truncated or corrupted context bytes."""
    with pytest.raises(MalformedContextError):
        PublicRoundContext.from_bytes(data, params_id=1)


def test_context_with_unreadable_encryption_parameters_is_malformed(
    steward: SecretRoundContext,
) -> None:
    """Corrupted SEAL parameters inside a well-formed context message."""
    top = _proto.fields_by_number(steward.public_bytes)
    data = _proto.bytes_field(1, b"\x5e\xa1garbage" * 4) + _proto.bytes_field(
        2, _proto.read_bytes(top[2][0])
    )
    with pytest.raises(MalformedContextError):
        PublicRoundContext.from_bytes(data, params_id=1)


def test_truncated_public_context_is_malformed(steward: SecretRoundContext) -> None:
    """A public context cut short in transit."""
    with pytest.raises(MalformedContextError):
        PublicRoundContext.from_bytes(steward.public_bytes[:-1000], params_id=1)


def test_unknown_parameter_set_is_refused(steward: SecretRoundContext) -> None:
    """A context or key generation for a parameter-set id nobody knows."""
    with pytest.raises(UnknownParameterSetError):
        PublicRoundContext.from_bytes(steward.public_bytes, params_id=5)
    with pytest.raises(UnknownParameterSetError):
        generate_round_keys(5)


def test_oversized_public_context_is_refused() -> None:
    """A context larger than any public key of the parameter set."""
    limit = max_public_context_size(1)
    with pytest.raises(OversizedBlobError):
        PublicRoundContext.from_bytes(b"\x00" * (limit + 1), params_id=1)


def test_sealed_key_opens_for_its_recipient_and_decrypts_the_round(
    steward: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Sealing round trip: the recipient's context decrypts what was encrypted for the round."""
    key = member_key(2)
    sealed = seal_secret_key(steward, round_id=ROUND, recipient_public_key=key.public_key)
    header = read_sealed_key_header(sealed)
    assert header == SealedKeyHeader(1, ROUND, member_address(2), steward.context_hash)
    assert len(sealed) <= max_sealed_key_size(1)
    opened = open_sealed_key(sealed, public_ctx, round_id=ROUND, private_key=key.secret)
    assert opened.is_private() and opened.context_hash == steward.context_hash
    values = np.linspace(-3.0, 3.0, 100)
    blob = encrypt_vector(
        values,
        public_ctx,
        layout=VECTOR_LAYOUT,
        weight=2.0,
        round_id=ROUND,
        sender=b"\x01" * 20,
    )
    decrypted = decrypt_blob(
        blob,
        opened,
        round_id=ROUND,
        layout=VECTOR_LAYOUT,
        kinds=frozenset({PayloadKind.PUBLIC_UPDATE}),
    )
    np.testing.assert_allclose(decrypted, 2.0 * values, atol=1e-7)


def test_sealed_key_accepts_raw_public_key_bytes_and_checks_the_address(
    steward: SecretRoundContext,
) -> None:
    """Recipient given as 64 raw bytes; an address that is not the key's is refused."""
    raw = member_key(3).public_key.format(compressed=False)[1:]
    sealed = seal_secret_key(
        steward, round_id=ROUND, recipient_public_key=raw, recipient_address=member_address(3)
    )
    assert read_sealed_key_header(sealed).recipient == member_address(3)
    with pytest.raises(SealedKeyMismatchError) as info:
        seal_secret_key(
            steward, round_id=ROUND, recipient_public_key=raw, recipient_address=member_address(4)
        )
    assert info.value.field == "recipient"


def test_sealed_key_opened_by_the_wrong_recipient_is_refused(
    steward: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Sealed key opened by the wrong recipient (the merge peer, say)."""
    sealed = seal_secret_key(steward, round_id=ROUND, recipient_public_key=member_key(2).public_key)
    with pytest.raises(SealedKeyMismatchError) as info:
        open_sealed_key(sealed, public_ctx, round_id=ROUND, private_key=member_key(5).secret)
    assert info.value.field == "recipient"
    assert isinstance(info.value, SealedKeyError)


def test_sealed_key_with_a_forged_recipient_header_cannot_be_opened(
    steward: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Wrong recipient who rewrites the clear header to its own address: ECIES still fails."""
    sealed = seal_secret_key(steward, round_id=ROUND, recipient_public_key=member_key(2).public_key)
    forged = SealedKeyHeader(1, ROUND, member_address(5), steward.context_hash).pack()
    with pytest.raises(SealedKeyError, match="cannot open"):
        open_sealed_key(
            forged + sealed[SEALED_HEADER_SIZE:],
            public_ctx,
            round_id=ROUND,
            private_key=member_key(5).secret,
        )


def test_sealed_key_replayed_into_another_round_is_refused(
    steward: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Replayed sealed key from another round."""
    key = member_key(2)
    sealed = seal_secret_key(steward, round_id=ROUND - 1, recipient_public_key=key.public_key)
    with pytest.raises(SealedKeyMismatchError) as info:
        open_sealed_key(sealed, public_ctx, round_id=ROUND, private_key=key.secret)
    assert (info.value.field, info.value.expected, info.value.actual) == ("round", ROUND, ROUND - 1)


def test_sealed_key_whose_clear_round_was_rewritten_is_refused(
    steward: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Replay with the clear header edited to the new round: the authenticated copy differs."""
    key = member_key(2)
    old = seal_secret_key(steward, round_id=ROUND - 1, recipient_public_key=key.public_key)
    rewritten = (
        SealedKeyHeader(1, ROUND, member_address(2), steward.context_hash).pack()
        + old[SEALED_HEADER_SIZE:]
    )
    with pytest.raises(SealedKeyError, match="authenticated copy"):
        open_sealed_key(rewritten, public_ctx, round_id=ROUND, private_key=key.secret)


def test_sealed_key_for_another_context_is_refused(
    other_steward: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Sealed key of another context (another steward's round key)."""
    key = member_key(2)
    sealed = seal_secret_key(other_steward, round_id=ROUND, recipient_public_key=key.public_key)
    with pytest.raises(SealedKeyMismatchError) as info:
        open_sealed_key(sealed, public_ctx, round_id=ROUND, private_key=key.secret)
    assert info.value.field == "context_hash"


def test_secret_key_that_does_not_match_the_public_context_is_refused(
    steward: SecretRoundContext,
    other_steward: SecretRoundContext,
    public_ctx: PublicRoundContext,
) -> None:
    """A correctly bound and sealed blob holding another round's secret key (a lying steward):
    the key-pair check catches it instead of letting the peer decrypt garbage."""
    key = member_key(2)
    header = SealedKeyHeader(1, ROUND, member_address(2), steward.context_hash).pack()
    wrong_key = other_steward._secret_key
    sealed = header + ecies.encrypt(key.public_key.format(compressed=False), header + wrong_key)
    with pytest.raises(SealedKeyError, match="does not belong"):
        open_sealed_key(sealed, public_ctx, round_id=ROUND, private_key=key.secret)


def test_tampered_sealed_key_is_refused(
    steward: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Corrupted bytes inside the sealed ciphertext: the AES-GCM tag fails."""
    key = member_key(2)
    sealed = bytearray(
        seal_secret_key(steward, round_id=ROUND, recipient_public_key=key.public_key)
    )
    sealed[-100] ^= 0x80
    with pytest.raises(SealedKeyError):
        open_sealed_key(bytes(sealed), public_ctx, round_id=ROUND, private_key=key.secret)


@pytest.mark.parametrize("cut", [0, 30, SEALED_HEADER_SIZE + 10, -1])
def test_truncated_sealed_key_is_refused(
    steward: SecretRoundContext, public_ctx: PublicRoundContext, cut: int
) -> None:
    """Truncated sealed key, in the header, the ECIES envelope or the last byte."""
    key = member_key(2)
    sealed = seal_secret_key(steward, round_id=ROUND, recipient_public_key=key.public_key)
    with pytest.raises(SealedKeyError):
        open_sealed_key(sealed[:cut], public_ctx, round_id=ROUND, private_key=key.secret)


def test_oversized_sealed_key_is_refused(public_ctx: PublicRoundContext) -> None:
    """A sealed key larger than any the parameter set produces is refused before decrypting."""
    data = b"\x00" * (max_sealed_key_size(1) + 1)
    with pytest.raises(OversizedBlobError):
        open_sealed_key(data, public_ctx, round_id=ROUND, private_key=member_key(2).secret)


def test_repr_of_a_secret_context_shows_no_key_material(steward: SecretRoundContext) -> None:
    """Key hygiene: logging a context must not print the key."""
    text = repr(steward)
    assert steward.context_hash.hex() in text and len(text) < 200
