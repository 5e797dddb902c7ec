"""Goodput and latency of the peer network, next to raw TCP, between OS processes on loopback.

Measures, in one run:

* goodput of one push of 1, 10 and 100 MB between two node processes, as peers run by default:
  on the bulk session a member's earlier push left open (TLS 1.3 on its own TCP connection,
  swarm/p2p/bulk.py): the request, length-prefixed chunks, sha256 checked and stored at the
  receiver, its answer; timed inside the sending process from the call to the receiver's final
  answer;
* the same for a member's first push of 10 MB: the request on a libp2p stream (TCP + Noise +
  yamux, the membership gate, on a warm connection), then a new bulk connection;
* the same for 10 and 100 MB with the payload on the libp2p stream itself (no bulk channel:
  what a peer falls back to when the bulk port cannot be reached);
* the same payloads over raw TCP (trio, length prefix, no encryption, no hashing) between this
  process and a receiver process, alternating with the p2p transfers so both meet the same
  load;
* the latency of a small request (the status protocol) on a warm connection;
* fan-in: 10 member processes push 10 MB each at once to one merge peer: wall time from the
  first start to the last answer, and the merge peer's peak RSS;
* the merge peer's peak RSS when 4, then 8 members push a 168 MB update each at once (the
  ciphertext of an 11.2M-parameter model) into a disk blob store (received to disk, never
  whole in memory).

It also reports the CPU seconds per 100 MB on each side, which do not move with the machine's
load as wall-clock times do. Prints a markdown table and writes it into docs/benchmarks.md
between the p2p-bench markers.

    .venv/bin/python benchmarks/p2p_bench.py [--repeats 7] [--fan-in 10] [--rss-mb 168]
        [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import write_section
from localnet.anvil import free_port
from swarm.identity import Identity
from swarm.p2p.membership import member_of_identity, write_members_file
from tests.support.node import NodeProcess, make_payload

MB = 1_000_000
SIZES = (1 * MB, 10 * MB, 100 * MB)
#: also measured as a member's first push (no bulk session yet)
FIRST_PUSH_SIZE = 10 * MB


# --- raw TCP baseline ---------------------------------------------------------------------


async def _raw_server(port: int) -> None:
    """Receive length-prefixed payloads into memory and answer one byte after each."""

    async def handle(stream: trio.SocketStream) -> None:
        while True:
            header = b""
            while len(header) < 8:
                data = await stream.receive_some(8 - len(header))
                if not data:
                    return
                header += data
            (size,) = struct.unpack(">Q", header)
            cpu_start = own_cpu_seconds()
            buffer = bytearray(size)
            got = 0
            while got < size:
                data = await stream.receive_some(min(1 << 20, size - got))
                buffer[got : got + len(data)] = data
                got += len(data)
            # the receiver's own CPU time for this payload (getrusage: microseconds, where
            # /proc's clock ticks are 10 ms)
            await stream.send_all(b"k" + struct.pack(">d", own_cpu_seconds() - cpu_start))

    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    print("ready", flush=True)
    await trio.serve_listeners(handle, listeners)


async def _raw_send(port: int, payload: bytes) -> float:
    """Send one payload; returns the receiver's CPU seconds for it."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(struct.pack(">Q", len(payload)))
        view = memoryview(payload)
        for pos in range(0, len(payload), 1 << 20):
            await stream.send_all(view[pos : pos + (1 << 20)])
        answer = b""
        while len(answer) < 9:
            data = await stream.receive_some(9 - len(answer))
            if not data:
                raise RuntimeError("raw receiver did not answer")
            answer += data
    if answer[:1] != b"k":
        raise RuntimeError("raw receiver answered nonsense")
    (receive_cpu,) = struct.unpack(">d", answer[1:])
    return float(receive_cpu)


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Sample:
    seconds: float
    send_cpu: float
    receive_cpu: float


