"""Windows that follow the model: from a task's parameter count, how many bytes each step of a
round moves and the least seconds each of its windows needs (issue 14).

A consortium should never have to guess its windows: a ResNet-18 (11.2M parameters) moves
about 84 MB per update (168 MB under CKKS parameter set 1), and a commit window that suits the
36-parameter heart model lapses every one of its rounds. Everything here is arithmetic on the
parameter count, the consortium's CKKS parameter set (how many values one ciphertext carries:
swarm.crypto.params), the number of hospitals and a few throughput figures
(:class:`Throughput`); no I/O, no clock, so the admin CLI (``swarm admin deploy`` /
``set-params``), the local network (``localnet.network``) and a starting peer all derive the
same numbers, and the tests pin them.

What each window must hold (docs/protocol.md; swarm.peer.decide):

- **key**: the steward makes the round key and posts its hash (one transaction).
- **commit**: from the round key to the commit deadline, a participant fetches the round key,
  finishes training, encrypts, commits; and its update must be *at the merge peer* by the
  deadline, since the merge peer merges what it holds once the window closes. The merge
  peer's link takes every participant's update: the fan-in, not one push, is what grows.
- **merge**: the merge peer adds the updates (its own is a plaintext it adds itself: no
  encryption, no transfer) and submits the aggregate's hash.
- **ack**: every key holder downloads the aggregate from the merge peer (its link again, once
  per holder), decrypts it (work that grows with the contributors) and acknowledges.
- **join** stays a policy choice (how long to wait for hospitals), not derived.

Each window's least value is :data:`SAFETY_FACTOR` times the estimate: the throughput figures
are single runs on a shared 2-core machine (docs/benchmarks.md: "read them as orders of
magnitude"), and a window that lapses costs a round while a long one costs only the time of a
failure. Two estimates come out of the same arithmetic:

- the **derived** window (:class:`Throughput` as it is): the model's bytes and CKKS work plus
  allowances for training and the chain's transactions; what a window left unset becomes
  when it is more than the documented default;
- the **least** window (:data:`MODEL_ONLY`, :func:`check_fits`): the model's bytes and CKKS
  work alone, with training only where its time is given. Shorter cannot work whatever the
  chain and the training: ``swarm admin deploy`` refuses it, a peer warns of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swarm.ledger import Params

#: bytes a seeded update adds per ciphertext to the packed first polynomial: its record header
#: (encoding byte and u32 length) and its seed record (PRNG type and 64-byte seed); docs/crypto.md,
#: "Payloads". With the polynomial (N 60-bit coefficients: 61,440 bytes for sets 1 and 2) that is
#: 61,510 bytes per ciphertext: 15.02 B/param for set 1 (4096 values per ciphertext), 7.51 for
#: set 2 (8192); measured 15.07 at 1M params, 15.02 at 10M (docs/benchmarks.md, "CKKS update
#: codec")
SEEDED_RECORD_BYTES = 70
#: bytes the aggregate adds per contributor per ciphertext (its seed record: PRNG type and seed)
AGGREGATE_BYTES_PER_CONTRIBUTOR = 65
#: bytes a participant fetches from the key steward: the round's public CKKS context and its
#: sealed secret key (about 363 KB for parameter sets 1 and 2: the same ring)
ROUND_KEY_BYTES = 363_000
#: each window's least value is this many times the estimate (see the module's docstring)
SAFETY_FACTOR = 2.0
#: the windows derived here (join is a policy choice)
DERIVED = ("key_window", "commit_window", "merge_window", "ack_window")


@dataclass(frozen=True)
class Throughput:
    """How fast one hospital moves bytes and does CKKS, and the fixed allowances of a round.

    The defaults are a conservative hospital: a 10 MB/s (80 Mbit/s) link, which limits before
    the peer network does (swarm.p2p carries 32-37 MB/s on loopback on this 2-core machine),
    and the CKKS rates measured on this 2-core machine (docs/benchmarks.md, "CKKS update
    codec": seeded encryption 1.73 M params/s per core at 1M params, 2.11 M at 10M; the sum of
    ten updates 5.13 M and 5.77 M params/s). Decryption is the new path's estimate, 1 to 3 M
    params/s per core for each contributor in the sum: the low end."""

    #: one hospital's link, in MB/s (10^6 bytes); the merge peer's carries every update
    link_mb_s: float = 10.0
    #: seeded CKKS encryption, parameters per second per core
    encrypt_per_s: float = 1.7e6
    #: adding one update into the sum, parameters per second per core
    add_per_s: float = 5.0e6
    #: decryption, parameters per second per core per contributor in the sum
    decrypt_per_s: float = 1.0e6
    #: cores one hospital's CKKS work gets (TenSEAL runs it on one thread)
    cores: float = 1.0
    #: local training still to do once the round key is out, seconds (the slowest hospital's:
    #: training starts while the round is joining, but the last to join starts at its close)
    train_s: float = 30.0
    #: one transaction from sending to a block that the other peers see, seconds
    tx_s: float = 15.0
    #: the key steward's making of a round key (75 ms measured: docs/benchmarks.md, "Time per
    #: round"), seconds
    keygen_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("link_mb_s", "encrypt_per_s", "add_per_s", "decrypt_per_s", "cores"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0")
        for name in ("train_s", "tx_s", "keygen_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be 0 or more")

    def transfer_s(self, size: float) -> float:
        """Seconds to carry ``size`` bytes over the link."""
        return size / (self.link_mb_s * 1e6)


#: the least a window can be (:func:`check_fits`): only what grows with the model, its bytes
#: and its CKKS work, on the default link and cores. Training time and the chain's pace do not
#: grow with the model and are guesses: they go into the windows an admin leaves to be derived
#: (:class:`Throughput`'s allowances), never into a refusal unless given (a 36-parameter model
#: with 10 s windows on a chain with 3 s blocks is a consortium that works)
MODEL_ONLY = Throughput(train_s=0.0, tx_s=0.0, keygen_s=0.0)


@dataclass(frozen=True)
class RoundBytes:
    """What one round moves, in bytes."""

    update: int  # one participant's encrypted update, pushed to the merge peer
    aggregate: int  # the sum, which every key holder downloads from the merge peer
    round_key: int  # the public context and a sealed secret key, from the steward


@dataclass(frozen=True)
class Ciphertext:
    """What sizing needs of a CKKS parameter set (swarm.crypto.params): how many update values
    one ciphertext carries, and the bytes of its packed polynomial and of a blob's header."""

    values: int  # CkksParams.values_per_ciphertext
    poly_bytes: int  # one polynomial at the last level: N coefficients of q0's bits
    header_bytes: int  # a blob's fixed header (swarm.crypto.blob.HEADER_SIZE)

    @property
    def update_bytes(self) -> int:
        """A seeded update's bytes per ciphertext (the plain one's are ``poly_bytes``)."""
        return self.poly_bytes + SEEDED_RECORD_BYTES

    def aggregate_bytes(self, contributors: int) -> int:
        """The seeded aggregate's bytes per ciphertext: the summed polynomial and a seed
        record per contributor."""
        return self.poly_bytes + AGGREGATE_BYTES_PER_CONTRIBUTOR * contributors


