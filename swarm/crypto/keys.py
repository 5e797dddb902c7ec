"""Round keys: a fresh CKKS key pair per round, a public context for everyone, and the secret
key sealed to each key-holding participant.

Two context types keep the roles apart *by construction*:

- :class:`PublicRoundContext` is built only from the public context's bytes, and refuses bytes
  that carry a secret key. It can encrypt (public key) and add, never decrypt. It is all the
  merge peer ever holds.
- :class:`SecretRoundContext` exists only by generating a round key (the steward) or by opening
  a sealed key addressed to you (a participant). It encrypts compactly (seeded symmetric) and
  decrypts.

A sealed key is the SEAL secret key encrypted with HPKE (RFC 9180, base mode: DHKEM(X25519,
HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305) to the recipient's X25519 *encryption* key, the key
its identity key signed and the ledger records (never the secp256k1 signing key itself). HPKE's
``info`` is :meth:`SealBinding.info`: a fixed-layout encoding, under its own label, of the chain
id, the ledger contract, the round, the attempt, the public context's hash and the recipient's
address. A sealed key opened under any other binding fails its authentication tag: it cannot be
replayed into another chain, contract, round, attempt or context, nor forwarded to another peer.
The same binding is also sent in clear in front of the ciphertext, so a mismatch is reported by
field (:class:`SealedKeyMismatchError`) before anything is decrypted; a clear header rewritten
to match still fails the tag. Opening also checks that the secret key belongs to the context's
public key, so a peer cannot be handed a key that silently decrypts garbage.

Note (TenSEAL): ``serialize(save_secret_key=True)`` on a context whose key was dropped silently
leaves the key out; we never rely on it, and we read the key out of the steward's private
context explicitly.
"""

from __future__ import annotations

import logging
import struct
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import coincurve
import numpy as np
import tenseal as ts
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from eth_utils import keccak

from swarm.crypto import _proto
from swarm.crypto._seal import SealBridge
from swarm.crypto.params import DEFAULT_PARAMS_ID, CkksParams, get_params
from swarm.errors import (
    BlobMismatchError,
    MalformedContextError,
    OversizedBlobError,
    SealedKeyError,
    SealedKeyMismatchError,
)
from swarm.hashing import SEAL_INFO_LABEL, Tag, tagged_hash

log = logging.getLogger(__name__)

# TenSEALContextProto: encryption_parameters = 1, public_context = 2, private_context = 3,
# encryption_type = 4. TenSEALPublicProto: public_key = 1, auto_flags = 2, scale = 3,
# relin_keys = 4, galois_keys = 5. TenSEALPrivateProto: secret_key = 1.
_CTX_PARAMS, _CTX_PUBLIC, _CTX_PRIVATE, _CTX_ENC_TYPE = 1, 2, 3, 4
_PUB_KEY, _PUB_FLAGS, _PUB_SCALE, _PUB_RELIN, _PUB_GALOIS = 1, 2, 3, 4, 5
_PRIV_SECRET_KEY = 1

SEALED_MAGIC = b"SWSK"
SEALED_VERSION = 2
#: the binding, fixed layout: chain id (uint256), contract, round, attempt, public-context
#: hash, recipient address
SEAL_BINDING = struct.Struct(">32s20sQQ32s20s")
#: magic, version, params id, then the binding
SEALED_HEADER = struct.Struct(">4sBH" + SEAL_BINDING.format[1:])
SEALED_HEADER_SIZE = SEALED_HEADER.size  # 127
#: HPKE overhead: 32-byte encapsulated X25519 key, 16-byte Poly1305 tag
HPKE_OVERHEAD = 32 + 16
#: the one HPKE suite of sealed round keys (RFC 9180 ids: KEM 0x0020, KDF 0x0001, AEAD 0x0003)
HPKE_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)
X25519_KEY_SIZE = 32
#: SEAL serialization overhead allowance (headers, members, zstd framing)
_SEAL_SLACK = 4096

ADDRESS_SIZE = 20
HASH_SIZE = 32

