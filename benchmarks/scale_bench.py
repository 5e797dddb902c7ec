"""Round time, CPU and memory of a local swarm as it grows: 4, 10, 20, 30 peers by default.

For each peer count: a fresh local network (anvil, the contract, N admitted hospitals; the heart
task, real CKKS), N peer processes (`swarm peer run`, exactly as ``localnet`` starts them), full
rounds, then an idle phase, then everything is stopped. With more peers than the task's four
hospitals, sites repeat: the timing is what this measures, not accuracy.

What is measured, and how (all from outside the peers: nothing here asks a peer anything):

round time
    The bench subscribes to the ledger contract's logs over anvil's WebSocket (``eth_subscribe``
    on the HTTP port) before any peer starts, and stamps each RoundFinalized with its own
    monotonic clock as it arrives (milliseconds; block timestamps have 1 s resolution). A round's
    time is the gap between two consecutive RoundFinalized. Warm-up: every round up to and
    including the first finalized round that all N peers joined (peers start one after another;
    the first round usually runs without the late ones); the ``--rounds`` rounds after it are
    measured. A round that lapsed in between counts in its gap (and is reported). At the end,
    the rounds the subscription saw opened and finalized are checked against the node's log
    index (``eth_getLogs``): a missed event fails the run rather than skew it.
CPU per peer
    utime+stime of each peer process (``/proc/PID/stat``) at the RoundFinalized that starts the
    measurement and at the one that ends it, over the wall time between them, as % of one core:
    median and max over the peers. The same for anvil and for this script (its WebSocket
    reader and memory sampler).
idle CPU
    After the measured rounds the admin sets ``minPeers`` to N + 1 and a long join window. The
    first round opened with those parameters (one more ordinary round runs first when a peer
    opened it before the change was mined) cannot proceed: every peer joins it and trains, and
    then nothing can happen until its join deadline (too few peers to close the window). If
    any event of the ledger arrives while idle CPU is measured, the run fails. After all N have
    joined and ``IDLE_SETTLE_S`` more, each peer's CPU is measured over ``--idle-s`` seconds.
    Peers are then up, connected and watching the ledger (anvil still mines a block every 3 s),
    with nothing to do.
memory
    Per peer: peak RSS (``VmHWM``, ``/proc/PID/status``) read just before the peers are stopped;
    median and max over peers. Federation (N peers + anvil): the highest sum of RSS (``VmRSS``),
    sampled every 0.5 s from peer start to stop, and the highest sum of PSS
    (``/proc/PID/smaps_rollup``; shared pages split between the processes that map them).
    Reading smaps_rollup costs ~7 ms per process, so PSS is sampled every ``PSS_EVERY_S`` and
    whenever the RSS sum reaches a new high (more than 1 % above the last PSS sample's), not
    every 0.5 s. MiB = 2**20 bytes.

    .venv/bin/python benchmarks/scale_bench.py [--peers 4 10 20 30] [--rounds 10] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import os
import resource
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests
from eth_typing import ABIEvent
from eth_utils import event_abi_to_log_topic
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import ClientConnection, connect

from benchmarks.report import write_section
from localnet import network
from localnet.network import MIN_PEERS, LocalnetConfig
from localnet.peers import PeerProcess, start_peer, stop_peers, write_peer_configs
from swarm.identity import load_keystore
from swarm.ledger import LedgerClient, RpcChain
from swarm.ledger.artifacts import load_artifact

T = TypeVar("T")

#: the ledger's events the bench follows
WATCHED = ("RoundOpened", "Joined", "RoundFinalized", "RoundLapsed")
#: seconds after the last peer joined the idle round before its CPU is measured (training and
#: the join's aftermath are over by then)
IDLE_SETTLE_S = 5.0
#: federation memory: RSS sampled this often; PSS (expensive to read) at least this often
RSS_EVERY_S = 0.5
PSS_EVERY_S = 5.0
#: most contributors a round may have (ckks parameter set 1), less the idle phase's one more
MAX_PEERS = 63
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 2**20


class BenchError(Exception):
    """A run that cannot finish: a peer died, anvil went away, a wait timed out."""


# --- the ledger's events, as they arrive ----------------------------------------------------


@dataclass(frozen=True)
class ChainEvent:
    at: float  # time.monotonic() when the bench received it
    name: str
    round_id: int
    block: int
    account: str = ""  # Joined
    min_peers: int = 0  # RoundOpened


class EventWatch:
    """The ledger contract's :data:`WATCHED` events over a WebSocket subscription, each stamped
    on arrival. The subscription is confirmed before the constructor returns, so nothing
    emitted after it is missed."""

    def __init__(self, http_url: str, contract: str) -> None:
        abi = load_artifact("SwarmLedger").abi
        self._names = {
            "0x" + event_abi_to_log_topic(cast(ABIEvent, e)).hex().removeprefix("0x"): e["name"]
            for e in abi
            if e.get("type") == "event" and e["name"] in WATCHED
        }
        self._events: list[ChainEvent] = []
        self._cond = threading.Condition()
        self.error: BaseException | None = None
        url = "ws://" + http_url.split("://", 1)[1]
        self._stack = contextlib.ExitStack()
        self._ws: ClientConnection = self._stack.enter_context(
            connect(url, open_timeout=10, max_size=None)
        )
        request = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_subscribe",
            "params": ["logs", {"address": contract, "topics": [list(self._names)]}],
        }
        self._ws.send(json.dumps(request))
        reply = json.loads(self._ws.recv(timeout=10))
        if "result" not in reply:
            self._stack.close()
            raise BenchError(f"eth_subscribe refused: {reply}")
        self._thread = threading.Thread(target=self._read, name="event-watch", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for message in self._ws:
                at = time.monotonic()
                log = json.loads(message).get("params", {}).get("result")
                if not isinstance(log, dict) or log.get("removed"):
                    continue
                event = self._decode(at, log)
                if event is not None:
                    with self._cond:
                        self._events.append(event)
                        self._cond.notify_all()
        except ConnectionClosedOK:
            pass
        except Exception as exc:  # reported to the waiting thread: the run cannot go on
            self.error = exc
        finally:
            with self._cond:
                self._cond.notify_all()

    def _decode(self, at: float, log: dict[str, Any]) -> ChainEvent | None:
        topics = log["topics"]
        name = self._names.get(topics[0].lower())
        if name is None:
            return None
        data = bytes.fromhex(log["data"].removeprefix("0x"))
        return ChainEvent(
            at=at,
            name=name,
            round_id=int(topics[1], 16),
            block=int(log["blockNumber"], 16),
            account="0x" + topics[2][-40:] if name == "Joined" else "",
            # RoundOpened(round, baseModel, paramsVersion, minPeers, joinDeadline, by)
            min_peers=int.from_bytes(data[64:96], "big") if name == "RoundOpened" else 0,
        )

    def topic(self, name: str) -> str:
        return next(topic for topic, n in self._names.items() if n == name)

    def events(self) -> list[ChainEvent]:
        with self._cond:
            return list(self._events)

    def wait(self, timeout: float) -> None:
        """Until the next event arrives (or ``timeout``)."""
        with self._cond:
            self._cond.wait(timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.close()
        self._thread.join(timeout=5)


# --- /proc -------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far (its threads included), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # stat fields 14 and 15


def status_kib(pid: int, key: str) -> int:
    """A ``kB`` line of ``/proc/PID/status`` (VmRSS, VmHWM); 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    peers: tuple[float, ...]
    anvil: float
    bench: float