class RawPair:
    """A raw TCP receiver process; this process sends (a fresh connection per payload, as the
    p2p side's connect is excluded by a warm connection, this one costs ~0.1 ms)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = subprocess.Popen(
            [sys.executable, __file__, "--raw-server", str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.server.stdout is not None
        if self.server.stdout.readline().strip() != "ready":
            raise RuntimeError("raw TCP receiver did not start")

    def send(self, payload: bytes) -> Sample:
        send_before = own_cpu_seconds()
        begin = time.perf_counter()
        receive_cpu = trio.run(_raw_send, self.port, payload)
        seconds = time.perf_counter() - begin
        return Sample(seconds, own_cpu_seconds() - send_before, receive_cpu)

    def close(self) -> None:
        self.server.kill()
        self.server.wait()


# --- libp2p -------------------------------------------------------------------------------


def start_nodes(
    tmp: Path, names: list[str], *, max_push_bytes: int, max_inbound: int = 8
) -> dict[str, NodeProcess]:
    members_file = tmp / "members.json"
    nodes = {
        name: NodeProcess(
            Identity.generate(),
            f"/ip4/127.0.0.1/tcp/{free_port()}",
            members_file,
            max_push_bytes=max_push_bytes,
            poll_s=2.0,
            # members dial on demand: the fan-in measures pushes, not a full mesh forming
            extra_args=[
                "--no-connect",
                "--max-inbound",
                str(max_inbound),
                "--log-level",
                "WARNING",
            ],
            log_path=tmp / f"{name}.log",
        )
        for name in names
    }
    write_members_file(
        members_file,
        [member_of_identity(n.identity, [n.listen], name=k) for k, n in nodes.items()],
    )
    for node in nodes.values():
        node.start()
    for node in nodes.values():
        node.wait_ready(timeout=180)
    return nodes


def stop_nodes(nodes: dict[str, NodeProcess]) -> None:
    for node in nodes.values():
        node.ask_to_quit()
    for node in nodes.values():
        node.stop()


def check(reply: dict[str, Any]) -> dict[str, Any]:
    if not reply.get("ok"):
        raise RuntimeError(f"node command failed: {reply}")
    return reply


def pair_measurements(
    tmp: Path, repeats: int
) -> tuple[dict[str, dict[int, list[Sample]]], dict[str, float]]:
    """Samples of one push per size, p2p and raw TCP alternately (so both meet the same load),
    and the small-request latency. The "p2p" pushes travel on the bulk session a warm-up push
    left, as a member's pushes do after its first; the "first" ones (``FIRST_PUSH_SIZE``) each
    open a libp2p stream and a new bulk connection, as a member's first push does."""
    nodes = start_nodes(tmp / "pair", ["receiver", "sender"], max_push_bytes=200 * MB)
    sender, receiver = nodes["sender"], nodes["receiver"]
    raw = RawPair()
    samples: dict[str, dict[int, list[Sample]]] = {"p2p": {}, "raw": {}, "first": {}}
    round_id = 0

    def push(size: int, kind: str) -> None:
        nonlocal round_id
        round_id += 1
        before = check(receiver.request("stats"))["cpu_seconds"]
        reply = check(
            sender.request(
                "push", timeout=600, to=receiver.address, round=round_id, size=size, seed=round_id
            )
        )
        after = check(receiver.request("stats"))["cpu_seconds"]
        # dropped once stored, as the raw receiver drops its buffer (and a merge peer a round's
        # updates once merged): both receivers then reuse their memory
        check(receiver.request("discard", round=round_id))
        samples[kind].setdefault(size, []).append(
            Sample(reply["transfer_seconds"], reply["transfer_cpu_seconds"], after - before)
        )

    try:
        check(sender.request("status", of=receiver.address))  # connect (and identify) first
        push(SIZES[0], "first")  # the warm-up: it leaves the session the others use
        samples["first"].clear()
        for size in SIZES:
            samples["raw"][size] = []
            for _ in range(repeats):
                push(size, "p2p")
                samples["raw"][size].append(raw.send(make_payload(round_id, size)))
        for _ in range(repeats):
            check(sender.request("end_sessions", **{"with": receiver.address}))
            push(FIRST_PUSH_SIZE, "first")
        latency = check(sender.request("status_latency", of=receiver.address, count=200))
        return samples, {"median_ms": latency["median_ms"], "p90_ms": latency["p90_ms"]}
    finally:
        raw.close()
        stop_nodes(nodes)


