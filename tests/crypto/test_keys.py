"""Round keys: public context for everyone, the secret key sealed to each key holder, and
the merge peer's context that holds no secret key."""

from __future__ import annotations

import hashlib

import coincurve
import numpy as np
import pytest
import tenseal as ts
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from swarm.crypto import (
    PublicRoundContext,
    SealBinding,
    SecretRoundContext,
    _proto,
    address_of,
    context_hash,
    decrypt_blob,
    encrypt_vector,
    generate_round_keys,
    max_public_context_size,
    max_sealed_key_size,
    read_sealed_key_header,
    seal_secret_key,
)
from swarm.crypto.blob import PayloadKind
from swarm.crypto.keys import HPKE_OVERHEAD, SEALED_HEADER_SIZE, SealedKeyHeader
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
from swarm.hashing import Tag, tagged_hash

from .conftest import (
    ATTEMPT,
    CHAIN_ID,
    ROUND,
    binding,
    member_address,
    member_identity,
    open_as,
    seal_to,
)

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
            kinds=frozenset({PayloadKind.PLAIN_UPDATE}),
        )


def test_round_contexts_share_one_seal_context_and_load_tenseal_when_used(
    steward: SecretRoundContext,
) -> None:
    """Memory (SEAL's pool keeps its high-water mark): a secret context's SEAL bridge shares
    the public context's SEAL context and encoder, and the public context's own TenSEAL context
    is loaded only when something adds with it. The public side never gains the key."""
    public = PublicRoundContext.from_bytes(steward.public_bytes, params_id=steward.params_id)
    assert public._tenseal is None and not public.is_private()
    opened = open_as(seal_to(steward, 3), public, 3)
    assert opened._bridge.context is public._bridge.context
    assert opened._bridge.encoder is public._bridge.encoder
    assert opened._bridge.has_secret_key and not public._bridge.has_secret_key
    assert opened._bridge.memfile is not public._bridge.memfile
    assert public._tenseal is None  # the participant encrypts and decrypts with its own
    loaded = public.tenseal_context
    assert public.tenseal_context is loaded and not loaded.has_secret_key()
    assert not public.is_private()


def test_contexts_are_built_only_through_their_constructors() -> None:
    """No secret-key path into a public context: direct construction is refused."""
    with pytest.raises(TypeError):
        PublicRoundContext()
    with pytest.raises(TypeError):
        SecretRoundContext()


def test_public_context_is_small_and_hashed(steward: SecretRoundContext) -> None:
    """Public context without relinearization or Galois keys; its hash is the round-context
    tagged hash of its bytes (fault: an untagged hash that a blob hash could be mistaken for)."""
    assert steward.context_hash == tagged_hash(Tag.ROUND_CONTEXT, steward.public_bytes)
    assert steward.context_hash == context_hash(steward.public_bytes)
    assert steward.context_hash != hashlib.sha256(steward.public_bytes).digest()
    assert len(steward.public_bytes) < 500_000  # 1.86 MB with relin/Galois keys (STACK.md)
    assert len(steward.public_bytes) <= max_public_context_size(1)
    loaded = ts.context_from(steward.public_bytes)
    assert not loaded.has_relin_keys() and not loaded.has_galois_keys()
    assert not loaded.has_secret_key()


def test_public_context_with_another_hash_is_refused(steward: SecretRoundContext) -> None:
    """Public context from another round: the hash on the ledger does not match."""
    other = hashlib.sha256(b"another round").digest()
    with pytest.raises(BlobMismatchError) as info:
        PublicRoundContext.from_bytes(
            steward.public_bytes, params_id=steward.params_id, expected_hash=other
        )
    assert info.value.field == "context_hash"


def test_public_context_carrying_a_secret_key_is_refused(steward: SecretRoundContext) -> None:
    """A secret key smuggled into the merge peer's context bytes is refused, not loaded: a real
    private context is already too large for a public one, and a small private section is
    refused by structure."""
    private_bytes = steward.tenseal_context.serialize(
        save_secret_key=True, save_galois_keys=False, save_relin_keys=False
    )
    with pytest.raises(OversizedBlobError):
        PublicRoundContext.from_bytes(private_bytes, params_id=steward.params_id)
    smuggled = steward.public_bytes + _proto.bytes_field(3, _proto.bytes_field(1, b"k" * 64))
    with pytest.raises(MalformedContextError, match="secret key"):
        PublicRoundContext.from_bytes(smuggled, params_id=steward.params_id)


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
        PublicRoundContext.from_bytes(data, params_id=steward.params_id)


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
        PublicRoundContext.from_bytes(data, params_id=steward.params_id)


