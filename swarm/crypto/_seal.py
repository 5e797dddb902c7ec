"""Bridge to Microsoft SEAL through ``tenseal.sealapi``, for what TenSEAL's vector API lacks.

TenSEAL's high-level ``ckks_vector`` always encrypts at the *first* level with the public key
(58 bytes per value for our parameters). Two things it cannot do, both needed here:

- encode directly at the *last* level, where a ciphertext is half the size and still summable;
- encrypt *symmetrically with a seed*: with the secret key, the ciphertext's second polynomial
  is uniformly random, so SEAL can store the 64-byte seed that generates it instead of the
  polynomial (``Encryptor::encrypt_symmetric`` returning a ``Serializable``). The receiver's
  SEAL regenerates the polynomial when it loads the ciphertext, so TenSEAL loads and adds it
  like any other. With the first polynomial at the last level that is 16 bytes per value.

``tenseal.sealapi`` only (de)serializes through file *paths*. We hand it the path of an
anonymous in-memory file (``memfd_create``, reached as ``/proc/self/fd/N``): nothing touches a
disk, and the secret key never has a name in any file system.

SEAL writes with zstd. For these uniformly random 60-bit coefficients zstd stores the data as
raw blocks (it cannot shrink them), and each 60-bit coefficient still occupies a 64-bit word.
:func:`pack_seeded` re-encodes such a ciphertext as seed + coefficients at their true bit
width (15 bytes per value) and :func:`unpack_seeded` rebuilds the exact SEAL bytes
(uncompressed) for TenSEAL to load. Where the input is not in the expected shape (zstd did
compress a block, a future SEAL writes another layout) packing declines and the caller sends
SEAL's bytes as they are: correctness never depends on the packed form.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import struct
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import tenseal.sealapi as sealapi

from swarm.crypto.params import CkksParams

log = logging.getLogger(__name__)

SEAL_MAGIC = 0xA15E
SEAL_HEADER = struct.Struct("<HBBBBHQ")  # magic, header size, major, minor, compr, reserved, size
SEAL_HEADER_SIZE = SEAL_HEADER.size  # 16
COMPR_NONE = 0
COMPR_ZSTD = 2
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PRNG_SEED_BYTES = 64
#: Ciphertext members before the data: parms_id (4 x u64), is_ntt_form (u8), size,
#: poly_modulus_degree, coeff_modulus_size (u64 each), scale (f64), correction_factor (u64)
CT_MEMBERS = struct.Struct("<4QBQQQdQ")
#: Plaintext members before the data: parms_id (4 x u64), coeff_count (u64), scale (f64)
PT_MEMBERS = struct.Struct("<4QQd")
#: SEAL's PRNG types (seal::prng_type) a seeded ciphertext may name
PRNG_TYPES = frozenset({1, 2})  # blake2xb, shake256


class MemFile:
    """An anonymous in-memory file that SEAL's path-only (de)serializers can write and read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
            self._fd = os.memfd_create("swarm-seal", os.MFD_CLOEXEC)
            self.path = f"/proc/self/fd/{self._fd}"
        else:  # pragma: no cover - non-Linux fallback
            log.warning("no memfd_create: SEAL objects pass through a private temporary file")
            self._tmpdir = tempfile.TemporaryDirectory(prefix="swarm-seal-")
            self.path = os.path.join(self._tmpdir.name, "obj")
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

    def write(self, data: bytes | memoryview) -> None:
        os.ftruncate(self._fd, 0)
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.pwrite(self._fd, view[written:], written)

    def read(self) -> bytes:
        size = os.fstat(self._fd).st_size
        return os.pread(self._fd, size, 0)

    def wipe(self) -> None:
        # the secret key passes through here: leave nothing behind
        os.ftruncate(self._fd, 0)

    def __enter__(self) -> MemFile:
        self._lock.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.wipe()
        finally:
            self._lock.release()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._tmpdir is not None:  # pragma: no cover
            self._tmpdir.cleanup()

    def __del__(self) -> None:
        # at interpreter shutdown os may already be gone
        with contextlib.suppress(Exception):
            self.close()