def summarize(samples: list[Sample], size: int) -> dict[str, float]:
    """Median goodput (MB/s) and median CPU seconds per 100 MB on each side."""
    scale = 100 * MB / size
    return {
        "goodput": size / statistics.median(s.seconds for s in samples) / MB,
        "send_cpu": statistics.median(s.send_cpu for s in samples) * scale,
        "receive_cpu": statistics.median(s.receive_cpu for s in samples) * scale,
    }


def fan_in(tmp: Path, peers: int, size: int) -> dict[str, float]:
    names = ["merge"] + [f"peer{i}" for i in range(peers)]
    nodes = start_nodes(tmp / "fan-in", names, max_push_bytes=2 * size)
    merge = nodes["merge"]
    senders = [nodes[n] for n in names[1:]]
    try:
        for node in senders:  # warm connections, as in a round (members are connected)
            check(node.request("status", of=merge.address))
        baseline = check(merge.request("stats"))["peak_rss_kb"]
        commands = [
            (node, node.send("push", to=merge.address, round=1, size=size, seed=i))
            for i, node in enumerate(senders)
        ]
        replies = [check(node.result(command, timeout=900)) for node, command in commands]
        span = max(r["ended_at"] for r in replies) - min(r["started_at"] for r in replies)
        stored = check(merge.request("stored"))["refs"]
        if len(stored) != peers:
            raise RuntimeError(f"merge peer stored {len(stored)} of {peers} updates")
        peak = check(merge.request("stats"))["peak_rss_kb"]
        return {
            "seconds": span,
            "aggregate_mb_s": peers * size / span / MB,
            "slowest_s": max(r["transfer_seconds"] for r in replies),
            "rss_before_mb": baseline / 1024,
            "rss_peak_mb": peak / 1024,
        }
    finally:
        stop_nodes(nodes)


# --- in-bench peers: the libp2p-only path, and a merge peer on a disk store ---------------


def _worker_spec(path: Path) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(path.read_text())
    return spec


async def _worker(role: str, spec_path: Path) -> None:
    """A receiver (``merge``) or a process of senders (``send``) built from a JSON spec.

    ``merge``: one P2PService accepting updates (into a DirectoryBlobStore when the spec names
    a folder), printing ``ready``, then, once ``expect`` updates are stored, one JSON line:
    its peak RSS, and its CPU seconds per update from the validator's call to the store.
    ``send``: one P2PService per key, all pushing at once (``payloads`` bytes each, distinct),
    printing one JSON line with each push's seconds and the process's CPU seconds.
    """
    from swarm.p2p.config import P2PConfig, TransferPolicy
    from swarm.p2p.disk_store import DirectoryBlobStore
    from swarm.p2p.membership import StaticMembershipSource
    from swarm.p2p.service import open_p2p
    from swarm.p2p.store import BlobKind, BlobRef, MemoryBlobStore, content_digest

    spec = _worker_spec(spec_path)
    members = [
        member_of_identity(Identity(bytes.fromhex(m["key"])), [m["addr"]]) for m in spec["members"]
    ]
    source = StaticMembershipSource(members)
    policy = TransferPolicy(base_timeout_s=60.0)

    def config(addr: str) -> P2PConfig:
        return P2PConfig(
            listen_addrs=(addr,),
            connect_to_members=False,
            membership_poll_s=60.0,
            transfer=policy,
            bulk_port=0 if spec["bulk"] else None,
        )

    if role == "merge":
        me = spec["members"][0]
        cpu_marks: list[float] = []
        if spec.get("store_dir"):
            store: Any = DirectoryBlobStore(Path(spec["store_dir"]))
        else:
            store = MemoryBlobStore()

        class Timed:  # the receiver's CPU per update: validator call -> stored
            def __getattr__(self, name: str) -> Any:
                return getattr(store, name)

            def put(self, ref: BlobRef, data: bytes) -> None:
                store.put(ref, data)
                cpu_marks.append(own_cpu_seconds())

        net_store = store if spec.get("store_dir") else Timed()
        async with open_p2p(
            Identity(bytes.fromhex(me["key"])), config(me["addr"]), source, net_store
        ) as net:
            starts: list[float] = []

            def validator(request: Any) -> None:
                starts.append(own_cpu_seconds())

            net.accept_pushes(BlobKind.UPDATE, validator, 1 << 30)
            baseline = peak_rss_kb()
            print("ready", flush=True)
            while len(store.find()) < spec["expect"]:
                await trio.sleep(0.02)
            if not spec.get("store_dir"):
                cpu = [end - begin for begin, end in zip(starts, cpu_marks, strict=False)]
            else:
                cpu = [own_cpu_seconds() - starts[0]] if starts else []
            result = {"peak_rss_kb": peak_rss_kb(), "baseline_rss_kb": baseline, "cpu": cpu}
            print(json.dumps(result), flush=True)
            await trio.sleep_forever()  # until killed: the senders read their answers first
    senders = spec["members"][1:]
    merge = members[0].address
    sizes: list[int] = spec["sizes"]
    async with AsyncExitStack() as stack:
        nets = [
            await stack.enter_async_context(
                open_p2p(Identity(bytes.fromhex(m["key"])), config(m["addr"]), source)
            )
            for m in senders
        ]
        for net in nets:
            await net.status(merge)  # warm connections
        timings: list[list[float]] = [[] for _ in nets]
        round_cpu: list[float] = []
        cpu_before = own_cpu_seconds()

        async def one(n: int, rid: int, data: bytes, digest: bytes) -> None:
            begin = time.perf_counter()
            await nets[n].push_update(merge, rid, data, digest=digest)
            timings[n].append(time.perf_counter() - begin)

        for round_id, size in enumerate(sizes, start=1):
            payloads = [make_payload(round_id * 1000 + n, size) for n in range(len(nets))]
            digests = [content_digest(BlobKind.UPDATE, data) for data in payloads]
            cpu_round = own_cpu_seconds()
            async with trio.open_nursery() as nursery:
                for n in range(len(nets)):
                    nursery.start_soon(one, n, round_id, payloads[n], digests[n])
            round_cpu.append(own_cpu_seconds() - cpu_round)
            del payloads
        result = {"seconds": timings, "round_cpu": round_cpu, "cpu": own_cpu_seconds() - cpu_before}
        print(json.dumps(result), flush=True)