def ciphertext(params_id: int | None = None) -> Ciphertext:
    """The ciphertext of CKKS parameter set ``params_id`` (None: the default set,
    swarm.crypto.params.DEFAULT_PARAMS_ID), from swarm.crypto's registry: imported here, not at
    the top, since importing swarm.crypto loads TenSEAL and torch, which the admin CLI and the
    local network do not need until they size a round.
    :class:`swarm.errors.UnknownParameterSetError` for an unknown id."""
    from swarm.crypto.blob import HEADER_SIZE
    from swarm.crypto.params import DEFAULT_PARAMS_ID, get_params

    p = get_params(DEFAULT_PARAMS_ID if params_id is None else params_id)
    return Ciphertext(
        values=p.values_per_ciphertext,
        poly_bytes=p.poly_modulus_degree * p.last_level_bits // 8,
        header_bytes=HEADER_SIZE,
    )


def chunks(param_count: int, params_id: int | None = None) -> int:
    """Ciphertexts an update of ``param_count`` values needs under CKKS parameter set
    ``params_id`` (None: the default set)."""
    if param_count <= 0:
        raise ValueError("param_count must be positive")
    return math.ceil(param_count / ciphertext(params_id).values)


def round_bytes(param_count: int, contributors: int, params_id: int | None = None) -> RoundBytes:
    """The bytes of a round's update, aggregate and round key for this model under CKKS
    parameter set ``params_id`` (None: the default set). A ciphertext carries its set's values
    whatever the model's size (4096 for set 1, 8192 for set 2), so a 36-parameter model still
    moves one full ciphertext (about 62 kB); set 2 moves half the ciphertexts of set 1 for a
    big model. The update is a seeded one; the aggregate counts a seed record for every
    contributor (the merge peer's own plain update has none: one record to spare)."""
    c = ciphertext(params_id)
    n = chunks(param_count, params_id)
    return RoundBytes(
        update=c.header_bytes + n * c.update_bytes,
        aggregate=c.header_bytes + 4 + n * c.aggregate_bytes(contributors),
        round_key=ROUND_KEY_BYTES,
    )