def seal_header(data: bytes | memoryview) -> tuple[int, int, int, int, int]:
    """(major, minor, compr_mode, size, header_size) of a SEAL-serialized object."""
    if len(data) < SEAL_HEADER_SIZE:
        raise ValueError("shorter than a SEAL header")
    magic, hsize, major, minor, compr, _reserved, size = SEAL_HEADER.unpack_from(data, 0)
    if magic != SEAL_MAGIC or hsize != SEAL_HEADER_SIZE:
        raise ValueError("not a SEAL object")
    return major, minor, compr, size, hsize


@dataclass(frozen=True)
class _Setup:
    """What SEAL derives from one set of encryption parameters: read-only once built."""

    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    context: Any
    encoder: Any
    last_parms_id: tuple[int, ...]
    last_moduli: tuple[int, ...]
    seal_version: tuple[int, int]


#: serialized encryption parameters -> their setup. Every round of a consortium has the same
#: parameters (only the keys are new), so a peer builds SEAL's context (its NTT tables: ~8 ms
#: and ~5 MB of SEAL's memory pool, which SEAL keeps for the life of the process) once, not
#: once per round context, steward key and sealed key it opens.
_SETUPS: dict[bytes, _Setup] = {}
_SETUPS_LOCK = threading.Lock()


def _setup_of(encryption_parameters: bytes, memfile: MemFile) -> _Setup:
    with _SETUPS_LOCK:
        known = _SETUPS.get(encryption_parameters)
        if known is not None:
            return known
        with memfile as mf:
            mf.write(encryption_parameters)
            parms = sealapi.EncryptionParameters(sealapi.SCHEME_TYPE.CKKS)
            parms.load(mf.path)
        context = sealapi.SEALContext(parms, True, sealapi.SEC_LEVEL_TYPE.TC128)
        if not context.parameters_set():
            raise ValueError("SEAL refuses these encryption parameters")
        last = context.last_context_data()
        # the local SEAL's serialization version, for rebuilding headers in unpack_seeded
        with memfile as mf:
            parms.save(mf.path)
            major, minor, _c, _s, _h = seal_header(mf.read())
        setup = _Setup(
            poly_modulus_degree=int(parms.poly_modulus_degree()),
            coeff_mod_bit_sizes=tuple(int(m.bit_count()) for m in parms.coeff_modulus()),
            context=context,
            encoder=sealapi.CKKSEncoder(context),
            last_parms_id=tuple(context.last_parms_id()),
            last_moduli=tuple(int(m.value()) for m in last.parms().coeff_modulus()),
            seal_version=(major, minor),
        )
        if len(_SETUPS) >= 4:  # (a test suite walks through a few parameter sets)
            _SETUPS.pop(next(iter(_SETUPS)))
        _SETUPS[encryption_parameters] = setup
        return setup