# Only the factory functions below hold this token, so a context cannot be assembled from parts
# (in particular, no public context can be given a secret key after the fact).
_CONSTRUCT = object()


def _uncompressed(public_key: coincurve.PublicKey | bytes) -> bytes:
    """A secp256k1 public key as 65 uncompressed bytes; raises ValueError if not on the curve."""
    if isinstance(public_key, coincurve.PublicKey):
        return public_key.format(compressed=False)
    raw = bytes(public_key)
    if len(raw) == 64:
        raw = b"\x04" + raw
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError("expected a 64- or 65-byte uncompressed secp256k1 public key")
    return coincurve.PublicKey(raw).format(compressed=False)


def address_of(public_key: coincurve.PublicKey | bytes) -> bytes:
    """The 20-byte Ethereum address of a secp256k1 public key: keccak256(x || y)[-20:]."""
    return bytes(keccak(_uncompressed(public_key)[1:])[-ADDRESS_SIZE:])


def context_hash(data: bytes | memoryview) -> bytes:
    """The hash of a round's public context (its serialized bytes): what the steward posts on
    the ledger and what peers address the context by (tag ``swarm/v1/round-context``)."""
    return tagged_hash(Tag.ROUND_CONTEXT, data)


def sealed_key_id(sealed: bytes | memoryview) -> bytes:
    """The hash peers address a sealed round key by (tag ``swarm/v1/sealed-key``)."""
    return tagged_hash(Tag.SEALED_KEY, sealed)


def max_public_context_size(params_id: int) -> int:
    """Upper bound on the bytes of a public context (public key only) for this parameter set."""
    p = get_params(params_id)
    key_moduli = len(p.coeff_mod_bit_sizes)
    return 2 * p.poly_modulus_degree * key_moduli * 8 + _SEAL_SLACK


def max_sealed_key_size(params_id: int) -> int:
    """Upper bound on the bytes of a sealed round key for this parameter set."""
    p = get_params(params_id)
    secret = p.poly_modulus_degree * len(p.coeff_mod_bit_sizes) * 8 + _SEAL_SLACK
    return SEALED_HEADER_SIZE + secret + HPKE_OVERHEAD


def _check_params(bridge: SealBridge, params: CkksParams) -> None:
    if bridge.poly_modulus_degree != params.poly_modulus_degree:
        raise MalformedContextError(
            f"context has N={bridge.poly_modulus_degree}, parameter set {params.name} "
            f"needs N={params.poly_modulus_degree}"
        )
    if bridge.coeff_mod_bit_sizes != params.coeff_mod_bit_sizes:
        raise MalformedContextError(
            f"context has coefficient moduli of {list(bridge.coeff_mod_bit_sizes)} bits, "
            f"parameter set {params.name} needs {list(params.coeff_mod_bit_sizes)}"
        )


