"""Goodput and latency of the peer network, next to raw TCP, between OS processes on loopback.

Measures, in one run:

* goodput of one push of 1, 10 and 100 MB between two node processes (libp2p: TCP + Noise +
  yamux, length-prefixed chunks, sha256 checked and stored at the receiver), timed inside the
  sending process from the call to the receiver's final answer, on a warm connection;
* the same payloads over raw TCP (trio, length prefix, no encryption, no hashing) between this
  process and a receiver process, alternating with the p2p transfers so both meet the same
  load;
* the latency of a small request (the status protocol) on a warm connection;
* fan-in: 10 member processes push 10 MB each at once to one merge peer: wall time from the
  first start to the last answer, and the merge peer's peak RSS.

It also reports the CPU seconds per 100 MB on each side, which do not move with the machine's
load as wall-clock times do. Prints a markdown table and writes it into docs/benchmarks.md
between the p2p-bench markers.

    .venv/bin/python benchmarks/p2p_bench.py [--repeats 3] [--fan-in 10] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import write_section
from swarm.identity import Identity
from swarm.p2p.membership import member_of_identity, write_members_file
from tests.support.node import NodeProcess, make_payload

MB = 1_000_000
SIZES = (1 * MB, 10 * MB, 100 * MB)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
    and the small-request latency."""
    nodes = start_nodes(tmp / "pair", ["receiver", "sender"], max_push_bytes=200 * MB)
    sender, receiver = nodes["sender"], nodes["receiver"]
    raw = RawPair()
    samples: dict[str, dict[int, list[Sample]]] = {"p2p": {}, "raw": {}}
    try:
        check(sender.request("status", of=receiver.address))  # connect (and identify) first
        round_id = 0
        for size in SIZES:
            samples["p2p"][size], samples["raw"][size] = [], []
            for _ in range(repeats):
                round_id += 1
                before = check(receiver.request("stats"))["cpu_seconds"]
                reply = check(
                    sender.request(
                        "push",
                        timeout=600,
                        to=receiver.address,
                        round=round_id,
                        size=size,
                        seed=round_id,
                    )
                )
                after = check(receiver.request("stats"))["cpu_seconds"]
                samples["p2p"][size].append(
                    Sample(reply["transfer_seconds"], reply["transfer_cpu_seconds"], after - before)
                )
                samples["raw"][size].append(raw.send(make_payload(round_id, size)))
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
) -> tuple[str, dict[str, Any]]:
    p2p = {size: summarize(samples["p2p"][size], size) for size in SIZES}
    raw = {size: summarize(samples["raw"][size], size) for size in SIZES}
    rows = [
        "| measurement | swarm p2p (libp2p: TCP + Noise + yamux) | raw TCP (trio) | p2p / raw |",
        "|---|---:|---:|---:|",
    ]
    for size in SIZES:
        ratio = 100 * p2p[size]["goodput"] / raw[size]["goodput"]
        rows.append(
            f"| goodput, one {size // MB} MB transfer (median of {repeats}) "
            f"| {p2p[size]['goodput']:.0f} MB/s | {raw[size]['goodput']:.0f} MB/s | {ratio:.0f} % |"
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
    measured = min(p2p[s]["goodput"] / raw[s]["goodput"] for s in SIZES[1:])
    cpu_bound = min(capacity.values())
    verdict = (
        "Goal, at least a quarter of raw TCP's goodput for 10 MB and up: "
        + ("met" if measured >= 0.25 else "**missed**")
        + f" as measured (worst {100 * measured:.0f} %); "
        + ("met" if cpu_bound >= 0.25 else "**missed**")
        + f" by CPU cost (worst {100 * cpu_bound:.0f} %)."
    )
    notes = [
        "",
        verdict,
        "",
        "Goodput is payload bytes over the time from the push call to the receiver's final "
        "answer: header exchange, Noise encryption, yamux framing, our chunk framing, sha256 on "
        "both sides, the copy into the receiver's buffer and the store (p2p, on a warm "
        "connection); raw TCP sends the same bytes with an 8-byte length prefix, no encryption "
        "and no hashing, to a receiver that copies them into a buffer. Each p2p transfer is "
        "followed by a raw one of the same size, so both meet the same load. All processes share "
        "one 2-core machine with whatever else runs, so wall-clock numbers move with the load; "
        "the CPU seconds per 100 MB do not, and the CPU-bound row says what each stack would "
        f"carry with a free core per side. Load average at the start: {load[0]}; at the end: "
        f"{load[1]}.",
    ]
    data = {
        "p2p": {str(k): v for k, v in p2p.items()},
        "raw": {str(k): v for k, v in raw.items()},
        "latency": latency,
        "fan_in": fan,
    }
    return "\n".join(rows + notes), data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fan-in", type=int, default=10)
    parser.add_argument("--fan-in-mb", type=int, default=10)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--raw-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_server:
        trio.run(_raw_server, args.raw_server)
        return
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="p2p-bench-") as tmp_name:
        tmp = Path(tmp_name)
        samples, latency = pair_measurements(tmp, args.repeats)
        fan = fan_in(tmp, args.fan_in, args.fan_in_mb * MB)
    body, data = table(
        (load_before, load_average()),
        samples,
        latency,
        fan,
        args.fan_in,
        args.fan_in_mb * MB,
        args.repeats,
    )
    print(body)
    print(json.dumps(data))
    if not args.no_write:
        command = "python benchmarks/p2p_bench.py " + shlex.join(sys.argv[1:])
        write_section("p2p-bench", body, command.strip())


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
