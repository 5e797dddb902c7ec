"""Soak: a local consortium of 4 hospital peers runs many rounds in a row; does anything degrade?

Runs anvil + 4 hospital peer processes (verbose logs, real CKKS, real libp2p on loopback, the
heart task) until N rounds are finalized, sampling every few seconds the resident memory (VmRSS
in /proc/PID/status) of each peer and of anvil. At the end it reports:

- rounds finalized, and every other round's outcome (lapsed, by reason; from the ledger's
  events through swarm.audit.build_history);
- lines of the peer logs that tell of a transaction out of gas or reverted, and, from the chain
  itself, every mined transaction to the contract that failed (status 0; out of gas when it
  used all its gas): a race lost after its estimate reverts on chain while the peer's log
  calls it "moot" at DEBUG level (those are counted by kind, for the console);
- WARNING / ERROR lines per peer, and the exit code of each peer (a peer that dies before the
  end is reported at once with the tail of its log);
- the median round wall time (RoundOpened -> RoundFinalized block timestamps, 1 s resolution);
- memory: each process's RSS after warm-up (the round max(10, N/10)) and at the end, and its
  growth per 100 rounds, the least-squares slope of RSS over the finalized-round count across
  the samples taken after warm-up.

    .venv/bin/python benchmarks/soak_bench.py [--rounds 200] [--sample-s 2] [--workdir DIR]

The run has an overall deadline; peers and anvil are stopped whatever happens. Without
``--workdir`` everything lives in a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import write_section
from localnet import network
from localnet.peers import PeerProcess, peer_dir, start_peer, stop_peer, write_peer_configs
from swarm.audit import build_history
from swarm.errors import SwarmError
from swarm.ledger import LedgerClient, Params, RpcChain

PEERS = 4
ANVIL = "anvil"
#: a transaction that ran out of gas or reverted, as the peers (web3, swarm.ledger) word it
TX_FAILURE = re.compile(r"OutOfGas|out of gas|reverted", re.I)
#: a log line of the peer's plain format: "<timestamp> LEVEL logger: message" or, for an event,
#: "<timestamp> LEVEL [site] event key=value ..."; the timestamp either logging's default
#: ("2026-01-01 12:00:00,000") or ISO 8601 ("2026-01-01T12:00:00.000+00:00")
_LEVEL = re.compile(
    r"^(?P<day>\d{4}-\d\d-\d\d)[ T](?P<time>\d\d:\d\d:\d\d[.,]\d+)(?:Z|[+-]\d\d:?\d\d)? "
    r"(?P<level>[A-Z]+) (?P<rest>.*)$"
)
#: an event line's site, left out when grouping warnings of different peers
_SITE = re.compile(r"^\[[^\]]*\] ")
#: a race lost, as the peer logs it: "OpenRound(b'...'): moot: RoundNotOver(round=3, ...)"
_MOOT = re.compile(r"(?:^|: )(?P<action>\w+)\(.*: moot: (?P<error>\w+)")
#: a Python warning printed by the warnings module ("file.py:12: UserWarning: ...")
_PY_WARNING = re.compile(r":\d+: \w*Warning: ")


def default_warmup(rounds: int) -> int:
    """The round after which memory is taken as warmed up: max(10, 10 % of the rounds)."""
    return max(10, rounds // 10)


def default_deadline(rounds: int) -> float:
    """Seconds the whole run may take: generous (a clean round takes a few seconds)."""
    return 120.0 + 15.0 * rounds


# --- measuring ------------------------------------------------------------------------------


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB (VmRSS), or None if it is gone (or a zombie)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None  # a zombie has no VmRSS line


def least_squares_slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Slope of the least-squares line through (x, y) points; None without two distinct x."""
    if len(points) < 2:
        return None
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the peers were started
    finalized: int  # the ledger's last finalized round when the sample was taken
    rss_mb: dict[str, float]  # process name -> RSS; a process that is gone is left out


@dataclass(frozen=True)
class MemoryStats:
    warm_mb: float | None  # first sample at or after the warm-up round
    end_mb: float | None  # last sample of the process
    peak_mb: float | None  # largest sample after warm-up
    growth_per_100: float | None  # MB per 100 finalized rounds, least squares after warm-up
    samples: int  # samples after warm-up


def memory_stats(samples: Sequence[Sample], name: str, warmup_round: int) -> MemoryStats:
    mine = [(s.finalized, s.rss_mb[name]) for s in samples if name in s.rss_mb]
    warm = [(x, y) for x, y in mine if x >= warmup_round]
    slope = least_squares_slope(warm)
    return MemoryStats(
        warm_mb=warm[0][1] if warm else None,
        end_mb=mine[-1][1] if mine else None,
        peak_mb=max(y for _, y in warm) if warm else None,
        growth_per_100=None if slope is None else 100 * slope,
        samples=len(warm),
    )