class PublicRoundContext:
    """A round's public CKKS context: encrypt with the public key, add ciphertexts; no secret
    key, by construction (see the module docstring). Build it with :meth:`from_bytes`."""

    params_id: int
    params: CkksParams
    public_bytes: bytes
    context_hash: bytes

    def __init__(self, *, _token: object = None) -> None:
        if _token is not _CONSTRUCT:
            raise TypeError("use PublicRoundContext.from_bytes(...)")

    @classmethod
    def from_bytes(
        cls, data: bytes, *, params_id: int, expected_hash: bytes | None = None
    ) -> PublicRoundContext:
        """Load a public context as the steward published it.

        ``expected_hash`` is the hash recorded on the ledger; pass it whenever you have it.
        Raises :class:`OversizedBlobError`, :class:`BlobMismatchError` (hash),
        :class:`MalformedContextError` (unreadable, carries a secret key or extra keys, or does
        not match the parameter set) and :class:`UnknownParameterSetError`.
        """
        params = get_params(params_id)
        limit = max_public_context_size(params_id)
        if len(data) > limit:
            raise OversizedBlobError(len(data), limit)
        data = bytes(data)
        digest = context_hash(data)
        if expected_hash is not None and digest != expected_hash:
            raise BlobMismatchError("context_hash", expected_hash, digest)
        try:
            top = _proto.fields_by_number(data)
            if _CTX_PRIVATE in top:
                raise MalformedContextError("a public context must not carry a secret key")
            unknown = set(top) - {_CTX_PARAMS, _CTX_PUBLIC, _CTX_ENC_TYPE}
            if unknown:
                raise MalformedContextError(f"unexpected context fields {sorted(unknown)}")
            for field in top.get(_CTX_ENC_TYPE, []):
                if field.value != 0:
                    raise MalformedContextError("context is not public-key (asymmetric) CKKS")
            enc_params = bytes(_proto.read_bytes(top[_CTX_PARAMS][0]))
            public = _proto.fields_by_number(_proto.read_bytes(top[_CTX_PUBLIC][0]))
            if _PUB_RELIN in public or _PUB_GALOIS in public:
                raise MalformedContextError(
                    "a round context carries no relinearization or Galois keys (sums need none)"
                )
            public_key = bytes(_proto.read_bytes(public[_PUB_KEY][0]))
            scale = _proto.read_double(public[_PUB_SCALE][0])
        except (_proto.ProtoError, KeyError, IndexError) as exc:
            raise MalformedContextError(f"unreadable public context: {exc}") from exc
        if scale != params.scale:
            raise MalformedContextError(f"context scale {scale} != {params.scale}")
        try:
            bridge = SealBridge(params, enc_params)
        except (ValueError, RuntimeError) as exc:
            raise MalformedContextError(f"unreadable encryption parameters: {exc}") from exc
        _check_params(bridge, params)
        try:
            bridge.set_public_key(public_key)
            tenseal_context = ts.context_from(data, n_threads=1)
        except (ValueError, RuntimeError, TypeError) as exc:
            raise MalformedContextError(f"unreadable public key: {exc}") from exc
        if tenseal_context.has_secret_key() or tenseal_context.is_private():
            raise MalformedContextError("a public context must not carry a secret key")
        # Checked; not kept. Only the merge peer adds with it (loaded again on first use); a
        # participant encrypts and decrypts with its secret context. Each loaded context holds
        # ~5 MB of SEAL's memory pool, which SEAL never returns to the OS.
        del tenseal_context

        ctx = cls(_token=_CONSTRUCT)
        ctx.params_id = params_id
        ctx.params = params
        ctx.public_bytes = data
        ctx.context_hash = digest
        ctx._tenseal = None
        ctx._tenseal_lock = threading.Lock()
        ctx._bridge = bridge
        ctx._encryption_parameters = enc_params
        ctx._public_key = public_key
        log.debug("loaded public round context %s", digest.hex()[:16])
        return ctx

    _tenseal: Any
    _tenseal_lock: threading.Lock
    _bridge: SealBridge
    _encryption_parameters: bytes
    _public_key: bytes

    @property
    def tenseal_context(self) -> Any:
        """The TenSEAL context (public: ``is_private()`` is False), loaded on first use."""
        with self._tenseal_lock:
            if self._tenseal is None:
                self._tenseal = ts.context_from(self.public_bytes, n_threads=1)
            return self._tenseal

    def is_private(self) -> bool:
        # from_bytes refused any context with a secret key
        return self._tenseal is not None and bool(self._tenseal.is_private())

    def __repr__(self) -> str:
        return f"PublicRoundContext(params_id={self.params_id}, hash={self.context_hash.hex()})"