def peak_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_workers(
    tmp: Path, senders: int, sizes: list[int], *, bulk: bool, disk: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A merge worker and one sender worker holding ``senders`` members; their JSON results."""
    tmp.mkdir(parents=True, exist_ok=True)
    ids = [Identity.generate() for _ in range(senders + 1)]
    spec = {
        "members": [
            {"key": i.private_key.hex(), "addr": f"/ip4/127.0.0.1/tcp/{free_port()}"} for i in ids
        ],
        "bulk": bulk,
        "store_dir": str(tmp / "store") if disk else "",
        "expect": senders * len(sizes),
        "sizes": sizes,
    }
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(spec))
    command = [sys.executable, __file__, "--worker"]
    merge = subprocess.Popen([*command, "merge", str(spec_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert merge.stdout is not None
        if merge.stdout.readline().strip() != "ready":
            raise RuntimeError("merge worker did not start")
        sent = subprocess.run(
            [*command, "send", str(spec_path)], capture_output=True, text=True, timeout=900
        )
        if sent.returncode != 0:
            raise RuntimeError(f"sender worker failed: {sent.stderr[-2000:]}")
        merged = json.loads(merge.stdout.readline())
        return merged, json.loads(sent.stdout.strip().splitlines()[-1])
    finally:
        merge.kill()
        merge.wait()


def libp2p_only(tmp: Path, repeats: int) -> dict[int, dict[str, float]]:
    """Goodput and CPU per 100 MB of 10 and 100 MB pushes with no bulk channel."""
    out: dict[int, dict[str, float]] = {}
    for size in SIZES[1:]:
        merged, sent = run_workers(
            tmp / f"libp2p-{size}", 1, [size] * repeats, bulk=False, disk=False
        )
        seconds = sent["seconds"][0]
        send_cpu = sent["round_cpu"]
        scale = 100 * MB / size
        out[size] = {
            "goodput": size / statistics.median(seconds) / MB,
            "send_cpu": statistics.median(send_cpu) * scale,
            "receive_cpu": statistics.median(merged["cpu"]) * scale,
        }
    return out


def merge_rss(tmp: Path, size: int, counts: tuple[int, ...] = (4, 8)) -> dict[int, dict[str, Any]]:
    """The merge peer's peak RSS with ``n`` members pushing ``size`` bytes each at once."""
    out = {}
    for n in counts:
        merged, sent = run_workers(tmp / f"rss-{n}", n, [size], bulk=True, disk=True)
        out[n] = {
            "peak_mb": merged["peak_rss_kb"] / 1024,
            "baseline_mb": merged["baseline_rss_kb"] / 1024,
            "slowest_s": max(t[0] for t in sent["seconds"]),
        }
    return out


def load_average() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def table(
    load: tuple[str, str],
    samples: dict[str, dict[int, list[Sample]]],
    latency: dict[str, float],
    fan: dict[str, float],
    peers: int,
    fan_size: int,
    repeats: int,
    stream_only: dict[int, dict[str, float]],
    rss: dict[int, dict[str, Any]],
    rss_size: int,
) -> tuple[str, dict[str, Any]]:
    p2p = {size: summarize(samples["p2p"][size], size) for size in SIZES}
    raw = {size: summarize(samples["raw"][size], size) for size in SIZES}
    rows = [
        "| measurement | swarm p2p (libp2p admits, payload over the bulk channel: TLS 1.3) "
        "| raw TCP (trio) | p2p / raw |",
        "|---|---:|---:|---:|",
    ]
    for size in SIZES:
        ratio = 100 * p2p[size]["goodput"] / raw[size]["goodput"]
        rows.append(
            f"| goodput, one {size // MB} MB push on a bulk session (median of {repeats}) "
            f"| {p2p[size]['goodput']:.0f} MB/s | {raw[size]['goodput']:.0f} MB/s | {ratio:.0f} % |"
        )
    first = summarize(samples["first"][FIRST_PUSH_SIZE], FIRST_PUSH_SIZE)
    rows.append(
        f"| goodput, a member's first push of {FIRST_PUSH_SIZE // MB} MB: a libp2p stream and a "
        f"new bulk connection, no session yet (median of {repeats}) "
        f"| {first['goodput']:.0f} MB/s | | "
        f"{100 * first['goodput'] / raw[FIRST_PUSH_SIZE]['goodput']:.0f} % |"
    )
    capacity = {}
    for size in SIZES[1:]:
        both = (p2p[size], raw[size])
        cells = [f"{d['send_cpu']:.2f} s + {d['receive_cpu']:.2f} s" for d in both]
        rows.append(
            f"| CPU per 100 MB in {size // MB} MB transfers (sender + receiver) "
            f"| {cells[0]} | {cells[1]} | |"
        )
        # what one free core per side would carry: the busier side sets the pace
        cap = [100 / max(d["send_cpu"], d["receive_cpu"], 1e-9) for d in both]
        capacity[size] = cap[0] / cap[1]
        rows.append(
            f"| CPU-bound goodput, {size // MB} MB (100 MB / busier side's CPU) "
            f"| {cap[0]:.0f} MB/s | {cap[1]:.0f} MB/s | {100 * capacity[size]:.0f} % |"
        )
    for size, d in stream_only.items():
        ratio = 100 * d["goodput"] / raw[size]["goodput"]
        rows.append(
            f"| payload on the libp2p stream (no bulk channel: the fallback), {size // MB} MB: "
            f"goodput; CPU per 100 MB (sender + receiver) | {d['goodput']:.0f} MB/s; "
            f"{d['send_cpu']:.2f} s + {d['receive_cpu']:.2f} s | | {ratio:.0f} % |"
        )
    rows.append(
        f"| small request (status), warm connection, new stream each, 200 requests "
        f"| median {latency['median_ms']:.2f} ms, p90 {latency['p90_ms']:.2f} ms | | |"
    )
    rows.append(
        f"| fan-in: {peers} peers x {fan_size // MB} MB at once to one merge peer "
        f"| {fan['seconds']:.1f} s ({fan['aggregate_mb_s']:.0f} MB/s in all; slowest push "
        f"{fan['slowest_s']:.1f} s) | | |"
    )
    held = peers * fan_size // MB
    rows.append(
        f"| merge peer RSS during the fan-in | {fan['rss_before_mb']:.0f} MB before, "
        f"peak {fan['rss_peak_mb']:.0f} MB (it holds the {held} MB it received) | | |"
    )
    for n, r in rss.items():
        rows.append(
            f"| merge peer RSS, {n} peers x {rss_size // MB} MB at once into its disk store "
            f"| {r['baseline_mb']:.0f} MB before, peak {r['peak_mb']:.0f} MB (slowest push "
            f"{r['slowest_s']:.1f} s) | | |"
        )
    measured = min(p2p[s]["goodput"] / raw[s]["goodput"] for s in SIZES[1:])
    cpu_bound = min(capacity.values())
    verdict = (
        "Goal, at least a quarter of raw TCP's goodput for 10 MB and up: "
        + ("met" if measured >= 0.25 else "**missed**")
        + f" as measured (worst {100 * measured:.0f} %); "
        + ("met" if cpu_bound >= 0.25 else "**missed**")
        + f" by CPU cost (worst {100 * cpu_bound:.0f} %)."
    )
    if len(rss) >= 2:
        counts = sorted(rss)
        growth = rss[counts[-1]]["peak_mb"] - rss[counts[0]]["peak_mb"]
        worst = max(r["peak_mb"] for r in rss.values())
        verdict += (
            f" Merge peer memory, under 1 GB and growing by at most one update "
            f"({rss_size // MB} MB) from {counts[0]} to {counts[-1]} peers: "
            + ("met" if worst < 1024 and growth <= rss_size / MB else "**missed**")
            + f" (peak {worst:.0f} MB, growth {growth:.0f} MB)."
        )
    notes = [
        "",
        verdict,
        "",
        "Goodput is payload bytes over the time from the push call to the receiver's final "
        "answer. On a bulk session (the connection a member's earlier push left open, "
        "docs/p2p.md): the request, TLS encryption, our chunk framing, sha256 at the receiver "
        "(the sender sends its committed digest) in a thread beside the receiving one, the "
        "receiver's validation, its store (in memory, the buffer received into) and its "
        "answer. A first push adds a libp2p stream (Noise, yamux, the membership gate) for the "
        "request and the receiver's offer, and the TCP connection, TLS handshake and token of "
        "the bulk channel. The receiver drops each payload once stored, as a merge peer drops "
        "a round's updates and as the raw receiver drops its buffer; "
        "raw TCP sends the same bytes with an 8-byte length prefix, no encryption "
        "and no hashing, to a receiver that copies them into a buffer. Each p2p transfer is "
        "followed by a raw one of the same size, so both meet the same load. All processes share "
        "one 2-core machine with whatever else runs, so wall-clock numbers move with the load; "
        "the CPU seconds per 100 MB do not, and the CPU-bound row says what each stack would "
        f"carry with a free core per side. Load average at the start: {load[0]}; at the end: "
        f"{load[1]}.",
    ]
    data = {
        "p2p": {str(k): v for k, v in p2p.items()},
        "first_push": first,
        "raw": {str(k): v for k, v in raw.items()},
        "stream_only": {str(k): v for k, v in stream_only.items()},
        "latency": latency,
        "fan_in": fan,
        "merge_rss": {str(k): v for k, v in rss.items()},
    }
    return "\n".join(rows + notes), data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--fan-in", type=int, default=10)
    parser.add_argument("--fan-in-mb", type=int, default=10)
    parser.add_argument("--rss-mb", type=int, default=168, help="0: skip the RSS check")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--raw-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_server:
        trio.run(_raw_server, args.raw_server)
        return
    if args.worker:
        trio.run(_worker, args.worker[0], Path(args.worker[1]))
        return
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="p2p-bench-") as tmp_name:
        tmp = Path(tmp_name)
        samples, latency = pair_measurements(tmp, args.repeats)
        stream_only = libp2p_only(tmp, args.repeats)
        fan = fan_in(tmp, args.fan_in, args.fan_in_mb * MB)
        rss = merge_rss(tmp, args.rss_mb * MB) if args.rss_mb else {}
    body, data = table(
        (load_before, load_average()),
        samples,
        latency,
        fan,
        args.fan_in,
        args.fan_in_mb * MB,
        args.repeats,
        stream_only,
        rss,
        args.rss_mb * MB,
    )
    print(body)
    print(json.dumps(data))
    if not args.no_write:
        command = "python benchmarks/p2p_bench.py " + shlex.join(sys.argv[1:])
        write_section("p2p-bench", body, command.strip())


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