class SealBridge:
    """sealapi objects for one round context: parameters, encoder, and the encryptors.

    Built from the *serialized* SEAL encryption parameters found in the TenSEAL context, so its
    ``parms_id`` is by construction the one TenSEAL's ciphertexts carry.
    """

    def __init__(self, params: CkksParams, encryption_parameters: bytes) -> None:
        self.params = params
        self.memfile = MemFile()
        setup = _setup_of(bytes(encryption_parameters), self.memfile)
        self.poly_modulus_degree = setup.poly_modulus_degree
        self.coeff_mod_bit_sizes = setup.coeff_mod_bit_sizes
        self.context = setup.context
        self.encoder = setup.encoder
        self.last_parms_id: list[int] = list(setup.last_parms_id)
        self.last_moduli: list[int] = list(setup.last_moduli)
        self.seal_version = setup.seal_version
        self._public_encryptor: Any = None
        self._secret_encryptor: Any = None
        self._decryptor: Any = None
        self._evaluator: Any = None

    # --- keys -------------------------------------------------------------------------------

    def set_public_key(self, public_key_bytes: bytes | memoryview) -> None:
        with self.memfile as mf:
            mf.write(public_key_bytes)
            key = sealapi.PublicKey()
            key.load(self.context, mf.path)
        self._public_encryptor = sealapi.Encryptor(self.context, key)

    def set_secret_key(self, secret_key_bytes: bytes | memoryview) -> None:
        with self.memfile as mf:
            mf.write(secret_key_bytes)
            key = sealapi.SecretKey()
            key.load(self.context, mf.path)
        self._secret_encryptor = sealapi.Encryptor(self.context, key)
        self._decryptor = sealapi.Decryptor(self.context, key)

    def with_secret_key(self, secret_key_bytes: bytes | memoryview) -> SealBridge:
        """A bridge for the same parameters and public key that also holds the secret key.

        It shares this bridge's SEAL context and encoder instead of building its own: they are
        the same for both keys, read-only once built, and weigh ~5 MB in SEAL's memory pool,
        which SEAL keeps for the life of the process. This bridge stays without the key."""
        twin = copy.copy(self)
        twin.memfile = MemFile()
        twin._secret_encryptor = None
        twin._decryptor = None
        twin._evaluator = None
        twin.set_secret_key(secret_key_bytes)
        return twin

    @property
    def has_secret_key(self) -> bool:
        return self._secret_encryptor is not None

    # --- encryption -------------------------------------------------------------------------

    def _encode_last_level(self, values: npt.NDArray[np.float64]) -> Any:
        """SEAL's CKKS encoding of up to ``values_per_ciphertext`` values at the last level.

        With complex packing, slot ``j`` holds ``values[j] + i * values[slots + j]``: the first
        ``slots`` values in the real parts, the rest in the imaginary parts (a short last chunk
        leaves the tail of either zero). :meth:`_decode` reads them back in that order."""
        plain = sealapi.Plaintext()
        if self.params.complex_packing:
            half = self.params.slots
            packed = values[:half].astype(np.complex128)
            packed.imag[: max(0, values.shape[0] - half)] = values[half:]
            self.encoder.encode(packed.tolist(), self.last_parms_id, self.params.scale, plain)
        else:
            self.encoder.encode(values.tolist(), self.last_parms_id, self.params.scale, plain)
        return plain

    def _decode(self, plain: Any) -> npt.NDArray[np.float64]:
        """The ``values_per_ciphertext`` values a decrypted plaintext holds, in encoding order
        (see :meth:`_encode_last_level`); the caller cuts a short chunk's tail."""
        if self.params.complex_packing:
            slots = np.fromiter(
                self.encoder.decode_complex(plain), dtype=np.complex128, count=self.params.slots
            )
            return np.concatenate((slots.real, slots.imag))
        return np.fromiter(self.encoder.decode_double(plain), dtype=np.float64)

    def encrypt_public(self, values: npt.NDArray[np.float64]) -> bytes:
        """Public-key encryption at the last level: SEAL bytes, about 32 bytes per value."""
        if self._public_encryptor is None:
            raise RuntimeError("no public key loaded")
        plain = self._encode_last_level(values)
        cipher = sealapi.Ciphertext()
        self._public_encryptor.encrypt(plain, cipher)
        with self.memfile as mf:
            cipher.save(mf.path)
            return mf.read()

    def encrypt_seeded(self, values: npt.NDArray[np.float64]) -> bytes:
        """Seeded symmetric encryption at the last level: SEAL bytes, about 16 bytes per
        value."""
        if self._secret_encryptor is None:
            raise RuntimeError("no secret key loaded")
        plain = self._encode_last_level(values)
        serializable = self._secret_encryptor.encrypt_symmetric(plain)
        with self.memfile as mf:
            serializable.save(mf.path)
            return mf.read()

    def encode_coefficients(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint64]:
        """The CKKS encoding of ``values`` at the last level, as SEAL's encoder makes it: the
        ``poly_modulus_degree`` coefficients (NTT form, each in ``[0, q0)``) of the plaintext
        that an encryption of ``values`` would hide. A trivial ciphertext ``(these, 0)``
        decrypts to ``values``; added to a ciphertext's first polynomial it adds ``values``.

        Read from SEAL's serialization, where zstd stores these (uniform-looking NTT-form)
        coefficients raw; a plaintext zstd did compress (a constant vector, say) is read one
        coefficient at a time instead: slower, same result."""
        if len(self.last_moduli) != 1:
            raise ValueError("plain updates need a single modulus at the last level")
        n = self.poly_modulus_degree
        plain = self._encode_last_level(values)
        if plain.is_zero():
            return np.zeros(n, dtype=np.uint64)
        with self.memfile as mf:
            plain.save(mf.path)
            data = mf.read()
        body = _seal_body(data)
        prefix = PT_MEMBERS.pack(*self.last_parms_id, n, self.params.scale)
        prefix += self._sub_header(SEAL_HEADER_SIZE + 8 + n * 8) + struct.pack("<Q", n)
        if body is not None and len(body) == len(prefix) + n * 8 and body[: len(prefix)] == prefix:
            coeffs = np.frombuffer(body, dtype="<u8", count=n, offset=len(prefix))
            coeffs = coeffs.astype(np.uint64)
        else:
            coeffs = np.fromiter((plain[i] for i in range(n)), dtype=np.uint64, count=n)
        if int(coeffs.max()) >= self.last_moduli[0]:  # pragma: no cover - SEAL reduces them
            raise ValueError("SEAL's encoding is not reduced mod q0")
        return coeffs

    # --- decryption from first polynomials and seeds ------------------------------------------

    def _load_ciphertext(self, seal_bytes: bytes) -> Any:
        cipher = sealapi.Ciphertext()
        with self.memfile as mf:
            mf.write(seal_bytes)
            cipher.load(self.context, mf.path)
        return cipher

    def decrypt_sum(
        self, c0: npt.NDArray[np.uint64], seeds: Sequence[tuple[int, bytes]]
    ) -> npt.NDArray[np.float64]:
        """Decrypt the last-level ciphertext whose first polynomial is ``c0`` (NTT form, in
        ``[0, q0)``) and whose second is the sum of the polynomials SEAL generates from
        ``seeds`` ((prng type, 64-byte seed) each; none: a trivial ciphertext, second
        polynomial zero). Returns the ``slots`` decoded values.

        SEAL regenerates each seed's polynomial when it loads a seeded ciphertext: the first
        with ``c0``, the others with a zero first polynomial, added by SEAL's evaluator (exact
        modular addition). Raises ``ValueError`` for what SEAL refuses (unknown PRNG type)."""
        if self._decryptor is None:
            raise RuntimeError("no secret key loaded")
        if self._evaluator is None:
            self._evaluator = sealapi.Evaluator(self.context)
        if not seeds:
            zeros = np.zeros(self.poly_modulus_degree, dtype=np.uint64)
            cipher = self._load_ciphertext(self.ciphertext_bytes(c0, zeros))
        else:
            try:
                (prng_type, seed), *rest = seeds
                cipher = self._load_ciphertext(self.seeded_bytes(prng_type, seed, c0))
                if rest:
                    zeros = np.zeros(self.poly_modulus_degree, dtype=np.uint64)
                    for prng_type, seed in rest:
                        other = self._load_ciphertext(self.seeded_bytes(prng_type, seed, zeros))
                        self._evaluator.add_inplace(cipher, other)
            except RuntimeError as exc:  # SEAL's refusal of a bad seed record
                raise ValueError(f"SEAL refuses the ciphertext: {exc}") from exc
        plain = sealapi.Plaintext()
        self._decryptor.decrypt(cipher, plain)
        return self._decode(plain)

    # --- packing ----------------------------------------------------------------------------

    @property
    def coeff_bits(self) -> int:
        """Bit width of a coefficient at the last level (one modulus there)."""
        return self.last_moduli[0].bit_length()

    @property
    def packed_seeded_size(self) -> int:
        """Bytes of one :func:`pack_seeded` ciphertext: prng type, seed, packed polynomial."""
        return 1 + PRNG_SEED_BYTES + (self.poly_modulus_degree * self.coeff_bits + 7) // 8

    def _members(self) -> bytes:
        return CT_MEMBERS.pack(
            *self.last_parms_id, 1, 2, self.poly_modulus_degree, 1, self.params.scale, 1
        )

    def _sub_header(self, size: int) -> bytes:
        major, minor = self.seal_version
        return SEAL_HEADER.pack(SEAL_MAGIC, SEAL_HEADER_SIZE, major, minor, COMPR_NONE, 0, size)

    def pack_seeded(
        self, seal_bytes: bytes, mask: npt.NDArray[np.uint64] | None = None
    ) -> bytes | None:
        """Re-encode a seeded last-level ciphertext compactly, or None if it is not one we can
        rebuild exactly (the caller then sends ``seal_bytes`` as they are). ``mask``
        (``poly_modulus_degree`` values in ``[0, q0)``) is added mod q0 to the first polynomial
        on the way: what :meth:`add_to_c0` then packing gives, parsed once."""
        if len(self.last_moduli) != 1:
            return None
        body = _seal_body(seal_bytes)
        if body is None:
            return None
        n = self.poly_modulus_degree
        members = self._members()
        data_size = SEAL_HEADER_SIZE + 8 + n * 8
        prefix = members + self._sub_header(data_size) + struct.pack("<Q", n)
        seed_header = self._sub_header(SEAL_HEADER_SIZE + 1 + PRNG_SEED_BYTES)
        expected_len = len(prefix) + n * 8 + len(seed_header) + 1 + PRNG_SEED_BYTES
        if len(body) != expected_len or body[: len(prefix)] != prefix:
            return None
        tail = body[len(prefix) + n * 8 :]
        if tail[:SEAL_HEADER_SIZE] != seed_header:
            return None
        prng_type = tail[SEAL_HEADER_SIZE]
        seed = tail[SEAL_HEADER_SIZE + 1 :]
        coeffs = np.frombuffer(body, dtype="<u8", count=n, offset=len(prefix))
        q = self.last_moduli[0]
        if int(coeffs.max()) >= q:
            return None
        if mask is not None:
            if mask.dtype != np.uint64 or mask.shape != (n,) or int(mask.max()) >= q:
                raise ValueError(f"a mask is {n} uint64 values below q0")
            coeffs = coeffs + mask  # both < q < 2^63: no overflow
            np.minimum(coeffs, coeffs - np.uint64(q), out=coeffs)  # the wrapped one is larger
        return bytes([prng_type]) + bytes(seed) + _pack_bits(coeffs, self.coeff_bits)

    @property
    def packed_poly_size(self) -> int:
        """Bytes of one polynomial's coefficients packed at :attr:`coeff_bits` each."""
        return (self.poly_modulus_degree * self.coeff_bits + 7) // 8

    def pack_poly(self, coeffs: npt.NDArray[np.uint64]) -> bytes:
        """``poly_modulus_degree`` coefficients (each < 2**coeff_bits), bit-packed."""
        return _pack_bits(coeffs, self.coeff_bits)

    def unpack_poly(self, data: bytes | memoryview) -> npt.NDArray[np.uint64]:
        """The coefficients of :meth:`pack_poly`'s bytes (not checked against q0)."""
        if len(data) != self.packed_poly_size:
            raise ValueError("packed polynomial has the wrong length")
        return _unpack_bits(data, self.poly_modulus_degree, self.coeff_bits)

    def unpack_seeded(self, packed: bytes | memoryview) -> bytes:
        """The SEAL bytes (uncompressed) of a :func:`pack_seeded` ciphertext."""
        if len(packed) != self.packed_seeded_size:
            raise ValueError("packed ciphertext has the wrong length")
        coeffs = self.unpack_poly(packed[1 + PRNG_SEED_BYTES :])
        return self.seeded_bytes(packed[0], bytes(packed[1 : 1 + PRNG_SEED_BYTES]), coeffs)

    def seeded_bytes(self, prng_type: int, seed: bytes, c0: npt.NDArray[np.uint64]) -> bytes:
        """SEAL's (uncompressed) serialization of the seeded last-level ciphertext whose first
        polynomial is ``c0`` and whose second SEAL generates from ``seed``."""
        n = self.poly_modulus_degree
        if len(seed) != PRNG_SEED_BYTES or c0.shape != (n,):
            raise ValueError("a seed is 64 bytes, a polynomial poly_modulus_degree values")
        body = b"".join(
            (
                self._members(),
                self._sub_header(SEAL_HEADER_SIZE + 8 + n * 8),
                struct.pack("<Q", n),
                c0.astype("<u8", copy=False).tobytes(),
                self._sub_header(SEAL_HEADER_SIZE + 1 + PRNG_SEED_BYTES),
                bytes([prng_type]),
                seed,
            )
        )
        return self._sub_header(SEAL_HEADER_SIZE + len(body)) + body

    def ciphertext_bytes(self, c0: npt.NDArray[np.uint64], c1: npt.NDArray[np.uint64]) -> bytes:
        """SEAL's (uncompressed) serialization of the last-level ciphertext ``(c0, c1)``."""
        n = self.poly_modulus_degree
        if c0.shape != (n,) or c1.shape != (n,):
            raise ValueError("a polynomial is poly_modulus_degree values")
        body = b"".join(
            (
                self._members(),
                self._sub_header(SEAL_HEADER_SIZE + 8 + 2 * n * 8),
                struct.pack("<Q", 2 * n),
                c0.astype("<u8", copy=False).tobytes(),
                c1.astype("<u8", copy=False).tobytes(),
            )
        )
        return self._sub_header(SEAL_HEADER_SIZE + len(body)) + body

    def add_to_c0(self, seal_bytes: bytes, mask: npt.NDArray[np.uint64]) -> bytes:
        """SEAL bytes (uncompressed) of the last-level ciphertext ``seal_bytes`` with ``mask``
        (``poly_modulus_degree`` values in ``[0, q)``) added mod ``q`` to its first polynomial.

        Takes a seeded ciphertext (second polynomial stored as its seed: the seed is kept, so
        :meth:`pack_seeded` still packs the result) or a full two-polynomial one (public-key
        encryption, TenSEAL's serialized sums), uncompressed or zstd with raw/RLE blocks.
        Raises ``ValueError`` for anything else.
        """
        if len(self.last_moduli) != 1:
            raise ValueError("masking needs a single modulus at the last level")
        q = self.last_moduli[0]
        n = self.poly_modulus_degree
        mask = np.asarray(mask)
        if mask.dtype != np.uint64 or mask.shape != (n,):
            raise ValueError(f"a mask is {n} uint64 values")
        body = _seal_body(seal_bytes)
        if body is None:
            raise ValueError("not a SEAL ciphertext in a layout this version can mask")
        if len(body) < CT_MEMBERS.size + SEAL_HEADER_SIZE + 8:
            raise ValueError("SEAL ciphertext is truncated")
        members = CT_MEMBERS.unpack_from(body, 0)
        parms_id = list(members[:4])
        is_ntt, size, degree, moduli = members[4:8]
        if parms_id != self.last_parms_id or not is_ntt or size != 2 or degree != n or moduli != 1:
            raise ValueError("not a two-part last-level NTT-form ciphertext of this context")
        pos = CT_MEMBERS.size
        try:
            _ma, _mi, compr, sub_size, hsize = seal_header(body[pos:])
        except ValueError as exc:
            raise ValueError(f"ciphertext data: {exc}") from exc
        if compr != COMPR_NONE:
            raise ValueError("ciphertext data is compressed inside the ciphertext")
        pos += hsize
        (count,) = struct.unpack_from("<Q", body, pos)
        pos += 8
        if count not in (n, 2 * n) or sub_size != hsize + 8 + 8 * count:
            raise ValueError("ciphertext data has an unexpected size")
        if pos + 8 * count > len(body):
            raise ValueError("ciphertext data runs past the end")
        out = bytearray(body)
        c0 = np.frombuffer(out, dtype="<u8", count=n, offset=pos)
        if int(c0.max()) >= q or int(mask.max()) >= q:
            raise ValueError("coefficients are not reduced mod q")
        total = c0 + mask
        np.subtract(total, np.uint64(q), out=total, where=total >= np.uint64(q))
        out[pos : pos + 8 * n] = total.astype("<u8", copy=False).tobytes()
        major, minor, _c, _s, _h = seal_header(seal_bytes)
        header = SEAL_HEADER.pack(
            SEAL_MAGIC, SEAL_HEADER_SIZE, major, minor, COMPR_NONE, 0, SEAL_HEADER_SIZE + len(out)
        )
        return header + bytes(out)


