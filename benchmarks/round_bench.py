"""Where a round's time goes: training, encryption, transfer, ledger, merge, decryption.

Runs a local swarm (anvil + N hospital peer processes on loopback, real CKKS, the heart task)
for a few rounds, then reads each peer's per-round log (``data/rounds.jsonl``: seconds spent per
phase, measured inside the peer) and the round's wall time from the ledger's events
(RoundOpened -> RoundFinalized block timestamps, 1 s resolution). With more peers than the
task's four hospitals, sites repeat: the timing is what this measures, not accuracy.

    .venv/bin/python benchmarks/round_bench.py [--peers 4 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import write_section
from localnet import network
from localnet.peers import peer_dir, start_peer, stop_peer, write_peer_configs
from swarm.audit import build_history
from swarm.ledger import LedgerClient, RpcChain

PHASES = ("training", "encryption", "transfer", "ledger", "decryption")
#: phases only one peer of a round does
ROLE_PHASES = {"merge": "merge peer", "keys": "key steward"}


def run(peers: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        net = network.up(workdir, peers=peers, params=network.swarm_params())
        try:
            configs = write_peer_configs(net, workdir, rounds=rounds)
            ledger = LedgerClient(RpcChain(net.chain_url), net.contract)
            procs = [start_peer(path, verbose=False) for path in configs]
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                if ledger.last_finalized_round() >= rounds and not any(p.alive() for p in procs):
                    break
                time.sleep(0.5)
            for p in procs:
                stop_peer(p)
            history = build_history(ledger.events())
            walls = [
                r.finalized_at - r.opened_at
                for r in history.rounds.values()
                if r.finalized_at is not None
            ]
            per_phase: dict[str, list[float]] = defaultdict(list)
            by_role: dict[str, list[float]] = defaultdict(list)
            for entry in net.peers:
                log = peer_dir(workdir, entry) / "data" / "rounds.jsonl"
                for line in log.read_text().splitlines() if log.exists() else []:
                    record = json.loads(line)
                    for phase in PHASES:
                        per_phase[phase].append(record["timings_s"].get(phase, 0.0))
                    for phase, role in ROLE_PHASES.items():
                        if phase in record["timings_s"]:
                            by_role[f"{phase} ({role})"].append(record["timings_s"][phase])
        finally:
            network.down(workdir)
    out = {f"{p} (median per peer)": statistics.median(v) for p, v in per_phase.items() if v}
    out.update({k: statistics.median(v) for k, v in by_role.items()})
    out["round wall time (ledger)"] = statistics.median(walls) if walls else float("nan")
    out["rounds finalized"] = float(len(walls))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--peers", type=int, nargs="+", default=[4, 10])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    results = {n: run(n, args.rounds) for n in args.peers}
    keys = list(next(iter(results.values())))
    lines = [
        "| seconds | " + " | ".join(f"{n} peers" for n in results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    for key in keys:
        cells = []
        for n in results:
            value = results[n].get(key, float("nan"))
            cells.append(f"{value:.0f}" if key == "rounds finalized" else f"{value:.3f}")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        notes = (
            "A round of the heart task (logistic regression, 36 parameters) on a local swarm: "
            "each phase as the peers measured it (median over peers and rounds; transfer "
            "includes the key steward's deliveries), and the round's wall time between its "
            "RoundOpened and RoundFinalized blocks (1 s block resolution; the peers poll the "
            "ledger every 0.3 s, and anvil mines a block every second as well as on each "
            "transaction). With a model this small the round is dominated by the ledger and "
            "polling, not by cryptography.\n\n"
        )
        command = "python benchmarks/round_bench.py " + " ".join(sys.argv[1:])
        write_section("round-bench", notes + table, command.strip())


if __name__ == "__main__":
    main()