@dataclass
class LogScan:
    """What a peer's log says about trouble."""

    warnings: int = 0  # WARNING records and Python warnings
    errors: int = 0  # ERROR / CRITICAL records
    tracebacks: int = 0
    tx_failures: list[str] = field(default_factory=list)  # out of gas / reverted lines
    warning_kinds: Counter[str] = field(default_factory=Counter)
    moot_kinds: Counter[str] = field(default_factory=Counter)  # races lost (DEBUG "moot")


def scan_log(path: Path) -> LogScan:
    """Count a peer log's warnings, errors, tracebacks, failed transactions and lost races;
    plain lines (``--log-format plain``, or logging's default format) or JSON lines."""
    scan = LogScan()
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return scan
    previous: tuple[str, str, str] | None = None
    for line in text.splitlines():
        level, rest, traceback = _parse(line)
        m = _LEVEL.match(line)
        if m:
            # The same record printed twice, in two formats (two handlers on the root logger):
            # counted once.
            key = (f"{m['day']} {m['time'].replace(',', '.')}", m["level"], m["rest"])
            if key == previous:
                continue
            previous = key
        if TX_FAILURE.search(line):
            scan.tx_failures.append(line.strip())
        if line.startswith("Traceback (most recent call last)") or traceback:
            scan.tracebacks += 1
        if level == "WARNING" or (level is None and _PY_WARNING.search(line)):
            scan.warnings += 1
            scan.warning_kinds[_kind(_SITE.sub("", rest))] += 1
        elif level in ("ERROR", "CRITICAL"):
            scan.errors += 1
        elif level == "DEBUG" and (moot := _MOOT.search(rest.split(": ", 1)[-1])):
            scan.moot_kinds[f"{moot['action']}: {moot['error']}"] += 1
    return scan


def _parse(line: str) -> tuple[str | None, str, bool]:
    """(level, what follows it, whether a traceback is attached) of one log line; level None
    for a line that is not a record (a traceback's lines, a library's bare print)."""
    m = _LEVEL.match(line)
    if m:
        return m["level"], m["rest"], False
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return None, line, False
        if isinstance(record, dict) and isinstance(record.get("level"), str):
            fields = record.get("fields")
            fields = fields if isinstance(fields, dict) else {}
            if record.get("event") == "log":
                rest = f"{fields.get('logger', '')}: {fields.get('message', '')}"
            else:
                rest = f"{record.get('event', '')} {json.dumps(fields, sort_keys=True)}"
            return record["level"].upper(), rest, "traceback" in fields
    return None, line, False


def _kind(message: str) -> str:
    """A warning with its particulars (hashes, addresses, numbers) blanked, to group alike."""
    message = re.sub(r"0x[0-9a-fA-F]+|\b[0-9a-f]{16,}\b", "<hex>", message)
    message = re.sub(r"\b(?:16Uiu2\w+|Qm\w{44})\b", "<peer>", message)
    message = re.sub(r"\b\d+(\.\d+)?\b", "N", message)
    return message[:160]


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _file_mb(path: Path) -> float:
    try:
        return path.stat().st_size / 1e6
    except OSError:
        return 0.0


def dir_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with suppress(OSError):
                total += (Path(root) / name).stat().st_size
    return total / 1e6


@dataclass(frozen=True)
class FailedTx:
    """A transaction to the contract that was mined and failed (status 0)."""

    block: int
    function: str
    sender: str
    gas_used: int
    gas_limit: int

    @property
    def out_of_gas(self) -> bool:
        return self.gas_used >= self.gas_limit


def failed_transactions(ledger: LedgerClient) -> list[FailedTx]:
    """Every mined transaction to the contract with status 0, from the chain itself: a lost
    race that the peer's log files as "moot" shows here too."""
    w3 = ledger.w3
    out = []
    for number in range(w3.eth.block_number + 1):
        receipts = [r for r in w3.eth.get_block_receipts(number) if r["status"] == 0]
        if not receipts:
            continue
        block: list[Any] = list(w3.eth.get_block(number, True)["transactions"])
        txs = {bytes(t["hash"]): t for t in block}
        for receipt in receipts:
            tx = txs[bytes(receipt["transactionHash"])]
            if tx.get("to") != ledger.address:
                continue
            try:
                name = ledger.contract.decode_function_input(tx["input"])[0].fn_name
            except ValueError:
                name = "unknown"
            out.append(
                FailedTx(number, name, str(tx["from"]), int(receipt["gasUsed"]), int(tx["gas"]))
            )
    return out