def _seal_body(seal_bytes: bytes) -> memoryview | None:
    """The uncompressed payload of a SEAL object: as is, or from a zstd frame whose blocks are
    all raw or RLE (what zstd emits for incompressible data). None for anything else."""
    try:
        _major, _minor, compr, size, hsize = seal_header(seal_bytes)
    except ValueError:
        return None
    if size != len(seal_bytes):
        return None
    payload = memoryview(seal_bytes)[hsize:]
    if compr == COMPR_NONE:
        return payload
    if compr != COMPR_ZSTD:
        return None
    return _zstd_stored_blocks(payload)


def _zstd_stored_blocks(frame: memoryview) -> memoryview | None:
    # RFC 8878 section 3.1.1: frame header, then blocks with 3-byte headers. We decode only
    # raw (type 0) and RLE (type 1) blocks; a compressed block means "cannot pack".
    if bytes(frame[:4]) != ZSTD_MAGIC or len(frame) < 6:
        return None
    descriptor = frame[4]
    fcs_flag = descriptor >> 6
    single_segment = (descriptor >> 5) & 1
    has_checksum = (descriptor >> 2) & 1
    dict_id_size = (0, 1, 2, 4)[descriptor & 3]
    if descriptor & 0x08:  # reserved bit
        return None
    pos = 5 + (0 if single_segment else 1) + dict_id_size
    fcs_size = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
    content_size: int | None = None
    if fcs_size:
        content_size = int.from_bytes(frame[pos : pos + fcs_size], "little")
        if fcs_size == 2:
            content_size += 256
        pos += fcs_size
    pieces: list[memoryview | bytes] = []
    while True:
        if pos + 3 > len(frame):
            return None
        block_header = int.from_bytes(frame[pos : pos + 3], "little")
        pos += 3
        last = block_header & 1
        block_type = (block_header >> 1) & 3
        block_size = block_header >> 3
        if block_type == 0:
            if pos + block_size > len(frame):
                return None
            pieces.append(frame[pos : pos + block_size])
            pos += block_size
        elif block_type == 1:
            if pos + 1 > len(frame):
                return None
            pieces.append(bytes(frame[pos : pos + 1]) * block_size)
            pos += 1
        else:
            return None
        if last:
            break
    pos += 4 if has_checksum else 0
    if pos != len(frame):
        return None
    body = pieces[0] if len(pieces) == 1 else memoryview(b"".join(bytes(p) for p in pieces))
    if not isinstance(body, memoryview):
        body = memoryview(body)
    if content_size is not None and len(body) != content_size:
        return None
    return body