def snapshot(peer_pids: Sequence[int], anvil_pid: int) -> CpuSnapshot:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return CpuSnapshot(
        at=time.monotonic(),
        peers=tuple(cpu_seconds(pid) for pid in peer_pids),
        anvil=cpu_seconds(anvil_pid),
        bench=own.ru_utime + own.ru_stime,
    )


@dataclass(frozen=True)
class CpuUse:
    """% of one core over an interval."""

    peers: list[float]
    anvil: float
    bench: float


def cpu_between(a: CpuSnapshot, b: CpuSnapshot) -> CpuUse:
    wall = b.at - a.at
    return CpuUse(
        peers=[100 * (y - x) / wall for x, y in zip(a.peers, b.peers, strict=True)],
        anvil=100 * (b.anvil - a.anvil) / wall,
        bench=100 * (b.bench - a.bench) / wall,
    )


class MemorySampler:
    """The federation's summed RSS every :data:`RSS_EVERY_S` and summed PSS (see the module's
    docstring for when), keeping the highest of each, in a background thread."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.peak_rss_kib = 0
        self.peak_pss_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_pss = 0.0
        rss_at_pss = 0
        while True:
            rss = sum(status_kib(pid, "VmRSS") for pid in self.pids)
            self.peak_rss_kib = max(self.peak_rss_kib, rss)
            self.samples += 1
            now = time.monotonic()
            if now >= next_pss or rss > rss_at_pss * 1.01:
                pss = sum(pss_kib(pid) for pid in self.pids)
                self.peak_pss_kib = max(self.peak_pss_kib, pss)
                next_pss, rss_at_pss = now + PSS_EVERY_S, max(rss_at_pss, rss)
            if self._stop.wait(RSS_EVERY_S):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# --- one run -------------------------------------------------------------------------------


@dataclass
class Result:
    peers: int
    warmup_rounds: int = 0
    round_s: list[float] = field(default_factory=list)
    lapsed: int = 0
    fewest_joined: int = 0  # fewest peers that joined a measured round
    rounds_cpu: CpuUse | None = None
    idle_cpu: CpuUse | None = None
    idle_s: float = 0.0
    hwm_kib: list[int] = field(default_factory=list)
    peak_rss_kib: int = 0
    peak_pss_kib: int = 0
    error: str = ""


class Run:
    """One peer count: network up, peers, warm-up, measured rounds, idle, teardown."""

    def __init__(
        self,
        peers: int,
        rounds: int,
        idle_s: float,
        *,
        timeout: float,
        stall_s: float,
        mask_threshold_pct: int | None = None,
    ) -> None:
        self.n = peers
        self.mask_threshold_pct = mask_threshold_pct
        self.rounds = rounds
        self.idle_s = idle_s
        self.began = time.monotonic()
        self.deadline = self.began + timeout
        self.stall_s = stall_s
        self.result = Result(peers)
        self.procs: list[PeerProcess] = []
        self.watch: EventWatch | None = None
        self.workdir = Path()

    def __call__(self) -> Result:
        with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
            self.workdir = Path(tmp)
            sampler: MemorySampler | None = None
            try:
                params = network.swarm_params()
                if self.mask_threshold_pct is not None:
                    params = dataclasses.replace(params, mask_threshold_pct=self.mask_threshold_pct)
                net = network.up(self.workdir, peers=self.n, params=params)
                self._say("network up")
                self.watch = EventWatch(net.chain_url, net.contract)
                configs = write_peer_configs(net, self.workdir, rounds=0)  # 0: no target
                self.procs = [start_peer(path, verbose=False) for path in configs]
                sampler = MemorySampler([p.pid for p in self.procs] + [net.anvil_pid])
                self._measure(net)
                self.result.hwm_kib = [status_kib(p.pid, "VmHWM") for p in self.procs]
            except Exception as exc:  # this peer count failed; the others may still run
                self.result.error = f"{type(exc).__name__}: {exc}"
                self._print_logs()
            finally:
                if sampler is not None:
                    sampler.stop()
                    self.result.peak_rss_kib = sampler.peak_rss_kib
                    self.result.peak_pss_kib = sampler.peak_pss_kib
                self._teardown()
        return self.result

    def _measure(self, net: LocalnetConfig) -> None:
        assert self.watch is not None
        pids = [p.pid for p in self.procs]
        r = self.result

        # Warm-up: up to the first finalized round that every peer joined.
        def full_round() -> ChainEvent | None:
            joined = self._joined()
            return next(
                (
                    e
                    for e in self._events("RoundFinalized")
                    if len(joined.get(e.round_id, ())) == self.n
                ),
                None,
            )

        start = self._wait("a round that all peers joined", full_round)
        cpu_start = snapshot(pids, net.anvil_pid)
        r.warmup_rounds = start.round_id
        self._say(f"warm-up done: round {start.round_id} finalized with all peers")

        def measured() -> list[ChainEvent] | None:
            done = [e for e in self._events("RoundFinalized") if e.round_id > start.round_id]
            return done[: self.rounds] if len(done) >= self.rounds else None

        finals = [start, *self._wait(f"{self.rounds} measured rounds", measured)]
        cpu_end = snapshot(pids, net.anvil_pid)
        end = finals[-1]
        r.round_s = [b.at - a.at for a, b in itertools.pairwise(finals)]
        self._check_complete(net, end.round_id)
        finalized = {e.round_id for e in self._events("RoundFinalized")}
        r.lapsed = sum(1 for rid in range(start.round_id + 1, end.round_id) if rid not in finalized)
        joined = self._joined()
        r.fewest_joined = min(len(joined.get(e.round_id, ())) for e in finals[1:])
        r.rounds_cpu = cpu_between(cpu_start, cpu_end)
        self._say(f"{self.rounds} rounds measured, median {_median(r.round_s):.3f} s")

        # Idle: a round nobody can close before its (distant) join deadline.
        join_window = int(IDLE_SETTLE_S + self.idle_s + 120 + 2 * self.n)
        admin = LedgerClient(
            RpcChain(net.chain_url),
            net.contract,
            load_keystore(Path(net.admin_keystore), net.password()),
        )
        params = admin.params()
        admin.set_params(dataclasses.replace(params, min_peers=self.n + 1, join_window=join_window))

        def idle_round() -> ChainEvent | None:
            opened = [e for e in self._events("RoundOpened") if e.min_peers == self.n + 1]
            if not opened:
                return None
            rid = opened[0].round_id
            joins = [e for e in self._events("Joined") if e.round_id == rid]
            return joins[-1] if len({e.account for e in joins}) == self.n else None

        last_join = self._wait("the idle round to open and all peers to join it", idle_round)
        self._say(f"idle round {last_join.round_id} joined by all; measuring idle CPU")
        self._sleep(max(0.0, last_join.at + IDLE_SETTLE_S - time.monotonic()))
        cpu_idle = snapshot(pids, net.anvil_pid)
        self._sleep(self.idle_s)
        r.idle_cpu = cpu_between(cpu_idle, snapshot(pids, net.anvil_pid))
        r.idle_s = self.idle_s
        moved = [e for e in self.watch.events() if e.at > cpu_idle.at]
        if moved:
            raise BenchError(f"the ledger moved during the idle phase: {moved}")

    # --- helpers ---------------------------------------------------------------------------

    def _say(self, what: str) -> None:
        print(f"  {self.n} peers, {time.monotonic() - self.began:6.1f} s: {what}", flush=True)

    def _events(self, name: str) -> list[ChainEvent]:
        assert self.watch is not None
        return [e for e in self.watch.events() if e.name == name]

    def _joined(self) -> dict[int, set[str]]:
        joined: dict[int, set[str]] = {}
        for e in self._events("Joined"):
            joined.setdefault(e.round_id, set()).add(e.account)
        return joined

    def _check_complete(self, net: LocalnetConfig, last_round: int) -> None:
        """The subscription saw every round opened and finalized up to ``last_round`` (compared
        with the node's own log index, read over HTTP): a missed RoundFinalized would make one
        measured round look like two."""
        assert self.watch is not None
        for name in ("RoundOpened", "RoundFinalized"):
            query = {
                "address": net.contract,
                "fromBlock": "0x0",
                "topics": [self.watch.topic(name)],
            }
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [query]}
            logs = requests.post(net.chain_url, json=body, timeout=30).json()["result"]
            on_chain = {int(log["topics"][1], 16) for log in logs}
            seen = {e.round_id for e in self._events(name)}
            missed = {rid for rid in on_chain - seen if rid <= last_round}
            if missed:
                raise BenchError(f"the subscription missed {name} of round(s) {sorted(missed)}")

    def _check(self) -> None:
        assert self.watch is not None
        if self.watch.error is not None:
            raise BenchError(f"the event subscription broke: {self.watch.error!r}")
        dead = [p.name for p in self.procs if not p.alive()]
        if dead:
            raise BenchError(f"peer(s) exited: {', '.join(dead)}")

    def _wait(self, what: str, ready: Callable[[], T | None]) -> T:
        assert self.watch is not None
        while True:
            self._check()
            found = ready()
            if found is not None:
                return found
            now = time.monotonic()
            if now > self.deadline:
                raise BenchError(f"timed out waiting for {what}")
            events = self.watch.events()
            quiet = now - (events[-1].at if events else self.began)
            if quiet > self.stall_s:
                raise BenchError(f"no ledger event for {quiet:.0f} s waiting for {what}")
            self.watch.wait(0.5)

    def _sleep(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            self._check()
            time.sleep(min(left, 1.0))

    def _print_logs(self, lines: int = 15) -> None:
        dead = [p for p in self.procs if not p.alive()]
        for p in (dead or self.procs[:1])[:3]:
            with contextlib.suppress(OSError):
                tail = p.log_path.read_text(errors="replace").splitlines()[-lines:]
                print(f"--- {p.name} ({p.log_path.name}, last {lines} lines)", file=sys.stderr)
                print("\n".join(tail), file=sys.stderr)

    def _teardown(self) -> None:
        if self.watch is not None:
            self.watch.close()
        stop_peers(self.procs)
        with contextlib.suppress(Exception):
            network.down(self.workdir)
        # Anything of ours still there (network.up failed half way, a peer that ignored
        # SIGKILL's reaping): processes whose command line names this run's folder.
        mine = str(self.workdir).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if mine in (proc / "cmdline").read_bytes():
                    os.kill(int(proc.name), signal.SIGKILL)


# --- the table -----------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _cpu(pick: Callable[[Result], CpuUse | None], f: Callable[[CpuUse], float]) -> Any:
    def cell(r: Result) -> float:
        use = pick(r)
        return f(use) if use is not None else float("nan")

    return cell


ROWS: list[tuple[str, Callable[[Result], float], str]] = [
    ("warm-up rounds (until all peers joined one)", lambda r: r.warmup_rounds, "{:.0f}"),
    ("measured rounds", lambda r: len(r.round_s), "{:.0f}"),
    ("round time, median (s)", lambda r: _median(r.round_s), "{:.3f}"),
    ("round time, min (s)", lambda r: min(r.round_s, default=float("nan")), "{:.3f}"),
    ("round time, max (s)", lambda r: max(r.round_s, default=float("nan")), "{:.3f}"),
    ("round time per peer, median (s)", lambda r: _median(r.round_s) / r.peers, "{:.3f}"),
    ("rounds lapsed while measured (in the gaps)", lambda r: r.lapsed, "{:.0f}"),
    ("fewest peers in a measured round", lambda r: r.fewest_joined, "{:.0f}"),
    (
        "CPU per peer in rounds, median (% core)",
        _cpu(lambda r: r.rounds_cpu, lambda c: _median(c.peers)),
        "{:.1f}",
    ),
    (
        "CPU per peer in rounds, max (% core)",
        _cpu(lambda r: r.rounds_cpu, lambda c: max(c.peers)),
        "{:.1f}",
    ),
    (
        "CPU of all peers in rounds (cores)",
        _cpu(lambda r: r.rounds_cpu, lambda c: sum(c.peers) / 100),
        "{:.2f}",
    ),
    ("CPU of anvil in rounds (% core)", _cpu(lambda r: r.rounds_cpu, lambda c: c.anvil), "{:.1f}"),
    (
        "CPU of this bench in rounds (% core)",
        _cpu(lambda r: r.rounds_cpu, lambda c: c.bench),
        "{:.1f}",
    ),
    (
        "CPU per idle peer, median (% core)",
        _cpu(lambda r: r.idle_cpu, lambda c: _median(c.peers)),
        "{:.2f}",
    ),
    (
        "CPU per idle peer, max (% core)",
        _cpu(lambda r: r.idle_cpu, lambda c: max(c.peers)),
        "{:.2f}",
    ),
    ("CPU of anvil, idle (% core)", _cpu(lambda r: r.idle_cpu, lambda c: c.anvil), "{:.2f}"),
    (
        "peer peak RSS (VmHWM), median (MiB)",
        lambda r: _median(r.hwm_kib) * 1024 / MIB,
        "{:.0f}",
    ),
    (
        "peer peak RSS (VmHWM), max (MiB)",
        lambda r: max(r.hwm_kib, default=0) * 1024 / MIB or float("nan"),
        "{:.0f}",
    ),
    (
        "federation peak RSS, peers + anvil (MiB)",
        lambda r: r.peak_rss_kib * 1024 / MIB or float("nan"),
        "{:.0f}",
    ),
    (
        "federation peak PSS, peers + anvil (MiB)",
        lambda r: r.peak_pss_kib * 1024 / MIB or float("nan"),
        "{:.0f}",
    ),
]


def table(results: Sequence[Result]) -> str:
    lines = [
        "| | " + " | ".join(f"{r.peers} peers" for r in results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    for label, value, fmt in ROWS:
        cells = []
        for r in results:
            if r.error:
                cells.append("failed")
                continue
            v = float(value(r))
            cells.append("n/a" if v != v else fmt.format(v))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


NOTES = """\
Full rounds of the heart task (logistic regression, real CKKS) through N peer processes and
anvil on one machine, measured from outside the peers (benchmarks/scale_bench.py's docstring has
the details). Round time: the gap between consecutive RoundFinalized events as the bench received
them over a WebSocket log subscription (ms resolution), after warm-up rounds up to the first one
every peer joined. CPU: utime+stime from /proc over the measured rounds' wall time, % of one core.
Idle: each peer's CPU over {idle_s:g} s in a round that cannot proceed (minPeers set to N + 1 by
the admin): peers up, joined and watching the ledger (a block every 3 s), nothing to do. Memory:
each peer's VmHWM; the federation's (peers + anvil) highest summed RSS, sampled every 0.5 s, and
PSS (smaps_rollup, sampled every 5 s and at each new RSS high). MiB = 2^20 bytes. With more than
four peers the four hospitals' data repeat.

