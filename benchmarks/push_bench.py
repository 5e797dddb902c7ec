"""CPU per small push: what a masked round's many key, share and reveal pushes cost.

Two member hosts in one process (real libp2p: TCP, Noise, yamux, the membership gate) on
loopback; one pushes ``--count`` payloads of ``--size`` bytes (mask shares, the default 2 KB,
are the typical size) to the other, one after another, after a warm-up. Reported: wall time
and CPU seconds (user + system, both ends together, as they share this process) per push; the
minimum of ``--runs`` runs, each in a fresh process so one run's heap does not carry into the
next. Both ends run in one process, so CPU time is what the push costs, not what it waits.

Variants switch off, one at a time, what issue 15 changed on the small-message path (see
docs/p2p.md, "Performance: small messages"): ``inline`` (payload and header in one write, one
answer), ``pipelined`` (multistream-select in one round trip), ``buffered`` (buffered TCP
reads), and ``before`` all three. Prints a markdown table and writes it into
docs/benchmarks.md between the push-bench markers.

    .venv/bin/python benchmarks/push_bench.py [--count 300] [--size 2000] [--runs 5] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import write_section

VARIANTS = {
    "now": "as peers run it",
    "no inline": "inline pushes off (header, answer, payload, answer)",
    "no pipelining": "py-libp2p's multistream-select client (two round trips)",
    "no buffering": "py-libp2p's TCP transport (a recv per Noise length and body)",
    "before": "all three off",
}
WARM_UP = 20


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _one_run(variant: str, count: int, size: int) -> dict[str, float]:
    """In this process: two hosts, ``count`` pushes; per-push wall and CPU (ms)."""
    import trio
    from libp2p.protocol_muxer.multiselect_client import MultiselectClient
    from libp2p.transport.tcp.tcp import TCP

    from swarm.p2p import host as host_module
    from swarm.p2p import protocols
    from swarm.p2p.store import BlobKind, MemoryBlobStore
    from tests.p2p.helpers import FAST_POLICY, free_port, identities, make_member, serving_host

    if variant in ("no inline", "before"):
        protocols.INLINE_MAX_BYTES = 0  # type: ignore[misc]
    if variant in ("no pipelining", "before"):
        host_module.PipelinedMultiselectClient = MultiselectClient  # type: ignore[misc]
    if variant in ("no buffering", "before"):
        host_module.BufferedTCP = TCP  # type: ignore[misc]

    async def main() -> dict[str, float]:
        a, b = identities(2)
        port_a, port_b = free_port(), free_port()
        members = [make_member(a, port_a), make_member(b, port_b)]
        async with (
            serving_host(a, port_a, members) as (client, _),
            serving_host(b, port_b, members, MemoryBlobStore()) as (server, served),
        ):
            served.accept_pushes(BlobKind.SHARES, lambda request: None, 1 << 20)

            async def push_one() -> None:
                await protocols.push(
                    client, server.address, BlobKind.SHARES, 1, os.urandom(size), policy=FAST_POLICY
                )

            for _ in range(WARM_UP):
                await push_one()
            cpu, wall = _cpu(), time.perf_counter()
            for _ in range(count):
                await push_one()
            return {
                "wall_ms": (time.perf_counter() - wall) / count * 1000,
                "cpu_ms": (_cpu() - cpu) / count * 1000,
            }

    return trio.run(main)


def measure(variant: str, count: int, size: int, runs: int) -> dict[str, float]:
    results = []
    for _ in range(runs):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                variant,
                "--count",
                str(count),
                "--size",
                str(size),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {key: min(r[key] for r in results) for key in ("wall_ms", "cpu_ms")}


def table(rows: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    lines = [
        f"One push of {args.size} bytes between two member hosts in one process (real libp2p on "
        f"loopback), {args.count} in a row after {WARM_UP} to warm up; minimum over "
        f"{args.runs} runs, each its own process. CPU: both ends together.",
        "",
        "| variant | what | wall per push (ms) | CPU per push (ms) |",
        "|---|---|---:|---:|",
    ]
    for name, row in rows.items():
        lines.append(f"| {name} | {VARIANTS[name]} | {row['wall_ms']:.2f} | {row['cpu_ms']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="pushes measured per run")
    parser.add_argument("--size", type=int, default=2000, help="payload bytes")
    parser.add_argument("--runs", type=int, default=5, help="runs per variant (the minimum counts)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--one", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one_run(args.one, args.count, args.size)))
        return
    rows = {}
    for variant in VARIANTS:
        rows[variant] = measure(variant, args.count, args.size, args.runs)
        print(f"{variant}: {rows[variant]['cpu_ms']:.2f} ms CPU per push", file=sys.stderr)
    text = table(rows, args)
    print(text)
    if not args.no_write:
        command = (
            f"python benchmarks/push_bench.py --count {args.count} --size {args.size} "
            f"--runs {args.runs}"
        )
        write_section("push-bench", text, command)


if __name__ == "__main__":
    main()
