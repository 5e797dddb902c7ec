"""Full rounds at 36, 1M and 11.2M parameters through real peer processes: where the time, the
bytes and the memory go, per step and per role.

For each model size: a fresh local network (anvil, the contract, the hospitals; real CKKS,
libp2p on loopback, masks on as by default), one ``swarm peer run`` process per hospital,
``--rounds`` measured rounds after a warm-up round, then everything is stopped.

The three models, all real tasks that ``swarm localnet up --task-file`` runs:

36 parameters
    the bundled heart study (examples/heart): logistic regression.
~1M parameters
    the same heart study and data with ``architecture = "mlp"`` and a hidden layer wide enough
    for a million parameters (training is one epoch over a few hundred rows).
11.2M parameters
    ResNet-18 on generated image folders (two classes, 32 px, 10 training images per hospital):
    the PriMIA-size model, with a short training step, so what the table shows is the swarm's
    own overhead.

What is measured, and how:

round wall time
    RoundOpened to RoundFinalized, stamped by this script as the events arrive over anvil's
    WebSocket subscription (benchmarks.scale_bench.EventWatch).
overhead
    the round's wall time minus the slowest hospital's training time in that round (each peer's
    ``data/rounds.jsonl``).
steps
    each peer's own per-round timings (``rounds.jsonl``: training, encryption, transfer, merge,
    decryption, ledger...), as the median over the measured rounds of the role that does them:
    participants (key holders that contribute), the merge peer, the key steward.
bytes
    the sizes of the round's blobs in the peers' blob stores (an update, the aggregate) and per
    parameter.
peak RSS per role
    every peer's VmRSS sampled every 0.2 s; for each measured round, the highest sample of the
    peer holding each role between RoundOpened and RoundFinalized; the table gives the
    largest over the measured rounds.

    .venv/bin/python benchmarks/model_size_bench.py [--sizes 36 1m 11m] [--hospitals 4]
        [--rounds 2] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import write_section
from benchmarks.scale_bench import BenchError, ChainEvent, EventWatch, status_kib
from localnet import network
from localnet.peers import PeerProcess, peer_dir, start_peer, stop_peers, write_peer_configs
from tests.support.heart import heart_mlp_task
from tests.support.images import make_hospital

MIB = 2**20
RSS_EVERY_S = 0.2
SIZES = ("36", "1m", "11m")

RESNET_TASK = """\
[task]
name = "shapes/resnet18"
kind = "image-folder"
seed = 0
rounds = 1000
description = "generated shapes, ResNet-18 (11.2M parameters): the model-size benchmark"

[model]
architecture = "resnet18"

[data]
classes = ["circle", "square"]
image_size = 32
channels = 3

