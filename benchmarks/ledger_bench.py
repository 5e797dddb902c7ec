"""Gas and latency of the round protocol on a real anvil node; and anvil's memory.

Runs full rounds with 4, 10 and 30 participants (every member joins, so the last join also
closes the window; the key steward's postRoundKey is the first call after the draw block and
stores the seed) and prints gas per operation (and the gas limit the
client's GasPolicy sent it with), gas per participant per round, and the median transaction
round trip (build with gas estimation, sign, send, wait for the receipt). Writes the table into
docs/benchmarks.md unless --no-write.

    .venv/bin/python benchmarks/ledger_bench.py [--sizes 4 10 30] [--rounds 3] [--no-write]

With --memory it runs rounds of 4 members (18 transactions each, metrics included) on anvil as
localnet starts it (interval blocks on top of automine, state file dumped every second), once
per configuration KEPT:INTERVAL (states kept in memory, seconds between interval blocks; the
default compares the old 256:1 with today's KEPT_STATES:MIN_BLOCK_TIME), and prints anvil's RSS
at each quarter of --txs transactions:

    .venv/bin/python benchmarks/ledger_bench.py --memory --txs 4000 --no-write

With --requests it runs --rounds rounds of 4 members and prints, for join, commitUpdate and
acknowledge, the JSON-RPC requests one transaction costs (by method; a batch's requests each),
the HTTP round trips (a batch is one), the calling thread's CPU time and the round trip (print
only):

    .venv/bin/python benchmarks/ledger_bench.py --requests --rounds 6
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import localnet.anvil
from benchmarks.report import write_section
from localnet.anvil import KEPT_STATES, MIN_BLOCK_TIME, start_anvil
from swarm.ledger import RpcChain
from tests.conftest import make_consortium, make_params
from tests.ledger.rounds import SHARES, draw
from tests.ledger.test_view import counted_requests


def h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def run(sizes: list[int], rounds: int) -> str:
    rows: list[tuple[int, str, float, int | None, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            node = start_anvil(Path(tmp) / f"anvil-{n}")
            try:
                gas: dict[str, list[int]] = defaultdict(list)
                limits: dict[str, list[int]] = defaultdict(list)
                latency: list[float] = []
                per_round: list[int] = []
                c = make_consortium(RpcChain(node.url), n, make_params(min_peers=3))

                def send(op: str, fn, *args, gas=gas, latency=latency, limits=limits, c=c):  # type: ignore[no-untyped-def]
                    t0 = time.perf_counter()
                    result = fn(*args)
                    latency.append(time.perf_counter() - t0)
                    gas[op].append(result.gas_used)
                    limits[op].append(int(c.chain.w3.eth.get_transaction(result.tx_hash)["gas"]))
                    return result

                for _ in range(rounds):
                    before = sum(sum(v) for v in gas.values())
                    opener = c.client(c.addresses[0])
                    t0 = time.perf_counter()
                    opener.open_round(c.admin.latest_model())
                    latency.append(time.perf_counter() - t0)
                    rid = c.admin.current_round()
                    # openRound returns the id, not a receipt: read its gas from the last block
                    block = c.chain.w3.eth.get_block("latest", full_transactions=True)
                    receipt = c.chain.w3.eth.get_transaction_receipt(
                        block["transactions"][-1]["hash"]
                    )
                    gas["openRound"].append(int(receipt["gasUsed"]))
                    for i, a in enumerate(c.addresses):
                        op = "join (last: + close)" if i == n - 1 else "join"
                        send(op, c.client(a).join, rid)
                    info = draw(c, rid)  # mine past the draw block
                    assert info.key_steward is not None and info.merge_peer is not None
                    send(
                        "postRoundKey (+ store seed)",
                        c.client(info.key_steward).post_round_key,
                        rid,
                        h(f"k{rid}"),
                    )
                    for a in info.participants:
                        send(
                            "commitUpdate",
                            functools.partial(c.client(a).commit_update, shares_hash=SHARES),
                            rid,
                            h(f"u{rid}{a}"),
                            100,
                        )
                    send(
                        "submitAggregate",
                        c.client(info.merge_peer).submit_aggregate,
                        rid,
                        h(f"a{rid}"),
                        info.participants,
                    )
                    model = h(f"m{rid}")
                    ackers = [a for a in info.participants if a != info.merge_peer]
                    for i, a in enumerate(ackers):
                        op = "acknowledge (finalizing)" if i == len(ackers) // 2 else "acknowledge"
                        send(op, c.client(a).acknowledge, rid, model)
                    per_round.append(sum(sum(v) for v in gas.values()) - before)
                for op, values in gas.items():
                    limit = int(statistics.median(limits[op])) if limits[op] else None
                    rows.append((n, op, int(statistics.median(values)), limit, len(values)))
                rows.append(
                    (
                        n,
                        "whole round / participant",
                        int(statistics.median(per_round)) // n,
                        None,
                        rounds,
                    )
                )
                rows.append(
                    (
                        n,
                        "median tx round trip (ms)",
                        round(statistics.median(latency) * 1000, 1),
                        None,
                        len(latency),
                    )
                )
            finally:
                node.stop()
    lines = [
        "| participants | operation | median gas (or ms) | gas limit sent | samples |",
        "|---:|---|---:|---:|---:|",
        *(
            f"| {n} | {op} | {value:,} | {'' if limit is None else f'{limit:,}'} | {count} |"
            for n, op, value, limit, count in rows
        ),
    ]
    return "\n".join(lines)


def requests_per_tx(rounds: int) -> str:
    """What one join, commitUpdate and acknowledge cost on anvil: JSON-RPC requests by method,
    HTTP round trips, CPU of the calling thread (ms) and round trip (ms); medians, the request
    counts averaged."""
    seen: dict[str, list[tuple[Counter[str], int, float, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        node = start_anvil(Path(tmp) / "anvil")
        try:
            c = make_consortium(RpcChain(node.url), 4, make_params(min_peers=3))

            def send(op: str, fn, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
                with counted_requests(c.chain.w3) as counter:
                    t0, cpu0 = time.perf_counter(), time.thread_time()
                    fn(*args, **kwargs)
                    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - t0
                seen[op].append((Counter(counter.methods), counter.round_trips, cpu, wall))

            for _ in range(rounds):
                rid = c.client(c.addresses[0]).open_round(c.admin.latest_model())
                for a in c.addresses:
                    send("join", c.client(a).join, rid)
                info = draw(c, rid)
                assert info.key_steward is not None and info.merge_peer is not None
                c.client(info.key_steward).post_round_key(rid, h(f"k{rid}"))
                for a in info.participants:
                    send(
                        "commitUpdate",
                        c.client(a).commit_update,
                        rid,
                        h(f"u{rid}{a}"),
                        100,
                        shares_hash=SHARES,
                    )
                c.client(info.merge_peer).submit_aggregate(rid, h(f"a{rid}"), info.participants)
                for a in info.participants:
                    if a != info.merge_peer:
                        send("acknowledge", c.client(a).acknowledge, rid, h(f"m{rid}"))
        finally:
            node.stop()
    lines = [
        "| operation | requests (by method) | HTTP round trips | CPU ms | round trip ms "
        "| samples |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for op, samples in seen.items():
        total: Counter[str] = Counter()
        for methods, *_ in samples:
            total.update(methods)
        n = len(samples)
        by_method = ", ".join(
            f"{m.removeprefix('eth_')} {v / n:.3g}" for m, v in sorted(total.items())
        )
        trips = statistics.mean(s[1] for s in samples)
        cpu = statistics.median(s[2] for s in samples) * 1000
        wall = statistics.median(s[3] for s in samples) * 1000
        lines.append(
            f"| {op} | {sum(total.values()) / n:.3g}: {by_method} | {trips:.3g} | {cpu:.1f} "
            f"| {wall:.1f} | {n} |"
        )
    return "\n".join(lines)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory(txs: int, configs: list[str]) -> str:
    """anvil's RSS while a 4-member consortium runs rounds, for each KEPT:INTERVAL config."""
    rows: list[tuple[str, float, list[tuple[int, float]], int, int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, config in enumerate(configs):
            kept, interval = config.split(":")
            # let the old, shorter intervals through start_anvil's floor, to compare with them
            localnet.anvil.MIN_BLOCK_TIME = min(MIN_BLOCK_TIME, float(interval))
            try:
                node = start_anvil(
                    Path(tmp) / f"anvil-{i}", block_time=float(interval), kept_states=int(kept)
                )
            finally:
                localnet.anvil.MIN_BLOCK_TIME = MIN_BLOCK_TIME
            try:
                c = make_consortium(RpcChain(node.url), 4, make_params(min_peers=3))
                start_rss = _rss_mib(node.pid)
                marks = [txs // 4, txs // 2, 3 * txs // 4, txs]
                samples: list[tuple[int, float]] = []
                sent = 0
                t0 = time.monotonic()
                while marks:
                    rid = c.client(c.addresses[0]).open_round(c.admin.latest_model())
                    for a in c.addresses:
                        c.client(a).join(rid)
                    info = draw(c, rid)
                    assert info.key_steward is not None and info.merge_peer is not None
                    c.client(info.key_steward).post_round_key(rid, h(f"k{rid}"))
                    for a in info.participants:
                        c.client(a).commit_update(rid, h(f"u{rid}{a}"), 100, shares_hash=SHARES)
                    c.client(info.merge_peer).submit_aggregate(rid, h(f"a{rid}"), info.participants)
                    for a in info.participants:
                        if a != info.merge_peer:
                            c.client(a).acknowledge(rid, h(f"m{rid}"))
                    for a in info.participants:
                        c.client(a).report_metrics(rid, 100, 0.8, 0.9, 0.3)
                    sent += 18
                    while marks and sent >= marks[0]:
                        samples.append((sent, _rss_mib(node.pid)))
                        marks.pop(0)
                elapsed = time.monotonic() - t0
                blocks = int(c.chain.w3.eth.block_number)
                events = len(c.admin.events())
                rows.append((config, start_rss, samples, blocks, events, elapsed))
                print(f"{config}: {rows[-1]}", file=sys.stderr, flush=True)
            finally:
                node.stop()
    head = " | ".join(f"RSS after {n:,} tx (MiB)" for n, _ in rows[0][2])
    lines = [
        f"| kept states : block interval (s) | RSS at start (MiB) | {head} | blocks | events | s |",
        "|---:|---:|" + "---:|" * len(rows[0][2]) + "---:|---:|---:|",
    ]
    for k, start_rss, samples, blocks, events, elapsed in rows:
        cells = " | ".join(f"{rss:,.0f}" for _, rss in samples)
        lines.append(
            f"| {k} | {start_rss:,.0f} | {cells} | {blocks:,} | {events:,} | {elapsed:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 10, 30])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--memory", action="store_true", help="measure anvil's RSS instead")
    parser.add_argument(
        "--requests",
        action="store_true",
        help="print requests, CPU and round trip per transaction instead (never writes)",
    )
    parser.add_argument("--txs", type=int, default=4000, help="--memory: transactions per run")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["256:1", f"{KEPT_STATES}:{MIN_BLOCK_TIME:g}"],
        help="--memory: KEPT:INTERVAL pairs (anvil's --prune-history and --block-time)",
    )
    args = parser.parse_args()
    if args.requests:
        print(requests_per_tx(args.rounds))
        return
    if args.memory:
        table = memory(args.txs, args.configs)
        print(table)
        if not args.no_write:
            notes = (
                "anvil 1.7.1's resident memory while a 4-member consortium runs full rounds "
                "(18 transactions each, metrics included), started as localnet starts it "
                "(--state, --state-interval 1, interval blocks with --mixed-mining), for each "
                "number of recent states kept in memory (--prune-history N) and block interval. "
                "With an interval of 2 s or less anvil 1.7.1 keeps up to 1,500 states whatever "
                "--prune-history says.\n\n"
            )
            command = "python benchmarks/ledger_bench.py " + " ".join(sys.argv[1:])
            write_section("ledger-memory", notes + table, command.strip())
        return
    table = run(args.sizes, args.rounds)
    print(table)
    if not args.no_write:
        command = "python benchmarks/ledger_bench.py " + " ".join(sys.argv[1:])
        notes = (
            "Gas of each transaction of the round protocol on anvil 1.7.1: the two-contract "
            "design of issue 11 (Consortium + SwarmLedger, OpenZeppelin 5.7.0, solc 0.8.37, "
            "via-IR, optimizer 200 runs; contributors as a bitmap, roles drawn from a later "
            "block's hash). The closing join records the draw block; the key steward's "
            "postRoundKey, the first call after the draw, stores the seed. The acknowledgement "
            "that reaches the majority also finalizes the round. A round trip is one client "
            "call: build with gas estimation, sign locally (coincurve), send, and poll for the "
            "receipt every 5 ms. The table before issue 11 is below it, for comparison.\n\n"
        )
        write_section("ledger-bench", notes + table, command.strip())


if __name__ == "__main__":
    main()