def test_truncated_public_context_is_malformed(steward: SecretRoundContext) -> None:
    """A public context cut short in transit."""
    with pytest.raises(MalformedContextError):
        PublicRoundContext.from_bytes(steward.public_bytes[:-1000], params_id=steward.params_id)


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
    """Sealing round trip (fault: a recipient cannot use its key): the recipient's context
    decrypts what was encrypted for the round, and the clear header states the binding."""
    sealed = seal_to(steward, 2)
    header = read_sealed_key_header(sealed)
    assert header == SealedKeyHeader(steward.params_id, binding(steward, 2))
    assert len(sealed) <= max_sealed_key_size(1)
    assert len(sealed) == SEALED_HEADER_SIZE + HPKE_OVERHEAD + len(steward._secret_key)
    opened = open_as(sealed, public_ctx, 2)
    assert opened.is_private() and opened.context_hash == steward.context_hash
    values = np.linspace(-3.0, 3.0, 100)
    blob = encrypt_vector(
        values,
        steward,
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
        kinds=frozenset({PayloadKind.SEEDED_UPDATE}),
    )
    np.testing.assert_allclose(decrypted, 2.0 * values, atol=1e-7)


def test_sealed_key_is_standard_hpke_under_the_binding_info(
    steward: SecretRoundContext,
) -> None:
    """Interoperability (fault: a home-made envelope): the ciphertext after the clear header is
    RFC 9180 base-mode HPKE, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, with
    ``info`` = the tagged binding, openable by any HPKE implementation."""
    sealed = seal_to(steward, 2)
    suite = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)
    info = binding(steward, 2).info()
    assert info.startswith(b"swarm/v1/round-key-seal\0")
    plain = suite.decrypt(
        sealed[SEALED_HEADER_SIZE:], member_identity(2).encryption_private_key(), info=info
    )
    assert plain == steward._secret_key


def test_two_seals_of_the_same_key_differ(steward: SecretRoundContext) -> None:
    """Fresh ephemeral key per seal (fault: a deterministic seal links recipients' keys)."""
    assert seal_to(steward, 2)[SEALED_HEADER_SIZE:] != seal_to(steward, 2)[SEALED_HEADER_SIZE:]


#: each binding field, and a value other than the one the recipient expects
OTHER_BINDING = {
    "chain_id": CHAIN_ID + 1,
    "contract": bytes.fromhex("dd" * 20),
    "round_id": ROUND + 1,
    "attempt": ATTEMPT + 1,
    "recipient": member_address(5),
}


@pytest.mark.parametrize("field", sorted(OTHER_BINDING))
def test_sealed_key_bound_elsewhere_is_refused_by_field(
    steward: SecretRoundContext, public_ctx: PublicRoundContext, field: str
) -> None:
    """Replay into another chain, contract, round, attempt, or forwarding to another member
    (fault: a sealed key is accepted outside the binding it was made for): the clear header's
    field differs from what the recipient expects, SealedKeyMismatchError names it."""
    sealed = seal_to(steward, 2, **{field: OTHER_BINDING[field]})
    with pytest.raises(SealedKeyMismatchError) as info:
        open_as(sealed, public_ctx, 2)
    assert info.value.field == field
    assert info.value.actual == OTHER_BINDING[field]
    assert isinstance(info.value, SealedKeyError)


@pytest.mark.parametrize("field", sorted(OTHER_BINDING))
def test_sealed_key_whose_clear_header_was_rewritten_cannot_be_opened(
    steward: SecretRoundContext, public_ctx: PublicRoundContext, field: str
) -> None:
    """Replay with the clear header rewritten to the binding the recipient expects (fault: the
    binding lives only in the clear header): HPKE's info differs, the tag fails."""
    sealed = seal_to(steward, 2, **{field: OTHER_BINDING[field]})
    forged = (
        SealedKeyHeader(steward.params_id, binding(steward, 2)).pack() + sealed[SEALED_HEADER_SIZE:]
    )
    with pytest.raises(SealedKeyError, match="cannot open"):
        open_as(forged, public_ctx, 2)


