"""One peer's encryption and decryption of a large model: in its own process, and in parts
on worker processes (swarm.peer.cores, ``[peer] crypto_workers``).

An update of ``--params`` values (default 11,187,138: a ResNet-18) is encrypted with four mask
terms (a seeded update, as a participant makes it), three such updates and a plain one are
summed, and the aggregate is decrypted with the correction (as a key holder does), once in
the process and once per worker count in ``--workers``. Nothing else runs: this measures what
a hospital's own host gives one peer, not a round (benchmarks/model_size_bench.py does rounds,
with four hospitals sharing this machine's cores). Wall time is the median of ``--repeats``;
the pool is started and warmed (each worker loads the round's context) before timing, as a
running peer's pool is after its first round.

    .venv/bin/python benchmarks/cores_bench.py [--params 11187138] [--workers 2] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from benchmarks.report import write_section
from swarm.crypto import (
    MaskContext,
    MaskTerm,
    aggregate,
    decrypt_aggregate,
    encrypt_vector,
    generate_round_keys,
    layout_of,
)
from swarm.crypto.parallel import (
    decrypt_aggregate_split,
    encrypt_vector_split,
)
from swarm.peer.cores import CryptoCores, usable_cores

MASKS = MaskContext(1, b"\x01" * 20, 1, 0)
SENDERS = [bytes([i + 1]) * 20 for i in range(4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=int, default=11_187_138)
    parser.add_argument("--workers", type=int, nargs="+", default=[usable_cores()])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    steward = generate_round_keys()
    layout = layout_of({"w": torch.zeros(args.params)})
    values = np.random.default_rng(0).normal(0, 1e-2, args.params).astype(np.float32)
    terms = [MaskTerm(os.urandom(16), 1 if i % 2 else -1) for i in range(4)]
    options = dict(layout=layout, weight=10.0, round_id=1, masks=terms, mask_context=MASKS)

    def timed(fn: object) -> tuple[float, float, object]:
        walls, cpus, result = [], [], None
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            result = fn()  # type: ignore[operator]
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        return statistics.median(walls), statistics.median(cpus), result

    blobs = [
        encrypt_vector(values, steward, sender=s, **options)  # type: ignore[arg-type]
        for s in SENDERS[:3]
    ]
    blobs.append(encrypt_vector(values, steward.public, sender=SENDERS[3], **options))  # type: ignore[arg-type]
    agg = aggregate(blobs, steward.public, round_id=1, layout=layout, merge_peer=SENDERS[3])
    correction = terms * 4
    decrypt = dict(round_id=1, layout=layout, unmask=correction, mask_context=MASKS)

    rows = []
    enc_wall, enc_cpu, _ = timed(
        lambda: encrypt_vector(values, steward, sender=SENDERS[0], **options)  # type: ignore[arg-type]
    )
    dec_wall, dec_cpu, serial = timed(lambda: decrypt_aggregate(agg, steward, **decrypt))  # type: ignore[arg-type]
    rows.append(("1 (the peer's own process)", enc_wall, enc_cpu, dec_wall, dec_cpu, True))
    print(f"in process: encrypt {enc_wall:.2f} s, decrypt {dec_wall:.2f} s", file=sys.stderr)
    for workers in args.workers:
        cores = CryptoCores(workers)
        try:
            run = dict(run=cores.run, parts=workers)
            # warm: start the processes, load the round's context in each
            decrypt_aggregate_split(agg, steward, **run, **decrypt)  # type: ignore[arg-type]
            e_wall, e_cpu, _ = timed(
                lambda run=run: encrypt_vector_split(
                    values,
                    steward,
                    sender=SENDERS[0],
                    **run,  # type: ignore[arg-type]
                    **options,  # type: ignore[arg-type]
                )
            )
            d_wall, d_cpu, split = timed(
                lambda run=run: decrypt_aggregate_split(agg, steward, **run, **decrypt)  # type: ignore[arg-type]
            )
        finally:
            cores.close()
        same = np.asarray(split).tobytes() == np.asarray(serial).tobytes()
        rows.append((f"{workers} worker processes", e_wall, e_cpu, d_wall, d_cpu, same))
        print(f"{workers} workers: encrypt {e_wall:.2f} s, decrypt {d_wall:.2f} s", file=sys.stderr)

    lines = [
        f"One peer alone, {args.params:,} parameters (CKKS set 2, {len(agg) / 1e6:.0f} MB "
        "aggregate of 4 contributors), four mask terms; median of "
        f"{args.repeats}. CPU: this process only (the workers' is not in it).",
        "",
        "| crypto_workers | encrypt, wall (s) | encrypt, CPU here (s) | decrypt, wall (s) "
        "| decrypt, CPU here (s) | decryption bit-identical to in-process |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, e_wall, e_cpu, d_wall, d_cpu, same in rows:
        lines.append(
            f"| {name} | {e_wall:.2f} | {e_cpu:.2f} | {d_wall:.2f} | {d_cpu:.2f} | "
            f"{'yes' if same else '**no**'} |"
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        workers = " ".join(str(w) for w in args.workers)
        command = (
            f"python benchmarks/cores_bench.py --params {args.params} --workers {workers} "
            f"--repeats {args.repeats}"
        )
        write_section("cores-bench", text, command)


if __name__ == "__main__":
    main()