def _pack_bits(values: npt.NDArray[np.uint64], width: int) -> bytes:
    """Little-endian bit packing of values < 2**width, ``width`` bits each."""
    if width == 60 and values.size % 2 == 0:
        # two values a, b make 15 bytes: the 64-bit word a | b << 60 at the pair's first byte,
        # and the word (a | b << 60) >> 56 (bits 56..119) at its seventh: both written in
        # place into one buffer (the shared byte gets the same bits from each)
        pairs = values.astype(np.uint64, copy=False).reshape(-1, 2)
        m = pairs.shape[0]
        buf = np.empty(15 * m + 1, dtype=np.uint8)
        high = np.ndarray((m,), dtype="<u8", buffer=buf, offset=7, strides=(15,))
        low = np.ndarray((m,), dtype="<u8", buffer=buf, offset=0, strides=(15,))
        a, b = pairs[:, 0], pairs[:, 1]
        np.right_shift(a, np.uint64(56), out=high)
        high |= b << np.uint64(4)
        np.left_shift(b, np.uint64(60), out=low)
        low |= a
        return buf[: 15 * m].tobytes()
    as_bytes = values.astype("<u8", copy=False).view(np.uint8).reshape(-1, 8)
    bits = np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :width]
    return np.packbits(bits.reshape(-1), bitorder="little").tobytes()


def _unpack_bits(data: bytes | memoryview, count: int, width: int) -> npt.NDArray[np.uint64]:
    raw = np.frombuffer(data, dtype=np.uint8)
    if width == 60 and count % 2 == 0 and raw.size == count * 15 // 2:
        # each pair's 15 bytes read as two overlapping little-endian words, in place: bits
        # 0..63 at its first byte (a is the low 60) and bits 56..119 at its seventh (b is that
        # word >> 4); the last pair's second word ends at the buffer's last byte
        m = count // 2
        first = np.ndarray((m,), dtype="<u8", buffer=raw, offset=0, strides=(15,))
        second = np.ndarray((m,), dtype="<u8", buffer=raw, offset=7, strides=(15,))
        out = np.empty((m, 2), dtype=np.uint64)
        np.bitwise_and(first, np.uint64((1 << 60) - 1), out=out[:, 0])
        np.right_shift(second, np.uint64(4), out=out[:, 1])
        return out.reshape(count)
    bits = np.unpackbits(raw, bitorder="little", count=count * width).reshape(count, width)
    full = np.zeros((count, 64), dtype=np.uint8)
    full[:, :width] = bits
    return np.packbits(full, axis=1, bitorder="little").view("<u8").reshape(count)