@dataclass(frozen=True)
class Part:
    """One piece of a step's estimate: what it is, and its seconds."""

    label: str
    seconds: float

    def describe(self) -> str:
        s = self.seconds
        return f"{self.label} ~{s:.0f} s" if s >= 1 or s == 0 else f"{self.label} <1 s"


@dataclass(frozen=True)
class Step:
    """What one window must hold: the estimate's parts and the least window they make."""

    window: str  # the Params field, e.g. "commit_window"
    parts: tuple[Part, ...]
    safety: float

    @property
    def need_s(self) -> float:
        """The estimate, in seconds (no margin)."""
        return sum(p.seconds for p in self.parts)

    @property
    def least_s(self) -> int:
        """The least window, in whole seconds: the estimate times the safety factor."""
        return math.ceil(self.need_s * self.safety - 1e-9)

    def explain(self) -> str:
        """``2 x 203 s: training allowance 30 s, encrypt ... ~7 s, ...``"""
        parts = ", ".join(p.describe() for p in self.parts if p.seconds > 0) or "nothing"
        return f"{self.safety:g} x {self.need_s:.0f} s: {parts}"


@dataclass(frozen=True)
class Sizing:
    """A round of one model among ``hospitals`` hospitals: its bytes and each derived window's
    estimate (:func:`size_round`)."""

    param_count: int
    hospitals: int
    throughput: Throughput
    bytes: RoundBytes
    steps: Mapping[str, Step]

    def least(self, window: str) -> int:
        """The least value of ``window`` (a Params field), in seconds."""
        return self.steps[window].least_s

    def windows(self) -> dict[str, int]:
        """Each derived window's least value, by Params field."""
        return {name: step.least_s for name, step in self.steps.items()}


def _mb(size: float) -> str:
    if size >= 10e6:
        return f"{size / 1e6:.0f} MB"
    if size >= 1e5:
        return f"{size / 1e6:.1f} MB"
    return f"{size / 1e3:.0f} kB"


def _rate(per_s: float) -> str:
    return f"{per_s / 1e6:g} M params/s"


