"""Named CKKS parameter sets, each with a small integer id that the ledger records.

Peers never negotiate CKKS parameters: a round names a parameter-set id, every blob and
context carries it, and this registry is the one place that says what it means. Adding a set
is adding an entry (never changing one: ids already on a ledger must keep their meaning).

Why id 1 is N=8192, coefficient moduli [60, 40, 60], scale 2^40 (see docs/crypto.md):

- 128-bit security for N=8192 allows up to 218 bits of modulus; 160 is well within it.
- Updates are only added, never multiplied, so one data level suffices: ciphertexts travel at
  the *last* level (modulus q0, 60 bits), which halves their size, and 60 - 40 leaves 19 bits
  of integer headroom for the weighted sum (|sum| < 2^19 before decoding wraps around).
- The scale 2^40 keeps the CKKS noise around 1e-9 per value, far under the 1e-6 budget.

Id 2 is the same ring and moduli with *complex packing*: each of the N/2 slots holds a complex
number, two update values (real and imaginary part), so one ciphertext carries N = 8192 values
instead of 4096. Encryption, decryption, masks, merge and bytes all go by ciphertexts, so every
one of them halves per parameter (~7.5 bytes per value on the wire). The decodable range is the
same: a slot's modulus is at most sqrt(2) times its parts' largest, and the plaintext's
coefficients are bounded by the largest slot modulus, so a sum whose parts stay under
``max_abs_sum`` = 2^18 keeps its coefficients under sqrt(2) * 2^58 < q0 / 2 ~ 2^59.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from swarm.errors import UnknownParameterSetError


@dataclass(frozen=True)
class CkksParams:
    """One CKKS parameter set: what TenSEAL needs, plus the value range it can carry."""

    name: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    scale_bits: int
    #: most updates one aggregate may sum; bounds each update's values (see ``max_abs_value``)
    max_contributors: int
    #: two values per slot (real and imaginary part) instead of one
    complex_packing: bool = False

    @property
    def scale(self) -> float:
        return float(2**self.scale_bits)

    @property
    def slots(self) -> int:
        """Values one ciphertext holds (CKKS packs N/2 of them)."""
        return self.poly_modulus_degree // 2

    @property
    def values_per_ciphertext(self) -> int:
        """Update values one ciphertext carries: a slot each, or two with complex packing."""
        return self.slots * 2 if self.complex_packing else self.slots

    @property
    def last_level_bits(self) -> int:
        """Bits of the modulus left at the last level, where ciphertexts travel."""
        return self.coeff_mod_bit_sizes[0]

    @property
    def max_abs_sum(self) -> float:
        """Largest |value| a decrypted sum may reach and still decode correctly.

        A decoded value v sits in the plaintext as v * scale and must stay under q0 / 2; one
        more bit of margin absorbs rounding and noise.
        """
        return float(2 ** (self.last_level_bits - self.scale_bits - 2))

    @property
    def max_abs_value(self) -> float:
        """Largest |weight * value| one update may hold, so that the sum of
        ``max_contributors`` of them stays under ``max_abs_sum``."""
        return self.max_abs_sum / self.max_contributors

    def chunk_count(self, param_count: int) -> int:
        """Ciphertexts needed for ``param_count`` values."""
        return math.ceil(param_count / self.values_per_ciphertext)


#: The registry. Never change an entry once a ledger has used its id: add a new one.
PARAMETER_SETS: dict[int, CkksParams] = {
    1: CkksParams(
        name="ckks-n8192-q60.40.60-s40",
        poly_modulus_degree=8192,
        coeff_mod_bit_sizes=(60, 40, 60),
        scale_bits=40,
        max_contributors=64,
    ),
    2: CkksParams(
        name="ckks-n8192-q60.40.60-s40-complex",
        poly_modulus_degree=8192,
        coeff_mod_bit_sizes=(60, 40, 60),
        scale_bits=40,
        max_contributors=64,
        complex_packing=True,
    ),
}

#: what new consortia get: complex packing, half the ciphertexts of id 1 for the same model
DEFAULT_PARAMS_ID = 2


def get_params(params_id: int) -> CkksParams:
    """The parameter set with this id, or :class:`UnknownParameterSetError`."""
    try:
        return PARAMETER_SETS[params_id]
    except KeyError:
        raise UnknownParameterSetError(params_id) from None