"""


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the running teardown stops its peers and anvil."""
    print("terminated: stopping the peers and anvil", file=sys.stderr, flush=True)
    sys.exit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--peers", type=int, nargs="+", default=[4, 10, 20, 30])
    parser.add_argument("--rounds", type=int, default=10, help="measured rounds (after warm-up)")
    parser.add_argument("--idle-s", type=float, default=20.0, help="idle measurement, seconds")
    parser.add_argument(
        "--timeout",
        type=float,
        default=0.0,
        help="most seconds per peer count (default: 600 + peers * (20 + 10 * rounds))",
    )
    parser.add_argument(
        "--stall-s",
        type=float,
        default=300.0,
        help="give a peer count up after this long without a ledger event (default 300)",
    )
    parser.add_argument(
        "--mask-threshold-pct",
        type=int,
        default=None,
        help="the consortium's maskThresholdPct (default: the documented default, masking on; "
        "0: no masks, written to its own section, scale-bench-unmasked)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args()
    if any(not MIN_PEERS <= n <= MAX_PEERS for n in args.peers):
        parser.error(f"--peers: each between {MIN_PEERS} and {MAX_PEERS}")
    if args.rounds < 1 or args.idle_s <= 0 or args.stall_s <= 0:
        parser.error("--rounds, --idle-s and --stall-s must be positive")
    signal.signal(signal.SIGTERM, _terminated)

    results = []
    for n in args.peers:
        timeout = args.timeout or 600 + n * (20 + 10 * args.rounds)
        print(f"{n} peers: starting ({args.rounds} rounds, timeout {timeout:.0f} s)", flush=True)
        result = Run(
            n,
            args.rounds,
            args.idle_s,
            timeout=timeout,
            stall_s=args.stall_s,
            mask_threshold_pct=args.mask_threshold_pct,
        )()
        if result.error:
            print(f"{n} peers: FAILED: {result.error}", file=sys.stderr, flush=True)
        results.append(result)
    text = table(results)
    print(text)
    failed = [r.peers for r in results if r.error]
    if failed:
        print(f"failed: {failed} peers (docs/benchmarks.md not written)", file=sys.stderr)
        sys.exit(1)
    if not args.no_write:
        command = "python benchmarks/scale_bench.py " + " ".join(sys.argv[1:])
        unmasked = args.mask_threshold_pct == 0
        section = "scale-bench-unmasked" if unmasked else "scale-bench"
        notes = NOTES.format(idle_s=args.idle_s)
        if unmasked:
            notes = (
                "Without masks (maskThresholdPct 0): the same, less the all-to-all mask "
                "shares and reveals.\n\n" + notes
            )
        write_section(section, notes + text, command.strip())


if __name__ == "__main__":
    main()