# --- the run --------------------------------------------------------------------------------


@dataclass
class PeerReport:
    name: str
    returncode: int | None
    stopped: bool  # still running when the run ended: stopped by the benchmark
    died_at_round: int | None  # it exited while the swarm still had rounds to finish
    log: LogScan
    data_mb: float  # its data directory (checkpoints, blobs, round keys) at the end
    log_path: Path


@dataclass
class SoakResult:
    rounds: int
    warmup_round: int
    finalized: int
    outcomes: Counter[str]  # every round the ledger opened, by outcome
    round_walls: list[int]  # seconds, RoundOpened -> RoundFinalized, finalized rounds
    peers: list[PeerReport]
    failed_txs: list[FailedTx] | None  # None: the chain could not be read at the end
    memory: dict[str, MemoryStats]  # the peers' names and ANVIL
    samples: list[Sample]
    duration_s: float
    timed_out: bool
    anvil_died: bool
    anvil_state_mb: float

    @property
    def lapses(self) -> Counter[str]:
        return Counter({k: v for k, v in self.outcomes.items() if k.startswith("lapsed")})

    @property
    def tx_failures(self) -> int:
        return sum(len(p.log.tx_failures) for p in self.peers)

    @property
    def all_exited_cleanly(self) -> bool:
        return all(p.returncode == 0 and not p.stopped for p in self.peers)


def run_soak(
    rounds: int,
    workdir: Path,
    *,
    params: Params | None = None,
    warmup_round: int | None = None,
    sample_s: float = 2.0,
    deadline_s: float | None = None,
    progress: Callable[[str], None] | None = print,
) -> SoakResult:
    """Run 4 peers on a fresh local network in ``workdir`` until ``rounds`` are finalized (or the
    deadline passes), sampling memory; everything started here is stopped before returning."""
    workdir = Path(workdir).resolve()
    warmup = default_warmup(rounds) if warmup_round is None else warmup_round
    deadline_s = default_deadline(rounds) if deadline_s is None else deadline_s
    say = progress or (lambda _: None)
    procs: list[PeerProcess] = []
    net: network.LocalnetConfig | None = None
    try:
        net = network.up(workdir, peers=PEERS, params=params or network.swarm_params())
        configs = write_peer_configs(net, workdir, rounds=rounds)
        ledger = LedgerClient(RpcChain(net.chain_url), net.contract)
        procs = [start_peer(path, verbose=True) for path in configs]
        say(f"anvil {net.anvil_pid}, peers " + ", ".join(f"{p.name} {p.pid}" for p in procs))
        loop = _watch(ledger, net.anvil_pid, procs, rounds, sample_s, deadline_s, say)
        samples, died, timed_out, anvil_died, duration = loop
        stopped = {p.name for p in procs if p.alive()}
        for p in procs:  # before reading the events: a lingering peer may still act
            stop_peer(p)
        events = [] if anvil_died else ledger.events()
        failed: list[FailedTx] | None = None
        if not anvil_died:
            try:
                failed = failed_transactions(ledger)
            except Exception as exc:  # a report without it beats no report
                say(f"could not scan the chain for failed transactions: {exc!r}")
    finally:
        for p in procs:
            with suppress(Exception):
                stop_peer(p)
        _down(workdir, net)

    outcomes: Counter[str] = Counter()
    walls: list[int] = []
    for r in build_history(events).rounds.values():
        outcomes[r.outcome] += 1
        if r.finalized_at is not None:
            walls.append(r.finalized_at - r.opened_at)
    finalized = outcomes["finalized"]
    reports = [
        PeerReport(
            name=p.name,
            returncode=p.process.returncode if p.process is not None else None,
            stopped=p.name in stopped,
            died_at_round=died.get(p.name),
            log=scan_log(p.log_path),
            data_mb=dir_mb(peer_dir(workdir, entry) / "data"),
            log_path=p.log_path,
        )
        for p, entry in zip(procs, net.peers, strict=True)
    ]
    names = [p.name for p in procs] + [ANVIL]
    return SoakResult(
        rounds=rounds,
        warmup_round=warmup,
        finalized=finalized,
        outcomes=outcomes,
        round_walls=walls,
        peers=reports,
        failed_txs=failed,
        memory={n: memory_stats(samples, n, warmup) for n in names},
        samples=samples,
        duration_s=duration,
        timed_out=timed_out,
        anvil_died=anvil_died,
        anvil_state_mb=_file_mb(workdir / "chain" / "chain-state.json"),
    )


