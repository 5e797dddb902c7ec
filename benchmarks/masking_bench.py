"""What masked aggregation (issue 12) costs on top of plain CKKS aggregation, per round.

For each size (``--sizes``, default 36 and 11,200,000 parameters) a child process runs whole
rounds of ``--participants`` (default 4) participants, every one contributing (no dropout), twice
over the same updates: unmasked and masked. It times, in CPU seconds of the one process
(TenSEAL contexts with ``n_threads=1``, so one core, as in ``crypto_bench.py``):

- a participant (mean over the participants): the unmasked seeded encryption
  (``SecretRoundContext``) of its weighted update; for the masked round also deriving its mask
  secrets (``mask_secrets``: ``n-1`` X25519 exchanges + HKDF, a fresh self seed), Shamir-splitting
  them and sealing the shares to every holder (``split`` + ``seal_shares``), the masked
  encryption, and, as a holder, opening the ``n`` shares blobs it receives (``open_shares``) and
  building its reveal once the contributors are known (``build_reveal``);
- the merge peer: adding the ``n`` update blobs (``Aggregator.add``) and writing the aggregate
  (``Aggregator.finish``); masked blobs are the same kind and size, so this should not change;
- a key holder: verifying the ``n`` reveals and rebuilding the secrets (``collect`` +
  ``recovered`` + ``correction_terms``), then expanding the correction, subtracting it and
  decrypting (``decrypt_aggregate(unmask=...)``); the expansion alone is also timed separately.

Accuracy: against the float64 weighted sum of the float32 updates (values ~ N(0, 1e-2), weights
50, 150, ...), the max abs error of the unmasked and of the masked aggregate (both rounded to
``ROUNDING_GRID`` by the codec). The masked blobs are encrypted afresh (different encryption
noise), so their decrypted sum may differ from the unmasked one in a few grid cells; a third
aggregate is built from the *unmasked ciphertexts* with the masks added by
``codec.mask_update_blob``: unmasked, it must decrypt to exactly the same bits.

Keys are real: an :class:`~swarm.identity.Identity` per participant (its X25519 encryption key
pair), a round context from :func:`~swarm.crypto.generate_round_keys`, threshold
``threshold_for(n, 66)`` (the default ``maskThresholdPct``). Peak RSS is the child's lifetime
``getrusage`` high-water mark (imports included).

Run:  .venv/bin/python benchmarks/masking_bench.py [--participants 4] [--sizes "36 11200000"]
      [--rounds N] [--no-write]
It prints markdown tables and writes them into docs/benchmarks.md between the
``masking-bench`` markers (benchmarks/report.py).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import write_section

ROOT = Path(__file__).resolve().parents[1]
ROUND = 1
THRESHOLD_PCT = 66
CHAIN_ID = 31337
CONTRACT = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")

#: (key, role, label) of each timed step, in table order
STEPS = (
    ("secrets", "participant", "mask secrets (X25519 + HKDF, n-1 pairwise seeds)"),
    ("split_seal", "participant", "Shamir split + seal shares to all holders"),
    ("encrypt", "participant", "encrypt update (seeded, secret context)"),
    ("open_shares", "participant", "open received shares blobs (as holder)"),
    ("reveal", "participant", "build reveal (as holder)"),
    ("aggregate", "merge peer", "aggregate n updates + write aggregate"),
    ("collect", "key holder", "collect reveals + reconstruct + correction terms"),
    ("decrypt", "key holder", "(expand correction + unmask +) decrypt"),
)
ROLES = ("participant", "merge peer", "key holder")


def weight(i: int) -> float:
    return float(50 + 100 * i)


def update(size: int, i: int, round_index: int) -> npt.NDArray[np.float32]:
    # drawn in float32 directly, as crypto_bench does, so no float64 copy of 11.2M values
    rng = np.random.default_rng(1000 * (round_index + 1) + i)
    values = rng.standard_normal(size, dtype=np.float32)
    values *= np.float32(1e-2)
    return values


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# --- child: one size ----------------------------------------------------------------------


def one_round(size: int, n: int, round_index: int, keys: dict[str, Any]) -> dict[str, Any]:
    """One unmasked and one masked round over the same updates; CPU seconds and bytes."""
    from swarm.crypto import (
        Aggregator,
        MaskContext,
        correction_terms,
        decrypt_aggregate,
        encrypt_vector,
        mask_secrets,
        mask_terms,
        new_self_seed,
        threshold_for,
    )
    from swarm.crypto.codec import mask_update_blob
    from swarm.crypto.masking import MaskExpander
    from swarm.crypto.shares import (
        ShareSetup,
        build_reveal,
        collect,
        open_shares,
        seal_shares,
        shares_hash,
        split,
    )

    ctx = keys["ctx"]
    layout = keys["layout"]
    addresses: tuple[bytes, ...] = keys["addresses"]
    enc_private = keys["enc_private"]
    enc_public = keys["enc_public"]
    mctx = MaskContext(CHAIN_ID, CONTRACT, ROUND, round_index)  # a new attempt each round
    t = threshold_for(n, THRESHOLD_PCT)
    merge_peer = addresses[0]

    plain: dict[str, list[float]] = defaultdict(list)  # unmasked step -> per-actor seconds
    masked: dict[str, list[float]] = defaultdict(list)
    sizes: dict[str, int] = {}

    def timed(store: dict[str, list[float]], key: str, func: Any, *args: Any, **kw: Any) -> Any:
        start = time.process_time()
        result = func(*args, **kw)
        store[key].append(time.process_time() - start)
        return result

    agg_plain = Aggregator(ctx.public, round_id=ROUND, layout=layout, merge_peer=merge_peer)
    agg_masked = Aggregator(ctx.public, round_id=ROUND, layout=layout, merge_peer=merge_peer)
    agg_same = Aggregator(ctx.public, round_id=ROUND, layout=layout, merge_peer=merge_peer)
    expected = np.zeros(size, dtype=np.float64)
    sealed: dict[int, dict[int, bytes]] = {}  # owner -> holder -> shares blob
    hashes: dict[int, bytes] = {}
    share_bytes: list[int] = []
    for i in range(n):
        values = update(size, i, round_index)
        expected += values.astype(np.float64) * weight(i)  # float64 throughout
        common = {"layout": layout, "weight": weight(i), "round_id": ROUND, "sender": addresses[i]}
        blob = timed(plain, "encrypt", encrypt_vector, values, ctx, **common)
        sizes["update"] = len(blob)

        self_seed = new_self_seed()
        secrets = timed(
            masked,
            "secrets",
            mask_secrets,
            mctx,
            my_index=i,
            my_private_key=enc_private[i],
            addresses=addresses,
            encryption_keys=enc_public,
            self_seed=self_seed,
        )
        start = time.process_time()
        setup = ShareSetup(mctx, i, addresses, t)
        manifest, plaintexts = split(setup, secrets)
        hashes[i] = shares_hash(manifest)
        sealed[i] = {h: seal_shares(setup, h, plaintexts[h], enc_public[h]) for h in range(n)}
        masked["split_seal"].append(time.process_time() - start)
        share_bytes.append(sum(len(b) for h, b in sealed[i].items() if h != i))
        sizes["manifest"] = len(manifest)

        start = time.process_time()
        terms = mask_terms(i, secrets)
        masked_blob = encrypt_vector(values, ctx, masks=terms, mask_context=mctx, **common)
        masked["encrypt"].append(time.process_time() - start)
        sizes["masked_update"] = len(masked_blob)
        del values
        # the same ciphertexts as the unmasked blob, masks added (for the bit-identity check)
        same_blob = mask_update_blob(
            blob, ctx, layout=layout, round_id=ROUND, masks=terms, mask_context=mctx
        )
        if len(same_blob) != len(blob):
            raise SystemExit("mask_update_blob changed the blob size")

        timed(plain, "aggregate", agg_plain.add, blob)
        timed(masked, "aggregate", agg_masked.add, masked_blob)
        agg_same.add(same_blob)
        del blob, masked_blob, same_blob

    contributors = frozenset(range(n))
    reveals: list[bytes] = []
    for h in range(n):
        start = time.process_time()
        held = {
            owner: open_shares(
                sealed[owner][h],
                ctx=mctx,
                owner_index=owner,
                holder_index=h,
                addresses=addresses,
                private_key=enc_private[h],
                expected_hash=hashes[owner],
            )
            for owner in range(n)
        }
        masked["open_shares"].append(time.process_time() - start)
        reveal = timed(masked, "reveal", build_reveal, mctx, h, held, contributors)
        reveals.append(reveal)
    sizes["reveal"] = len(reveals[0])

    # the merge peer's per-round time: its adds (summed over the n blobs) + finish
    start = time.process_time()
    aggregate_plain = agg_plain.finish()
    plain["aggregate"] = [sum(plain["aggregate"]) + time.process_time() - start]
    start = time.process_time()
    aggregate_masked = agg_masked.finish()
    masked["aggregate"] = [sum(masked["aggregate"]) + time.process_time() - start]
    aggregate_same = agg_same.finish()
    del agg_plain, agg_masked, agg_same
    sizes["aggregate"] = len(aggregate_plain)
    sizes["masked_aggregate"] = len(aggregate_masked)

    start = time.process_time()
    state = collect(mctx, reveals, hashes, contributors, n, threshold=t)
    recovered = state.recovered()
    correction = correction_terms(contributors, n, recovered)
    masked["collect"].append(time.process_time() - start)
    if state.rejected:
        raise SystemExit(f"reveals rejected: {state.rejected}")

    bridge = ctx._bridge
    expander = MaskExpander(mctx, bridge.last_moduli[0], bridge.poly_modulus_degree)
    chunks = ctx.params.chunk_count(size)
    start = time.process_time()
    for chunk in range(chunks):
        expander.combine(correction, chunk)
    expansion = time.process_time() - start

    read = {"round_id": ROUND, "layout": layout}
    plain_sum = timed(plain, "decrypt", decrypt_aggregate, aggregate_plain, ctx, **read)
    masked_sum = timed(
        masked,
        "decrypt",
        decrypt_aggregate,
        aggregate_masked,
        ctx,
        unmask=correction,
        mask_context=mctx,
        **read,
    )
    same_sum = decrypt_aggregate(aggregate_same, ctx, unmask=correction, mask_context=mctx, **read)
    out: dict[str, Any] = {
        "plain": {k: float(np.mean(v)) for k, v in plain.items()},
        "masked": {k: float(np.mean(v)) for k, v in masked.items()},
        "expansion": expansion,
        "bytes": sizes,
        "share_bytes": float(np.mean(share_bytes)),
        "threshold": t,
        "chunks": chunks,
        "error_plain": float(np.max(np.abs(plain_sum - expected))),
        "error_masked": float(np.max(np.abs(masked_sum - expected))),
        "error_same": float(np.max(np.abs(same_sum - expected))),
        "same_identical": bool(plain_sum.tobytes() == same_sum.tobytes()),
        "fresh_cells_differing": int(np.count_nonzero(plain_sum != masked_sum)),
        "fresh_max_diff": float(np.max(np.abs(plain_sum - masked_sum))),
    }
    return out


def child(size: int, n: int, rounds: int) -> dict[str, Any]:
    from swarm.crypto import Layout, TensorSpec, generate_round_keys
    from swarm.identity import Identity

    identities = [Identity.generate() for _ in range(n)]
    keys = {
        "ctx": generate_round_keys(),
        "layout": Layout((TensorSpec("w", (size,)),)),  # one flat tensor: no per-tensor copies
        "addresses": tuple(bytes.fromhex(m.address[2:]) for m in identities),
        "enc_private": [m.encryption_private_key() for m in identities],
        "enc_public": [m.encryption_public_key for m in identities],
    }
    base_mb = peak_rss_mb()
    results = [one_round(size, n, r, keys) for r in range(rounds)]
    first = results[0]

    def median(path: str, key: str) -> float:
        return statistics.median(r[path][key] for r in results)

    return {
        "size": size,
        "participants": n,
        "rounds": rounds,
        "plain": {k: median("plain", k) for k in first["plain"]},
        "masked": {k: median("masked", k) for k in first["masked"]},
        "expansion": statistics.median(r["expansion"] for r in results),
        "bytes": first["bytes"],
        "share_bytes": first["share_bytes"],
        "threshold": first["threshold"],
        "chunks": first["chunks"],
        "error_plain": max(r["error_plain"] for r in results),
        "error_masked": max(r["error_masked"] for r in results),
        "error_same": max(r["error_same"] for r in results),
        "same_identical": all(r["same_identical"] for r in results),
        "fresh_cells_differing": max(r["fresh_cells_differing"] for r in results),
        "fresh_max_diff": max(r["fresh_max_diff"] for r in results),
        "base_mb": base_mb,
        "peak_mb": peak_rss_mb(),
    }


# --- parent -------------------------------------------------------------------------------


def run_child(size: int, n: int, rounds: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(size), str(n), str(rounds)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"masking bench at {size} parameters failed")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.2f} ms"


def signed(value: float) -> str:
    return ("+" if value >= 0 else "-") + seconds(abs(value))


def num(value: float) -> str:
    return f"{value:,.0f}"


def role_totals(r: dict[str, Any]) -> dict[str, tuple[float, float]]:
    out = {}
    for role in ROLES:
        keys = [key for key, step_role, _ in STEPS if step_role == role]
        out[role] = (
            sum(r["plain"].get(k, 0.0) for k in keys),
            sum(r["masked"].get(k, 0.0) for k in keys),
        )
    return out


def steps_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| params | role | step | unmasked CPU | masked CPU | bytes unmasked | bytes masked |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        b = r["bytes"]
        sent = {
            "encrypt": (num(b["update"]), num(b["masked_update"])),
            "split_seal": ("-", f"{num(r['share_bytes'])} (to n-1 holders)"),
            "reveal": ("-", num(b["reveal"])),
            "aggregate": (num(b["aggregate"]), num(b["masked_aggregate"])),
        }
        for key, role, label in STEPS:
            unmasked = r["plain"].get(key)
            masked = r["masked"].get(key)
            if key == "decrypt":
                label += f" (expansion alone: {seconds(r['expansion'])})"
            bytes_plain, bytes_masked = sent.get(key, ("-", "-"))
            lines.append(
                f"| {r['size']:,} | {role} | {label} | {seconds(unmasked)} | {seconds(masked)} "
                f"| {bytes_plain} | {bytes_masked} |"
            )
    return "\n".join(lines)


def overhead_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| params | role | unmasked CPU | masked CPU | overhead | overhead % | "
        "peak RSS MB (after keys) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        totals = role_totals(r)
        total_plain = sum(p for p, _ in totals.values())
        total_masked = sum(m for _, m in totals.values())
        summed = ("one of each (sum)", (total_plain, total_masked))
        for role, (p, m) in [*totals.items(), summed]:
            rss = f"{r['peak_mb']:.0f} ({r['base_mb']:.0f})" if role == summed[0] else ""
            lines.append(
                f"| {r['size']:,} | {role} | {seconds(p)} | {seconds(m)} | {signed(m - p)} "
                f"| {100.0 * (m - p) / p:+.1f}% | {rss} |"
            )
    return "\n".join(lines)


def accuracy_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| params | max abs error unmasked | max abs error masked (fresh encryption) | "
        "fresh masked vs unmasked: grid cells differing (max diff) | "
        "masked from the same ciphertexts == unmasked, bit for bit |",
        "|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']:,} | {r['error_plain']:.2e} | {r['error_masked']:.2e} "
            f"| {r['fresh_cells_differing']:,} of {r['size']:,} ({r['fresh_max_diff']:.1e}) "
            f"| {'yes' if r['same_identical'] else 'NO'} (error {r['error_same']:.2e}) |"
        )
    return "\n".join(lines)


def section(rows: list[dict[str, Any]], elapsed: float) -> str:
    n = rows[0]["participants"]
    t = rows[0]["threshold"]
    rounds = ", ".join(f"{r['size']:,}: {r['rounds']}" for r in rows)
    return "\n".join(
        [
            "## Masked aggregation overhead (swarm.crypto.masking / shares)",
            "",
            f"{n} participants, all contributing (no dropout), threshold t = {t} "
            f"(maskThresholdPct {THRESHOLD_PCT}). Per round, CPU seconds of one process "
            "(TenSEAL with one thread: one core); participant steps are the mean over the "
            f"{n} participants; medians over rounds ({rounds}). Took {elapsed:.0f} s. "
            "Each figure is one run on a shared machine: read them as orders of magnitude.",
            "",
            overhead_table(rows),
            "",
            steps_table(rows),
            "",
            accuracy_table(rows),
            "",
            "Reading the tables:",
            "",
            "- The participant's masked path adds, to the encryption: deriving its n secrets, "
            "splitting and sealing them (one HPKE box per holder), opening the n boxes it "
            "receives and building its reveal. Masks are added to each ciphertext's c0 before "
            "packing, so a masked update has exactly the unmasked size.",
            "- The merge peer runs the same code on blobs of the same kind and size (masked "
            "ciphertexts are ordinary ring elements), so its two columns should match: a gap is "
            "not extra work but measurement (one run on a shared machine; the masked blob is "
            "always added right after the unmasked one).",
            "- The key holder verifies every reveal (n of them, t would do), rebuilds each "
            "contributor's self seed (no dropout: no pairwise seed is needed), and expands one "
            "ChaCha20 mask per needed secret per ciphertext (the *expansion alone* figure) "
            "before decrypting.",
            "- Peak RSS is the child process's lifetime high-water mark (getrusage, imports "
            "included), in brackets its value after imports and key generation; the child "
            "holds three aggregators at once (unmasked, masked, masked-from-the-same-"
            "ciphertexts), so the figure is above what one peer needs.",
            "- Accuracy compares each decrypted, grid-rounded weighted sum with the float64 sum "
            "of the float32 updates. The fresh masked encryption draws new CKKS noise, so a few "
            "grid cells (2^-20) can differ from the unmasked sum; the aggregate built from the "
            "unmasked blobs' own ciphertexts with the masks added (codec.mask_update_blob) "
            "decrypts, once unmasked, to exactly the unmasked bits: masking itself costs no "
            "precision.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--participants", type=int, default=4, help="participants per round")
    parser.add_argument(
        "--sizes", default="36 11200000", help="parameter counts, space or comma separated"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="rounds per size (default: 10 below 1M parameters, else 1); medians are reported",
    )
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs alone")
    parser.add_argument("--child", nargs=3, metavar=("SIZE", "N", "ROUNDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size, n, rounds = (int(v) for v in args.child)
        print(json.dumps(child(size, n, rounds)))
        return

    if args.participants < 2:
        raise SystemExit("masking needs at least 2 participants")
    sizes = [int(s) for s in args.sizes.replace(",", " ").split()]
    started = time.time()
    rows = []
    for size in sizes:
        rounds = args.rounds or (10 if size < 1_000_000 else 1)
        rows.append(run_child(size, args.participants, rounds))
        print(f"# {size:,}: done after {time.time() - started:.0f} s", file=sys.stderr)
    body = section(rows, time.time() - started)
    command = "python benchmarks/masking_bench.py " + " ".join(sys.argv[1:])
    print(body)
    if not args.no_write:
        write_section("masking-bench", body, command.strip())


if __name__ == "__main__":
    main()