class SecretRoundContext:
    """A round context with the secret key: encrypts compactly and decrypts.

    Obtained from :func:`generate_round_keys` (the steward) or :func:`open_sealed_key`
    (a participant). ``public`` is the matching :class:`PublicRoundContext`.
    """

    public: PublicRoundContext
    _tenseal: Any
    _bridge: SealBridge
    _secret_key: bytes

    def __init__(self, *, _token: object = None) -> None:
        if _token is not _CONSTRUCT:
            raise TypeError("use generate_round_keys() or open_sealed_key()")

    @classmethod
    def _attach(cls, public: PublicRoundContext, secret_key: bytes) -> SecretRoundContext:
        """Join a public context and a SEAL secret key; checks that the two belong together."""
        private_bytes = public.public_bytes + _proto.bytes_field(
            _CTX_PRIVATE, _proto.bytes_field(_PRIV_SECRET_KEY, secret_key)
        )
        try:
            tenseal_context = ts.context_from(private_bytes, n_threads=1)
            # the public context's SEAL context and encoder, with the secret key added
            bridge = public._bridge.with_secret_key(secret_key)
        except (ValueError, RuntimeError, TypeError) as exc:
            raise SealedKeyError(f"not a usable CKKS secret key: {exc}") from exc
        if not tenseal_context.is_private():
            raise SealedKeyError("the secret key did not load")
        _check_key_pair(public, bridge, tenseal_context)
        ctx = cls(_token=_CONSTRUCT)
        ctx.public = public
        ctx._tenseal = tenseal_context
        ctx._bridge = bridge
        ctx._secret_key = secret_key
        return ctx

    @property
    def params_id(self) -> int:
        return self.public.params_id

    @property
    def params(self) -> CkksParams:
        return self.public.params

    @property
    def context_hash(self) -> bytes:
        return self.public.context_hash

    @property
    def public_bytes(self) -> bytes:
        return self.public.public_bytes

    @property
    def tenseal_context(self) -> Any:
        """The TenSEAL context with the secret key (``is_private()`` is True)."""
        return self._tenseal

    def is_private(self) -> bool:
        return bool(self._tenseal.is_private())

    def __repr__(self) -> str:
        # never show key material
        return f"SecretRoundContext(params_id={self.params_id}, hash={self.context_hash.hex()})"


def _check_key_pair(public: PublicRoundContext, bridge: SealBridge, tenseal_context: Any) -> None:
    """Encrypt a known vector with the public key and decrypt it with the secret key: a key
    that does not belong to the public key decrypts to noise of magnitude ~q0/scale."""
    probe = np.linspace(-1.0, 1.0, num=64)
    sealed = bridge.encrypt_public(probe)
    vector = ts.ckks_vector_from(
        tenseal_context, _proto.encode_ckks_vector([probe.size], [sealed], public.params.scale)
    )
    error = float(np.max(np.abs(np.asarray(vector.decrypt()) - probe)))
    if not error < 1e-3:
        raise SealedKeyError("the secret key does not belong to the round's public context")


def _u256(value: int, name: str) -> bytes:
    if not 0 <= value < 2**256:
        raise ValueError(f"{name} {value} is not a uint256")
    return value.to_bytes(32, "big")


@dataclass(frozen=True)
class SealBinding:
    """Everything a sealed round key is bound to (HPKE ``info``; also sent in clear).

    ``chain_id`` and ``contract`` (the SwarmLedger's 20-byte address) name the consortium's
    ledger; ``round_id`` and ``attempt`` the key's attempt; ``context_hash`` the public context
    it is the secret key of; ``recipient`` the 20-byte address of the member it is sealed to.
    """

    chain_id: int
    contract: bytes
    round_id: int
    attempt: int
    context_hash: bytes
    recipient: bytes

    #: the fields in wire order (the order mismatches are reported in)
    FIELDS: ClassVar[tuple[str, ...]] = (
        "chain_id",
        "contract",
        "round_id",
        "attempt",
        "context_hash",
        "recipient",
    )

    def __post_init__(self) -> None:
        _u256(self.chain_id, "chain id")
        if not 0 <= self.round_id < 2**64 or not 0 <= self.attempt < 2**64:
            raise ValueError("round and attempt must fit in 64 bits")
        for name, size in (("contract", 20), ("context_hash", 32), ("recipient", 20)):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != size:
                raise ValueError(f"{name} must be {size} bytes")

    @classmethod
    def of(
        cls,
        *,
        chain_id: int,
        contract: str | bytes,
        round_id: int,
        attempt: int,
        context_hash: bytes,
        recipient: str | bytes,
    ) -> SealBinding:
        """A binding from addresses as hex strings (``0x…``, checksummed or not) or bytes."""
        return cls(
            chain_id,
            _address(contract),
            round_id,
            attempt,
            bytes(context_hash),
            _address(recipient),
        )

    def pack(self) -> bytes:
        """The fixed-layout encoding (120 bytes)."""
        return SEAL_BINDING.pack(
            _u256(self.chain_id, "chain id"),
            self.contract,
            self.round_id,
            self.attempt,
            self.context_hash,
            self.recipient,
        )

    def info(self) -> bytes:
        """HPKE ``info``: ``"swarm/v1/round-key-seal" || 0x00 || version || pack()``."""
        return SEAL_INFO_LABEL + b"\0" + bytes([SEALED_VERSION]) + self.pack()