def _watch(
    ledger: LedgerClient,
    anvil_pid: int,
    procs: list[PeerProcess],
    rounds: int,
    sample_s: float,
    deadline_s: float,
    say: Callable[[str], None],
) -> tuple[list[Sample], dict[str, int], bool, bool, float]:
    """Sample until every peer finished its rounds and exited, a deadline, or anvil's death."""
    start = time.monotonic()
    samples: list[Sample] = []
    died: dict[str, int] = {}  # peer -> the last finalized round when it was seen dead
    finalized = 0
    next_sample = start
    next_report = start + 60
    while True:
        now = time.monotonic()
        if rss_mb(anvil_pid) is None:
            say("anvil is gone: stopping the run")
            return samples, died, False, True, now - start
        with suppress(SwarmError):
            finalized = ledger.last_finalized_round()
        for p in procs:
            if p.name in died or p.alive():
                continue
            code = p.process.returncode if p.process is not None else None
            if code == 0 and finalized < rounds:  # it may have seen a round we have not yet
                with suppress(SwarmError):
                    finalized = ledger.last_finalized_round()
            if code != 0 or finalized < rounds:
                died[p.name] = finalized
                say(f"peer {p.name} exited with {code} after round {finalized}; its log ends:")
                say(log_tail(p.log_path))
        if now >= next_sample:
            rss = {p.name: m for p in procs if (m := rss_mb(p.pid)) is not None}
            if (m := rss_mb(anvil_pid)) is not None:
                rss[ANVIL] = m
            samples.append(Sample(now - start, finalized, rss))
            next_sample += sample_s
        if now >= next_report:
            mem = " ".join(f"{k}={v:.0f}MB" for k, v in samples[-1].rss_mb.items())
            say(f"{now - start:5.0f} s: {finalized}/{rounds} rounds finalized; {mem}")
            next_report += 60
        if finalized >= rounds and not any(p.alive() for p in procs):
            return samples, died, False, False, now - start
        if not any(p.alive() for p in procs):
            say(f"every peer exited with {finalized}/{rounds} rounds finalized")
            return samples, died, False, False, now - start
        if now - start > deadline_s:
            say(f"deadline of {deadline_s:.0f} s passed with {finalized}/{rounds} rounds finalized")
            return samples, died, True, False, now - start
        time.sleep(0.5)


def _down(workdir: Path, net: network.LocalnetConfig | None) -> None:
    """Stop anvil; if ``network.up`` failed before it saved its config, find the anvil it
    started by the state file in this work dir and stop that one (ours, by its PID)."""
    try:
        network.down(workdir)
        return
    except Exception:
        if net is not None:
            with suppress(OSError):
                os.kill(net.anvil_pid, signal.SIGTERM)
            return
    state = str(workdir / "chain" / "chain-state.json").encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes()
            if b"anvil" in cmdline and state in cmdline:
                os.kill(int(proc.name), signal.SIGTERM)


# --- the report -----------------------------------------------------------------------------


def _mb(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.1f}" if signed else f"{value:.0f}"


def _failed(txs: list[FailedTx] | None) -> str:
    if txs is None:
        return "n/a"
    if not txs:
        return "0"
    by_fn = Counter(t.function for t in txs)
    oog = sum(t.out_of_gas for t in txs)
    return f"{len(txs)} ({oog}): " + ", ".join(f"{k} {v}" for k, v in by_fn.most_common())


