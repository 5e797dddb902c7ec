"""Round keys: a fresh CKKS key pair per round, a public context for everyone, and the secret
key sealed to each key-holding participant.

Two context types keep the roles apart *by construction*:

- :class:`PublicRoundContext` is built only from the public context's bytes, and refuses bytes
  that carry a secret key. It can encrypt (public key) and add, never decrypt. It is all the
  merge peer ever holds.
- :class:`SecretRoundContext` exists only by generating a round key (the steward) or by opening
  a sealed key addressed to you (a participant). It encrypts compactly (seeded symmetric) and
  decrypts.

A sealed key is the SEAL secret key encrypted with ECIES (eciespy: secp256k1 ECDH, HKDF-SHA256,
AES-256-GCM) to the recipient's secp256k1 public key, the same key that gives the recipient its
Ethereum address and PeerID. eciespy has no associated-data input, so the binding header
(round, context hash, recipient address, parameter set) is sent in clear *and* repeated inside
the authenticated plaintext: a recipient compares the two, so a sealed key replayed into another
round or context, or forwarded to another peer, is refused. Opening also checks that the secret
key belongs to the context's public key, so a peer cannot be handed a key that silently decrypts
garbage.

Note (TenSEAL): ``serialize(save_secret_key=True)`` on a context whose key was dropped silently
leaves the key out; we never rely on it, and we read the key out of the steward's private
context explicitly.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from dataclasses import dataclass
from typing import Any

import coincurve
import ecies
import numpy as np
import tenseal as ts
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

log = logging.getLogger(__name__)

# TenSEALContextProto: encryption_parameters = 1, public_context = 2, private_context = 3,
# encryption_type = 4. TenSEALPublicProto: public_key = 1, auto_flags = 2, scale = 3,
# relin_keys = 4, galois_keys = 5. TenSEALPrivateProto: secret_key = 1.
_CTX_PARAMS, _CTX_PUBLIC, _CTX_PRIVATE, _CTX_ENC_TYPE = 1, 2, 3, 4
_PUB_KEY, _PUB_FLAGS, _PUB_SCALE, _PUB_RELIN, _PUB_GALOIS = 1, 2, 3, 4, 5
_PRIV_SECRET_KEY = 1

SEALED_MAGIC = b"SWSK"
SEALED_VERSION = 1
#: magic, version, params id, round, recipient address, public-context hash
SEALED_HEADER = struct.Struct(">4sBHQ20s32s")
SEALED_HEADER_SIZE = SEALED_HEADER.size  # 67
#: ECIES overhead: 65-byte ephemeral public key, 16-byte nonce, 16-byte tag
ECIES_OVERHEAD = 65 + 16 + 16
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


def _address_of_private(private_key: bytes) -> bytes:
    return address_of(coincurve.PrivateKey(bytes(private_key)).public_key)


def max_public_context_size(params_id: int) -> int:
    """Upper bound on the bytes of a public context (public key only) for this parameter set."""
    p = get_params(params_id)
    key_moduli = len(p.coeff_mod_bit_sizes)
    return 2 * p.poly_modulus_degree * key_moduli * 8 + _SEAL_SLACK


def max_sealed_key_size(params_id: int) -> int:
    """Upper bound on the bytes of a sealed round key for this parameter set."""
    p = get_params(params_id)
    secret = p.poly_modulus_degree * len(p.coeff_mod_bit_sizes) * 8 + _SEAL_SLACK
    return SEALED_HEADER_SIZE * 2 + secret + ECIES_OVERHEAD


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
        digest = hashlib.sha256(data).digest()
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

        ctx = cls(_token=_CONSTRUCT)
        ctx.params_id = params_id
        ctx.params = params
        ctx.public_bytes = data
        ctx.context_hash = digest
        ctx._tenseal = tenseal_context
        ctx._bridge = bridge
        ctx._encryption_parameters = enc_params
        ctx._public_key = public_key
        log.debug("loaded public round context %s", digest.hex()[:16])
        return ctx

    _tenseal: Any
    _bridge: SealBridge
    _encryption_parameters: bytes
    _public_key: bytes

    @property
    def tenseal_context(self) -> Any:
        """The TenSEAL context (public: ``is_private()`` is False)."""
        return self._tenseal

    def is_private(self) -> bool:
        return bool(self._tenseal.is_private())

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
            bridge = SealBridge(public.params, public._encryption_parameters)
            bridge.set_public_key(public._public_key)
            bridge.set_secret_key(secret_key)
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


@dataclass(frozen=True)
class SealedKeyHeader:
    """The clear-text binding of a sealed key (repeated inside the authenticated plaintext)."""

    params_id: int
    round_id: int
    recipient: bytes
    context_hash: bytes

    def pack(self) -> bytes:
        return SEALED_HEADER.pack(
            SEALED_MAGIC,
            SEALED_VERSION,
            self.params_id,
            self.round_id,
            self.recipient,
            self.context_hash,
        )


def read_sealed_key_header(sealed: bytes) -> SealedKeyHeader:
    """The clear-text header of a sealed key (to route it or refuse it before decrypting)."""
    if len(sealed) < SEALED_HEADER_SIZE + ECIES_OVERHEAD:
        raise SealedKeyError(f"sealed key of {len(sealed)} bytes is truncated")
    magic, version, params_id, round_id, recipient, context_hash = SEALED_HEADER.unpack_from(
        sealed, 0
    )
    if magic != SEALED_MAGIC:
        raise SealedKeyError("not a sealed round key (bad magic)")
    if version != SEALED_VERSION:
        raise SealedKeyError(f"sealed key format version {version} is not supported")
    return SealedKeyHeader(params_id, round_id, recipient, context_hash)


def generate_round_keys(params_id: int = DEFAULT_PARAMS_ID) -> SecretRoundContext:
    """A fresh CKKS key pair for one round (the key steward calls this once per round).

    Publish ``ctx.public_bytes`` to every participant and record ``ctx.context_hash`` on the
    ledger; seal the secret key to each key-holding participant with :func:`seal_secret_key`.
    """
    params = get_params(params_id)
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
    secret_key = bytes(_proto.read_bytes(secret_fields[_PRIV_SECRET_KEY][0]))
    # Build the steward's own contexts through the same path a participant takes, so the
    # steward uses exactly what it publishes.
    public = PublicRoundContext.from_bytes(public_bytes, params_id=params_id)
    ctx = SecretRoundContext._attach(public, secret_key)
    log.info("generated round key, context %s", public.context_hash.hex()[:16])
    return ctx


def seal_secret_key(
    ctx: SecretRoundContext,
    *,
    round_id: int,
    recipient_public_key: coincurve.PublicKey | bytes,
    recipient_address: bytes | None = None,
) -> bytes:
    """Seal the round's secret key to one recipient (only its secp256k1 private key opens it).

    ``recipient_address``, if given (e.g. from the ledger), must be the address of
    ``recipient_public_key``; a mismatch raises :class:`SealedKeyMismatchError`.
    """
    if not isinstance(ctx, SecretRoundContext):
        raise TypeError("sealing needs the SecretRoundContext that holds the key")
    try:
        public_key = _uncompressed(recipient_public_key)
    except ValueError as exc:
        raise SealedKeyError(f"recipient public key: {exc}") from exc
    address = address_of(public_key)
    if recipient_address is not None and bytes(recipient_address) != address:
        raise SealedKeyMismatchError("recipient", bytes(recipient_address), address)
    header = SealedKeyHeader(ctx.params_id, round_id, address, ctx.context_hash).pack()
    return header + ecies.encrypt(public_key, header + ctx._secret_key)


def open_sealed_key(
    sealed: bytes,
    public: PublicRoundContext,
    *,
    round_id: int,
    private_key: bytes,
) -> SecretRoundContext:
    """Open a sealed round key addressed to ``private_key``'s owner, for ``public``'s round.

    Raises :class:`SealedKeyMismatchError` when the key is bound to another round, context,
    parameter set or recipient, :class:`OversizedBlobError` when it is larger than any sealed
    key, and :class:`SealedKeyError` when it cannot be opened (not sealed to this key,
    tampered with, truncated) or is not the secret key of ``public``.
    """
    limit = max_sealed_key_size(public.params_id)
    if len(sealed) > limit:
        raise OversizedBlobError(len(sealed), limit)
    header = read_sealed_key_header(sealed)
    me = _address_of_private(private_key)
    if header.params_id != public.params_id:
        raise SealedKeyMismatchError("params_id", public.params_id, header.params_id)
    if header.round_id != round_id:
        raise SealedKeyMismatchError("round", round_id, header.round_id)
    if header.context_hash != public.context_hash:
        raise SealedKeyMismatchError("context_hash", public.context_hash, header.context_hash)
    if header.recipient != me:
        raise SealedKeyMismatchError("recipient", me, header.recipient)
    try:
        plaintext = ecies.decrypt(bytes(private_key), sealed[SEALED_HEADER_SIZE:])
    except Exception as exc:  # eciespy raises ValueError or cryptography's InvalidTag
        raise SealedKeyError(
            "cannot open the sealed key: not sealed to this key, or tampered"
        ) from exc
    if plaintext[:SEALED_HEADER_SIZE] != sealed[:SEALED_HEADER_SIZE]:
        raise SealedKeyError("the sealed key's clear header differs from its authenticated copy")
    return SecretRoundContext._attach(public, plaintext[SEALED_HEADER_SIZE:])