def _address(value: str | bytes) -> bytes:
    if isinstance(value, str):
        try:
            raw = bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            raise ValueError(f"{value!r} is not an address") from None
    else:
        raw = bytes(value)
    if len(raw) != ADDRESS_SIZE:
        raise ValueError(f"an address is {ADDRESS_SIZE} bytes, not {len(raw)}")
    return raw


@dataclass(frozen=True)
class SealedKeyHeader:
    """The clear-text header of a sealed key: the parameter set and the binding."""

    params_id: int
    binding: SealBinding

    def pack(self) -> bytes:
        b = self.binding
        return SEALED_HEADER.pack(
            SEALED_MAGIC,
            SEALED_VERSION,
            self.params_id,
            _u256(b.chain_id, "chain id"),
            b.contract,
            b.round_id,
            b.attempt,
            b.context_hash,
            b.recipient,
        )


def read_sealed_key_header(sealed: bytes) -> SealedKeyHeader:
    """The clear-text header of a sealed key (to route it or refuse it before decrypting)."""
    if len(sealed) < SEALED_HEADER_SIZE + HPKE_OVERHEAD:
        raise SealedKeyError(f"sealed key of {len(sealed)} bytes is truncated")
    magic, version, params_id, chain, contract, round_id, attempt, ctx_hash, recipient = (
        SEALED_HEADER.unpack_from(sealed, 0)
    )
    if magic != SEALED_MAGIC:
        raise SealedKeyError("not a sealed round key (bad magic)")
    if version != SEALED_VERSION:
        raise SealedKeyError(f"sealed key format version {version} is not supported")
    binding = SealBinding(
        int.from_bytes(chain, "big"), contract, round_id, attempt, ctx_hash, recipient
    )
    return SealedKeyHeader(params_id, binding)


def generate_round_keys(params_id: int = DEFAULT_PARAMS_ID) -> SecretRoundContext:
    """A fresh CKKS key pair for one round (the key steward calls this once per round).

    Publish ``ctx.public_bytes`` to every participant and record ``ctx.context_hash`` on the
    ledger; seal the secret key to each key-holding participant with :func:`seal_secret_key`.
    """
    public_bytes, secret_key = _new_key_pair(get_params(params_id))
    # Build the steward's own contexts through the same path a participant takes, so the
    # steward uses exactly what it publishes.
    public = PublicRoundContext.from_bytes(public_bytes, params_id=params_id)
    ctx = SecretRoundContext._attach(public, secret_key)
    log.info("generated round key, context %s", public.context_hash.hex()[:16])
    return ctx


def _new_key_pair(params: CkksParams) -> tuple[bytes, bytes]:
    """(public context bytes, SEAL secret key bytes) of a fresh key pair. The TenSEAL context
    that made them (with relinearization keys the round never uses) is gone on return, before
    the round's contexts are built from the bytes: SEAL's memory pool keeps its high-water mark
    for the life of the process."""
    steward = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=params.poly_modulus_degree,
        coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
        n_threads=1,
    )
    steward.global_scale = params.scale
    public_bytes = steward.serialize(
        save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=False
    )
    private_bytes = steward.serialize(
        save_public_key=False, save_secret_key=True, save_galois_keys=False, save_relin_keys=False
    )
    private = _proto.fields_by_number(private_bytes)
    secret_fields = _proto.fields_by_number(_proto.read_bytes(private[_CTX_PRIVATE][0]))
    return public_bytes, bytes(_proto.read_bytes(secret_fields[_PRIV_SECRET_KEY][0]))