def markdown(result: SoakResult) -> str:
    r = result
    lapses = ", ".join(f"{k.removeprefix('lapsed ').strip('()')}: {v}" for k, v in r.lapses.items())
    others = {
        k: v for k, v in r.outcomes.items() if k != "finalized" and not k.startswith("lapsed")
    }
    walls = r.round_walls
    wall = f"{statistics.median(walls):.1f} s (max {max(walls)} s)" if walls else "n/a"
    dead = [f"{p.name} (round {p.died_at_round})" for p in r.peers if p.died_at_round is not None]
    status = "deadline passed" if r.timed_out else "anvil died" if r.anvil_died else "completed"
    lines = [
        "| | |",
        "|---|---|",
        f"| rounds finalized | {r.finalized} of {r.rounds} ({status}, {r.duration_s:.0f} s) |",
        f"| rounds lapsed | {sum(r.lapses.values())}" + (f" ({lapses})" if lapses else "") + " |",
    ]
    if others:
        lines.append(
            "| rounds left unfinished | " + ", ".join(f"{k}: {v}" for k, v in others.items()) + " |"
        )
    lines += [
        f"| out-of-gas / reverted transaction lines in peer logs | {r.tx_failures} |",
        f"| failed transactions on chain (out of gas) | {_failed(r.failed_txs)} |",
        f"| median round wall time (ledger) | {wall} |",
        f"| peers that died | {', '.join(dead) if dead else 'none'} |",
        "",
        "| process | exit | warnings | errors (tracebacks) | RSS after warm-up, MB | "
        "RSS at end, MB | peak, MB | growth per 100 rounds, MB | data dir, MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in r.peers:
        m = r.memory[p.name]
        lines.append(
            f"| {p.name} | {p.returncode}{' (stopped)' if p.stopped else ''} | {p.log.warnings} | "
            f"{p.log.errors} ({p.log.tracebacks}) | {_mb(m.warm_mb)} | {_mb(m.end_mb)} | "
            f"{_mb(m.peak_mb)} | {_mb(m.growth_per_100, True)} | {p.data_mb:.1f} |"
        )
    a = r.memory[ANVIL]
    lines.append(
        f"| anvil | | | | {_mb(a.warm_mb)} | {_mb(a.end_mb)} | {_mb(a.peak_mb)} | "
        f"{_mb(a.growth_per_100, True)} | {r.anvil_state_mb:.1f} |"
    )
    return "\n".join(lines)


def notable(result: SoakResult, top: int = 5) -> str:
    """The most frequent warnings and the tx failure lines, for the console."""
    out = []
    kinds: Counter[str] = Counter()
    for p in result.peers:
        kinds.update(p.log.warning_kinds)
    for kind, n in kinds.most_common(top):
        out.append(f"{n:5d} x {kind}")
    moot: Counter[str] = Counter()
    for p in result.peers:
        moot.update(p.log.moot_kinds)
    for kind, n in moot.most_common(top):
        out.append(f"{n:5d} x moot (a race lost, DEBUG): {kind}")
    for p in result.peers:
        for line in p.log.tx_failures[:5]:
            out.append(f"{p.name}: {line[:300]}")
    for t in (result.failed_txs or [])[:10]:
        oog = ", out of gas" if t.out_of_gas else ""
        out.append(
            f"failed on chain: block {t.block} {t.function} by {t.sender} "
            f"(gas {t.gas_used} of {t.gas_limit}{oog})"
        )
    return "\n".join(out)


def write_samples(result: SoakResult, path: Path) -> None:
    """The memory samples as CSV: seconds, finalized round, then one RSS column per process."""
    names = list(result.memory)
    rows = ["t_s,finalized," + ",".join(names)]
    for s in result.samples:
        cells = [f"{s.rss_mb[n]:.1f}" if n in s.rss_mb else "" for n in names]
        rows.append(f"{s.t:.1f},{s.finalized}," + ",".join(cells))
    path.write_text("\n".join(rows) + "\n")


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM to the benchmark unwinds it like ^C, so its peers and anvil are stopped."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--sample-s", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--warmup-round", type=int, help="default: max(10, rounds / 10)")
    parser.add_argument("--deadline-s", type=float, help="default: 120 + 15 s per round")
    parser.add_argument(
        "--workdir", type=Path, help="keep the network, the logs and samples.csv here"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with _sigterm_as_interrupt(), tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        result = run_soak(
            args.rounds,
            workdir,
            warmup_round=args.warmup_round,
            sample_s=args.sample_s,
            deadline_s=args.deadline_s,
        )
    if args.workdir:
        write_samples(result, args.workdir / "samples.csv")
    table = markdown(result)
    print(table)
    extra = notable(result)
    if extra:
        print("\nMost frequent warnings, and transaction failures:\n" + extra)
    if not args.no_write:
        notes = (
            f"{PEERS} hospital peers (heart task, real CKKS and libp2p on loopback, verbose "
            f"logs) run {result.rounds} rounds back to back on anvil "
            "(network.swarm_params() windows). Outcomes come from the ledger's events; "
            "warnings, errors and failed transactions from the peer logs. RSS is VmRSS, "
            f"sampled every {args.sample_s:g} s; *after warm-up* is the first sample at or "
            f"after round {result.warmup_round}, *growth* the least-squares slope of RSS over "
            "the finalized-round count across the samples after warm-up. The data dir is the "
            "peer's checkpoints, blobs and round keys (for anvil: its state file) at the end. "
            "Failed transactions on chain are receipts with status 0 (out of gas: all its gas "
            "used); a race lost after the estimate (e.g. two peers opening the next round at "
            "once) is one, and the peer's log calls it moot.\n\n"
        )
        command = "python benchmarks/soak_bench.py " + " ".join(sys.argv[1:])
        write_section("soak-bench", notes + table, command.strip())


if __name__ == "__main__":
    main()