def test_sealed_key_for_another_context_is_refused(
    other_steward: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Sealed key of another context (fault: another steward's round key is accepted)."""
    sealed = seal_to(other_steward, 2)
    with pytest.raises(SealedKeyMismatchError) as info:
        open_as(sealed, public_ctx, 2)
    assert info.value.field == "context_hash"


def test_sealed_key_whose_context_hash_was_rewritten_cannot_be_opened(
    steward: SecretRoundContext, other_steward: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Another context's sealed key with the clear header's context hash rewritten (fault: the
    context hash is not in HPKE's info): the tag fails."""
    sealed = seal_to(other_steward, 2)
    forged = (
        SealedKeyHeader(steward.params_id, binding(steward, 2)).pack() + sealed[SEALED_HEADER_SIZE:]
    )
    with pytest.raises(SealedKeyError, match="cannot open"):
        open_as(forged, public_ctx, 2)


def test_sealed_key_opened_by_the_wrong_recipient_is_refused(
    steward: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Wrong recipient (fault: the merge peer, say, opens another member's key): refused by the
    recipient field; with the header forged to its own address, its key cannot open it."""
    sealed = seal_to(steward, 2)
    with pytest.raises(SealedKeyMismatchError) as info:
        open_as(sealed, public_ctx, 5)
    assert info.value.field == "recipient"
    forged = (
        SealedKeyHeader(steward.params_id, binding(steward, 5)).pack() + sealed[SEALED_HEADER_SIZE:]
    )
    with pytest.raises(SealedKeyError, match="cannot open"):
        open_as(forged, public_ctx, 5)


def test_sealing_with_a_binding_for_another_context_is_refused(
    steward: SecretRoundContext, other_steward: SecretRoundContext
) -> None:
    """Steward bug (fault: a key sealed under a binding that names another context)."""
    with pytest.raises(SealedKeyMismatchError) as info:
        seal_secret_key(
            steward, binding(other_steward, 2), member_identity(2).encryption_public_key
        )
    assert info.value.field == "context_hash"


def test_sealing_to_an_all_zero_encryption_key_is_refused(steward: SecretRoundContext) -> None:
    """A degenerate X25519 key (fault: sealing to a key whose shared secret is known)."""
    with pytest.raises(SealedKeyError):
        seal_secret_key(steward, binding(steward, 2), bytes(32))


def test_secret_key_that_does_not_match_the_public_context_is_refused(
    steward: SecretRoundContext,
    other_steward: SecretRoundContext,
    public_ctx: PublicRoundContext,
) -> None:
    """A correctly bound and sealed blob holding another round's secret key (fault: a lying
    steward): the key-pair check catches it instead of letting the peer decrypt garbage."""
    bound = binding(steward, 2)
    suite = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)
    public_key = member_identity(2).encryption_private_key().public_key()
    sealed = SealedKeyHeader(steward.params_id, bound).pack() + suite.encrypt(
        other_steward._secret_key, public_key, info=bound.info()
    )
    with pytest.raises(SealedKeyError, match="does not belong"):
        open_as(sealed, public_ctx, 2)


def test_tampered_sealed_key_is_refused(
    steward: SecretRoundContext, public_ctx: PublicRoundContext
) -> None:
    """Corrupted bytes inside the sealed ciphertext (fault: tampering goes unnoticed): the
    Poly1305 tag fails."""
    sealed = bytearray(seal_to(steward, 2))
    sealed[-100] ^= 0x80
    with pytest.raises(SealedKeyError, match="cannot open"):
        open_as(bytes(sealed), public_ctx, 2)


@pytest.mark.parametrize("cut", [0, 30, SEALED_HEADER_SIZE + 10, -1])
def test_truncated_sealed_key_is_refused(
    steward: SecretRoundContext, public_ctx: PublicRoundContext, cut: int
) -> None:
    """Truncated sealed key (fault: a short read is used), in the header, the encapsulated key
    or the last byte."""
    sealed = seal_to(steward, 2)
    with pytest.raises(SealedKeyError):
        open_as(sealed[:cut], public_ctx, 2)


def test_oversized_sealed_key_is_refused(public_ctx: PublicRoundContext) -> None:
    """A sealed key larger than any the parameter set produces (fault: unbounded buffering) is
    refused before decrypting."""
    data = b"\x00" * (max_sealed_key_size(1) + 1)
    with pytest.raises(OversizedBlobError):
        open_as(data, public_ctx, 2)


def test_binding_encoding_is_fixed_layout() -> None:
    """The binding's encoding is fixed-size and injective (fault: two bindings that encode
    alike, e.g. by shifting bytes between variable-length fields)."""
    base = SealBinding(1, b"\x01" * 20, 2, 3, b"\x04" * 32, b"\x05" * 20)
    assert len(base.pack()) == 120
    assert base.pack() == (
        (1).to_bytes(32, "big")
        + b"\x01" * 20
        + (2).to_bytes(8, "big")
        + (3).to_bytes(8, "big")
        + b"\x04" * 32
        + b"\x05" * 20
    )
    assert (
        SealBinding.of(
            chain_id=1,
            contract="0x" + "01" * 20,
            round_id=2,
            attempt=3,
            context_hash=b"\x04" * 32,
            recipient="0x" + "05" * 20,
        )
        == base
    )
    with pytest.raises(ValueError):
        SealBinding(1, b"\x01" * 19, 2, 3, b"\x04" * 32, b"\x05" * 20)
    with pytest.raises(ValueError):
        SealBinding(-1, b"\x01" * 20, 2, 3, b"\x04" * 32, b"\x05" * 20)


def test_repr_of_a_secret_context_shows_no_key_material(steward: SecretRoundContext) -> None:
    """Key hygiene: logging a context must not print the key."""
    text = repr(steward)
    assert steward.context_hash.hex() in text and len(text) < 200