def _x25519_public(key: x25519.X25519PublicKey | bytes) -> x25519.X25519PublicKey:
    if isinstance(key, x25519.X25519PublicKey):
        return key
    raw = bytes(key)
    if len(raw) != X25519_KEY_SIZE or not any(raw):
        raise SealedKeyError("the recipient's encryption key is not a 32-byte X25519 key")
    return x25519.X25519PublicKey.from_public_bytes(raw)


def _x25519_private(key: x25519.X25519PrivateKey | bytes) -> x25519.X25519PrivateKey:
    if isinstance(key, x25519.X25519PrivateKey):
        return key
    raw = bytes(key)
    if len(raw) != X25519_KEY_SIZE:
        raise SealedKeyError("an X25519 private key is 32 bytes")
    return x25519.X25519PrivateKey.from_private_bytes(raw)


def seal_secret_key(
    ctx: SecretRoundContext,
    binding: SealBinding,
    recipient_key: x25519.X25519PublicKey | bytes,
) -> bytes:
    """Seal the round's secret key to one recipient's X25519 encryption key (the member's
    ``encryption_key`` on the ledger), bound to ``binding``.

    ``binding.context_hash`` must be ``ctx``'s (SealedKeyMismatchError otherwise).
    """
    if not isinstance(ctx, SecretRoundContext):
        raise TypeError("sealing needs the SecretRoundContext that holds the key")
    if binding.context_hash != ctx.context_hash:
        raise SealedKeyMismatchError("context_hash", ctx.context_hash, binding.context_hash)
    public_key = _x25519_public(recipient_key)
    header = SealedKeyHeader(ctx.params_id, binding).pack()
    try:
        sealed = HPKE_SUITE.encrypt(ctx._secret_key, public_key, info=binding.info())
    except ValueError as exc:  # a low-order point: the shared secret would be zero
        raise SealedKeyError(f"cannot seal to this encryption key: {exc}") from exc
    return header + sealed


def open_sealed_key(
    sealed: bytes,
    public: PublicRoundContext,
    *,
    binding: SealBinding,
    private_key: x25519.X25519PrivateKey | bytes,
) -> SecretRoundContext:
    """Open a sealed round key with our X25519 decryption key
    (``Identity.encryption_private_key()``), expecting ``binding`` (built from what *we* know:
    the ledger, the round, our own address) and ``public``'s context.

    Raises :class:`SealedKeyMismatchError` when the clear header names another binding or
    parameter set (``field`` says which), :class:`OversizedBlobError` when it is larger than any
    sealed key, and :class:`SealedKeyError` when it cannot be opened (not sealed to this key,
    sealed under another binding, tampered with, truncated) or is not the secret key of
    ``public``.
    """
    limit = max_sealed_key_size(public.params_id)
    if len(sealed) > limit:
        raise OversizedBlobError(len(sealed), limit)
    if binding.context_hash != public.context_hash:
        raise SealedKeyMismatchError("context_hash", public.context_hash, binding.context_hash)
    header = read_sealed_key_header(sealed)
    if header.params_id != public.params_id:
        raise SealedKeyMismatchError("params_id", public.params_id, header.params_id)
    for field in SealBinding.FIELDS:
        expected, found = getattr(binding, field), getattr(header.binding, field)
        if expected != found:
            raise SealedKeyMismatchError(field, expected, found)
    try:
        # info from the binding we expect, never from the clear header
        secret_key = HPKE_SUITE.decrypt(
            bytes(sealed[SEALED_HEADER_SIZE:]), _x25519_private(private_key), info=binding.info()
        )
    except (InvalidTag, ValueError) as exc:
        raise SealedKeyError(
            "cannot open the sealed key: not sealed to this key or binding, or tampered"
        ) from exc
    return SecretRoundContext._attach(public, secret_key)