[training]
epochs = 1
batch_size = 4
lr = 0.001
"""


def local_task(size: str, workdir: Path, hospitals: int) -> network.LocalTask:
    workdir.mkdir(parents=True, exist_ok=True)
    if size == "36":
        return network.local_task(peers=hospitals)
    if size == "1m":
        return network.local_task(
            heart_mlp_task(workdir), network.HEART_DATA, network.HEART_SITES, peers=hospitals
        )
    if size == "11m":
        task_file = workdir / "resnet18.toml"
        task_file.write_text(RESNET_TASK)
        names = [f"site-{i + 1}" for i in range(hospitals)]
        folders = [make_hospital(workdir / "images" / n, i) for i, n in enumerate(names)]
        return network.local_task(task_file, folders, names)
    raise ValueError(f"unknown size {size!r}: one of {', '.join(SIZES)}")


# --- memory --------------------------------------------------------------------------------


class RssSampler:
    """VmRSS of each peer every :data:`RSS_EVERY_S`, with the time of the sample."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.samples: dict[int, list[tuple[float, int]]] = {pid: [] for pid in pids}
        #: wall-clock time of each sample (to line up with the peers' logs)
        self.wall: dict[int, list[float]] = {pid: [] for pid in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(RSS_EVERY_S):
            now = time.monotonic()
            for pid, samples in self.samples.items():
                with contextlib.suppress(OSError, ValueError):
                    samples.append((now, status_kib(pid, "VmRSS")))
                    self.wall[pid].append(time.time())

    def peak_kib(self, pid: int, start: float, end: float) -> int:
        return max((kib for at, kib in self.samples[pid] if start <= at <= end), default=0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# --- one size ------------------------------------------------------------------------------


@dataclass
class RoundRecord:
    round_id: int
    wall_s: float
    slowest_training_s: float
    steps: dict[str, list[float]]  # "role: phase" -> seconds of each peer in that role
    peak_rss_kib: dict[str, int]  # role -> highest RSS of a peer in that role
    roles: dict[str, str]  # peer name -> role


@dataclass
class SizeResult:
    size: str
    hospitals: int
    param_count: int = 0
    plaintext: dict[str, float] = field(default_factory=dict)
    rounds: list[RoundRecord] = field(default_factory=list)
    update_bytes: int = 0
    aggregate_bytes: int = 0
    error: str = ""


def _role_key(role: str) -> str:
    return {"merge peer": "merge peer", "key steward": "key steward"}.get(role, "participant")


class Run:
    def __init__(
        self, size: str, hospitals: int, rounds: int, timeout: float, keep: Path | None = None
    ) -> None:
        self.keep = keep
        self.size = size
        self.hospitals = hospitals
        self.rounds = rounds
        self.deadline = time.monotonic() + timeout
        self.procs: list[PeerProcess] = []
        self.result = SizeResult(size, hospitals)

    def __call__(self) -> SizeResult:
        with tempfile.TemporaryDirectory(prefix="size-bench-") as tmp:
            workdir = Path(tmp)
            watch: EventWatch | None = None
            sampler: RssSampler | None = None
            try:
                task = local_task(self.size, workdir / "task", self.hospitals)
                self.result.param_count = task.fingerprint.param_count
                params = network.swarm_params(
                    fingerprint=task.fingerprint, hospitals=len(task.hospitals)
                )
                net = network.up(workdir / "net", params=params, task=task)
                self._say(f"network up ({self.result.param_count:,} parameters)")
                watch = EventWatch(net.chain_url, net.contract)
                configs = write_peer_configs(net, workdir / "net", rounds=0)
                self.procs = [start_peer(path, verbose=False) for path in configs]
                sampler = RssSampler([p.pid for p in self.procs])
                finalized = self._wait_rounds(watch, self.rounds + 1)
                self._wait_round_logs(net, workdir / "net", finalized[-1].round_id)
                sampler.stop()
                stop_peers(self.procs)
                self._collect(net, workdir / "net", watch.events(), finalized[1:], sampler)
                if self.keep is not None:
                    self._keep(net, workdir / "net", sampler)
            except Exception as exc:
                self.result.error = f"{type(exc).__name__}: {exc}"
                for p in self.procs[:2]:
                    with contextlib.suppress(OSError):
                        tail = p.log_path.read_text(errors="replace").splitlines()[-15:]
                        print(f"--- {p.name}\n" + "\n".join(tail), file=sys.stderr)
            finally:
                if sampler is not None:
                    sampler.stop()
                if watch is not None:
                    watch.close()
                stop_peers(self.procs)
                with contextlib.suppress(Exception):
                    network.down(workdir / "net")
        return self.result

    def _say(self, what: str) -> None:
        print(f"[{self.size} x {self.hospitals}] {what}", file=sys.stderr, flush=True)

    def _wait_rounds(self, watch: EventWatch, count: int) -> list[ChainEvent]:
        """The first ``count`` RoundFinalized events."""
        last_seen = 0
        while True:
            if watch.error is not None:
                raise BenchError(f"the event subscription failed: {watch.error}")
            finalized = [e for e in watch.events() if e.name == "RoundFinalized"]
            if len(finalized) > last_seen:
                last_seen = len(finalized)
                self._say(f"round {finalized[-1].round_id} finalized")
            if len(finalized) >= count:
                return finalized[:count]
            if time.monotonic() > self.deadline:
                raise BenchError(f"timed out with {len(finalized)} of {count} rounds finalized")
            dead = [p.name for p in self.procs if not p.alive()]
            if dead:
                raise BenchError(f"peer(s) died: {', '.join(dead)}")
            watch.wait(1.0)

    def _keep(self, net: network.LocalnetConfig, workdir: Path, sampler: RssSampler) -> None:
        """Each peer's log and RSS samples (wall-clock time, KiB) under ``--keep``."""
        assert self.keep is not None
        folder = self.keep / f"{self.size}x{self.hospitals}"
        folder.mkdir(parents=True, exist_ok=True)
        by_dir = {p.config_path.parent.resolve(): p.pid for p in self.procs}
        for entry in net.peers:
            source = peer_dir(workdir, entry)
            pid = by_dir[source.resolve()]
            name = source.name
            (folder / f"{name}.log").write_bytes((source / "peer.log").read_bytes())
            rounds = source / "data" / "rounds.jsonl"
            if rounds.exists():
                (folder / f"{name}.rounds.jsonl").write_bytes(rounds.read_bytes())
            series = zip(sampler.wall[pid], (kib for _, kib in sampler.samples[pid]), strict=False)
            (folder / f"{name}.rss.tsv").write_text(
                "".join(f"{at:.2f}\t{kib}\n" for at, kib in series)
            )

    def _wait_round_logs(self, net: network.LocalnetConfig, workdir: Path, round_id: int) -> None:
        """Until every peer has written its log line of ``round_id`` (a peer writes it once it
        holds the finalized model: the merge peer fetches it first)."""
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            missing = []
            for entry in net.peers:
                path = peer_dir(workdir, entry) / "data" / "rounds.jsonl"
                text = path.read_text() if path.exists() else ""
                if f'"round": {round_id},' not in text:
                    missing.append(entry.name)
            if not missing:
                return
            time.sleep(0.5)
        self._say(f"no log line of round {round_id} from: {', '.join(missing)}")

    def _collect(
        self,
        net: network.LocalnetConfig,
        workdir: Path,
        events: list[ChainEvent],
        finalized: list[ChainEvent],
        sampler: RssSampler,
    ) -> None:
        opened = {e.round_id: e for e in events if e.name == "RoundOpened"}
        logs: dict[str, dict[int, dict[str, object]]] = {}
        pid_by_dir = {p.config_path.parent.resolve(): p.pid for p in self.procs}
        pid_of: dict[str, int] = {}
        for entry in net.peers:
            folder = peer_dir(workdir, entry)
            pid_of[entry.name] = pid_by_dir[folder.resolve()]
            path = folder / "data" / "rounds.jsonl"
            records = [json.loads(line) for line in path.read_text().splitlines()]
            logs[entry.name] = {int(r["round"]): r for r in records if r["outcome"] == "finalized"}
        for fin in finalized:
            start = opened[fin.round_id].at
            steps: dict[str, list[float]] = defaultdict(list)
            peaks: dict[str, int] = {}
            roles: dict[str, str] = {}
            training = [0.0]
            for name, by_round in logs.items():
                record = by_round.get(fin.round_id)
                if record is None:
                    continue
                role = _role_key(str(record["role"]))
                roles[name] = role
                timings = record["timings_s"]
                assert isinstance(timings, dict)
                training.append(float(timings.get("training", 0.0)))
                for phase, seconds in timings.items():
                    steps[f"{role}: {phase}"].append(float(seconds))
                peak = sampler.peak_kib(pid_of[name], start, fin.at)
                peaks[role] = max(peaks.get(role, 0), peak)
            self.result.rounds.append(
                RoundRecord(fin.round_id, fin.at - start, max(training), steps, peaks, roles)
            )
        self._blob_sizes(net, workdir, [f.round_id for f in finalized])

    def _blob_sizes(
        self, net: network.LocalnetConfig, workdir: Path, round_ids: Sequence[int]
    ) -> None:
        updates: list[int] = []
        aggregates: list[int] = []
        for entry in net.peers:
            blobs = peer_dir(workdir, entry) / "data" / "blobs"
            for kind, sizes in (("update", updates), ("aggregate", aggregates)):
                for path in (blobs / kind).glob("*.blob") if (blobs / kind).is_dir() else ():
                    if int(path.name.split("-", 1)[0]) in round_ids:
                        sizes.append(path.stat().st_size)
        # the merge peer's own update never leaves it; the largest update is a participant's
        self.result.update_bytes = max(updates, default=0)
        self.result.aggregate_bytes = max(aggregates, default=0)


# --- the plaintext baseline --------------------------------------------------------------


def plaintext_fedavg(hospitals: int, param_count: int) -> dict[str, float]:
    """What a plaintext float32 FedAvg round moves, over the same transport: ``hospitals - 1``
    node processes push a float32 model (4 bytes per parameter) at once to one (the
    aggregator), which then offers the average (one float32 model) and every other fetches it.
    Warm libp2p connections, the bulk channel, disk stores, as in a swarm round; no ledger, no
    training, no arithmetic (a mean of float32 arrays is milliseconds). Seconds from the first
    push to the last fetch."""
    from benchmarks.p2p_bench import check, start_nodes, stop_nodes

    size = 4 * param_count
    names = ["aggregator"] + [f"hospital{i}" for i in range(1, hospitals)]
    with tempfile.TemporaryDirectory(prefix="fedavg-bench-") as tmp:
        nodes = start_nodes(Path(tmp), names, max_push_bytes=2 * size)
        try:
            hub, others = nodes["aggregator"], [nodes[n] for n in names[1:]]
            for node in others:
                check(node.request("status", of=hub.address))
            began = time.monotonic()
            pushes = [
                (node, node.send("push", to=hub.address, round=1, size=size, seed=i + 1))
                for i, node in enumerate(others)
            ]
            for node, command in pushes:
                check(node.result(command, timeout=900))
            pushed = time.monotonic()
            digest = check(hub.request("offer", kind="aggregate", round=1, size=size, seed=99))[
                "digest"
            ]
            fetches = [
                (
                    node,
                    node.send(
                        "fetch",
                        kind="aggregate",
                        **{"from": hub.address},
                        round=1,
                        digest=digest,
                        max_size=2 * size,
                    ),
                )
                for node in others
            ]
            for node, command in fetches:
                check(node.result(command, timeout=900))
            ended = time.monotonic()
        finally:
            stop_nodes(nodes)
    return {"push_s": pushed - began, "fetch_s": ended - pushed, "total_s": ended - began}


# --- the merge peer's memory while it merges ---------------------------------------------


def _log_time(line: str) -> float:
    return dt.datetime.fromisoformat(line[:23]).replace(tzinfo=dt.UTC).timestamp()


def merge_phase_peaks(kept: Path) -> list[tuple[str, int, str, int, int]]:
    """From a ``--keep`` folder: for each round and its merge peer, the RSS (MiB) right after
    its own commit and the highest RSS from then until its aggregate was submitted: what
    merging costs, apart from what the same process does as a key holder of the round before
    (a peer still decrypting the last round may already merge the next)."""
    out = []
    for folder in sorted(p for p in kept.iterdir() if p.is_dir()):
        roles: dict[int, str] = {}
        for path in folder.glob("*.rounds.jsonl"):
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if record["role"] == "merge peer":
                    roles[int(record["round"])] = path.name.split(".")[0]
        for round_id, name in sorted(roles.items()):
            samples = _samples(folder / f"{name}.rss.tsv")
            marks: dict[str, float] = {}
            for line in (folder / f"{name}.log").read_text().splitlines():
                for key in ("committed", "aggregate submitted"):
                    if f"] {key} round={round_id} " in line + " " and key not in marks:
                        marks[key] = _log_time(line)
            if len(marks) < 2:
                continue
            after = [k for at, k in samples if marks["committed"] <= at <= marks["committed"] + 3]
            during = [
                k
                for at, k in samples
                if marks["committed"] <= at <= marks["aggregate submitted"] + 1
            ]
            if after and during:
                out.append((folder.name, round_id, name, min(after) // 1024, max(during) // 1024))
    return out


def _samples(path: Path) -> list[tuple[float, int]]:
    rows = (line.split("\t") for line in path.read_text().splitlines() if line)
    return [(float(at), int(kib)) for at, kib in rows]


# --- the table -----------------------------------------------------------------------------

STEPS = (
    ("slowest hospital's training", None),
    ("participant encrypts", "participant: encryption"),
    ("merge peer's own update", "merge peer: encryption"),
    ("participant pushes its update", "participant: push"),
    ("merge", "merge peer: merge"),
    ("key holder fetches the aggregate", "participant: aggregate fetch"),
    ("key holder decrypts", "participant: decryption"),
    ("key steward makes the round key", "key steward: keys"),
    ("ledger (median peer)", "participant: ledger"),
)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _step(r: SizeResult, key: str | None) -> float:
    if key is None:
        return _median([x.slowest_training_s for x in r.rounds])
    per_round = [_median(x.steps[key]) for x in r.rounds if x.steps.get(key)]
    return _median(per_round)


def table(results: Sequence[SizeResult]) -> str:
    head = "| | " + " | ".join(
        f"{r.param_count:,} params, {r.hospitals} hospitals" for r in results
    )
    lines = [head + " |", "|---|" + "---:|" * len(results)]

    def row(label: str, cells: Sequence[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("rounds measured", [str(len(r.rounds)) if not r.error else r.error for r in results])
    row(
        "round wall time, median (s)",
        [f"{_median([x.wall_s for x in r.rounds]):.2f}" for r in results],
    )
    row(
        "overhead: wall minus slowest training, median (s)",
        [f"{_median([x.wall_s - x.slowest_training_s for x in r.rounds]):.2f}" for r in results],
    )
    for label, key in STEPS:
        row(f"{label} (s)", [f"{_step(r, key):.3f}" for r in results])
    row("update blob (MB)", [f"{r.update_bytes / 1e6:.2f}" for r in results])
    row(
        "update, bytes/param",
        [f"{r.update_bytes / max(r.param_count, 1):.2f}" for r in results],
    )
    row("aggregate blob (MB)", [f"{r.aggregate_bytes / 1e6:.2f}" for r in results])
    row(
        "aggregate a key holder downloads, bytes/param",
        [f"{r.aggregate_bytes / max(r.param_count, 1):.2f}" for r in results],
    )
    row(
        "plaintext float32 FedAvg over the same transport: all pushes, then all fetches (s)",
        [
            f"{r.plaintext['push_s']:.2f} + {r.plaintext['fetch_s']:.2f}" if r.plaintext else "-"
            for r in results
        ],
    )
    for role in ("merge peer", "key steward", "participant"):
        row(
            f"peak RSS, {role} (MiB)",
            [
                f"{max((x.peak_rss_kib.get(role, 0) for x in r.rounds), default=0) / 1024:.0f}"
                for r in results
            ],
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=SIZES)
    parser.add_argument("--hospitals", type=int, nargs="+", default=[4])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--no-plaintext", action="store_true", help="skip the plaintext FedAvg transfer baseline"
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="copy each peer's log and RSS samples here"
    )
    parser.add_argument(
        "--merge-memory",
        type=Path,
        default=None,
        help="only print the merge peers' memory while merging, from a --keep folder",
    )
    args = parser.parse_args()
    if args.merge_memory is not None:
        print(
            "| run | round | merge peer | RSS after its commit (MiB) | peak while merging (MiB) |"
        )
        print("|---|---:|---|---:|---:|")
        for run, round_id, name, after, peak in merge_phase_peaks(args.merge_memory):
            print(f"| {run} | {round_id} | {name} | {after} | {peak} |")
        return
    results = []
    for size in args.sizes:
        for hospitals in args.hospitals:
            result = Run(size, hospitals, args.rounds, args.timeout, args.keep)()
            if not result.error and not args.no_plaintext:
                result.plaintext = plaintext_fedavg(hospitals, result.param_count)
            results.append(result)
            print(table([result]), flush=True)
    text = table(results)
    print(text)
    if not args.no_write:
        notes = (
            "Full rounds through real peer processes on one machine (anvil, libp2p on loopback, "
            "real CKKS, masks on): each step as the peers timed it (median over the measured "
            "rounds of the peers in that role), the round's wall time from the ledger's events "
            "as they arrived, blob sizes from the peers' stores, peak RSS per role sampled every "
            "0.2 s. All hospitals share the machine's 2 cores, so steps that run at once slow "
            "each other down.\n\n"
        )
        command = "python benchmarks/model_size_bench.py " + " ".join(sys.argv[1:])
        write_section("model-size-bench", notes + text, command.strip())


if __name__ == "__main__":
    main()