def size_round(
    param_count: int,
    hospitals: int,
    throughput: Throughput | None = None,
    *,
    expected: int | None = None,
    safety: float = SAFETY_FACTOR,
    params_id: int | None = None,
) -> Sizing:
    """The bytes and least windows of a round of a ``param_count``-parameter model.

    ``hospitals`` is the fewest that take part (min-peers), ``expected`` how many usually do;
    the larger counts, since the merge peer's link carries every update and every key holder's
    download, and decryption grows with the contributors. ``params_id``: the consortium's CKKS
    parameter set (``ckksParamsId``; None: the default set), which sets the bytes."""
    if hospitals < 1:
        raise ValueError("hospitals must be at least 1")
    if safety < 1:
        raise ValueError("the safety factor must be at least 1")
    t = throughput or Throughput()
    n = max(hospitals, expected or 0)
    others = max(n - 1, 0)
    sizes = round_bytes(param_count, n, params_id)
    p = param_count
    tx = Part("a transaction", t.tx_s)
    steps = {
        "key_window": (Part("make the round key", t.keygen_s), tx),
        "commit_window": (
            Part(
                f"round key to {others} hospitals ({others} x {_mb(sizes.round_key)} at "
                f"{t.link_mb_s:g} MB/s)",
                t.transfer_s(others * sizes.round_key),
            ),
            Part("training allowance", t.train_s),
            Part(f"encrypt at {_rate(t.encrypt_per_s)}", p / (t.encrypt_per_s * t.cores)),
            Part("commit transaction", t.tx_s),
            Part(
                f"{others} updates of {_mb(sizes.update)} into the merge peer at "
                f"{t.link_mb_s:g} MB/s",
                t.transfer_s(others * sizes.update),
            ),
        ),
        "merge_window": (
            Part(f"add {n} updates at {_rate(t.add_per_s)}", n * p / (t.add_per_s * t.cores)),
            Part("aggregate transaction", t.tx_s),
        ),
        "ack_window": (
            Part(
                f"{others} key holders fetch the {_mb(sizes.aggregate)} aggregate at "
                f"{t.link_mb_s:g} MB/s",
                t.transfer_s(others * sizes.aggregate),
            ),
            Part(
                f"decrypt a sum of {n} at {_rate(t.decrypt_per_s)} per contributor",
                n * p / (t.decrypt_per_s * t.cores),
            ),
            Part("acknowledge transaction", t.tx_s),
        ),
    }
    return Sizing(
        param_count=p,
        hospitals=n,
        throughput=t,
        bytes=sizes,
        steps=MappingProxyType({name: Step(name, parts, safety) for name, parts in steps.items()}),
    )


def option(window: str) -> str:
    """The command-line option of a Params field: ``commit_window`` -> ``--commit-window``."""
    return "--" + window.replace("_", "-")


def too_short(sizing: Sizing, window: str, value: int) -> str | None:
    """One line when ``value`` seconds are too short for ``window``, else None."""
    step = sizing.steps[window]
    if value >= step.least_s:
        return None
    return (
        f"{option(window)} {value} is too short for {sizing.param_count:,} parameters and "
        f"{sizing.hospitals} hospitals: it needs >= {step.least_s} s ({step.explain()})"
    )


def check_fits(
    params: Params,
    param_count: int,
    throughput: Throughput = MODEL_ONLY,
    *,
    expected: int | None = None,
    safety: float = SAFETY_FACTOR,
) -> list[str]:
    """One line per window of ``params`` that is too short for this model, naming the option,
    the seconds it needs and the estimate's parts; empty when every window fits. The hospitals
    are ``params.min_peers``, or ``expected`` if more; the bytes those of the CKKS parameter set
    ``params.ckks_params_id``. By default only what grows with the model counts
    (:data:`MODEL_ONLY`); a throughput with ``train_s`` counts training too."""
    sizing = size_round(
        param_count,
        params.min_peers,
        throughput,
        expected=expected,
        safety=safety,
        params_id=params.ckks_params_id,
    )
    lines = [too_short(sizing, name, int(getattr(params, name))) for name in DERIVED]
    return [line for line in lines if line is not None]


def fit_warning(
    params: Params,
    param_count: int,
    checked: Params | None,
    *,
    hospitals: int | None = None,
    throughput: Throughput = MODEL_ONLY,
) -> str | None:
    """What a peer logs, once, before its rounds start: one line when a window in force is too
    short for this model (:func:`check_fits`, the very check with which ``swarm admin deploy``
    refuses a window), None when every window fits or when ``params`` are the ones already
    ``checked``: the warning comes at start-up, and again only when the ledger's parameters
    change, not every round. ``hospitals``: how many take part, if more than min-peers."""
    if checked is not None and checked == params:
        return None
    problems = check_fits(params, param_count, throughput, expected=hospitals)
    if not problems:
        return None
    return (
        "the consortium's windows are too short for this task's model, its rounds may lapse: "
        + "; ".join(problems)
        + " (an admin can widen them: swarm admin set-params, docs/admin-guide.md)"
    )


__all__ = [
    "DERIVED",
    "MODEL_ONLY",
    "SAFETY_FACTOR",
    "Ciphertext",
    "Part",
    "RoundBytes",
    "Sizing",
    "Step",
    "Throughput",
    "check_fits",
    "chunks",
    "ciphertext",
    "fit_warning",
    "option",
    "round_bytes",
    "size_round",
    "too_short",
]
