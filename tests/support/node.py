"""A scriptable peer process, for multi-process tests, benchmarks and manual debugging.

From the repository root, ``python -m tests.support.node --key-hex HEX --listen
/ip4/127.0.0.1/tcp/4001 --members-file m.json`` runs a P2PService and takes JSON-lines commands
on stdin (push, offer, fetch, stored, discard, end_sessions, status, status_latency, connected,
stats, quit),
answering each on stdout with the same ``id``; logs go to stderr. Payloads are generated from a seed
(``random.Random(seed)``), so a test knows their hash without moving them through the pipe.
``flip_byte`` pushes a payload with one byte changed under the hash of the original: a member
whose bytes do not match its commitment.

:class:`NodeProcess` starts such a process and talks to it from ordinary (non-trio) code. This is
a test harness, not part of the library: ``swarm.p2p`` does not ship it.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import os
import queue
import random
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import trio

from swarm.errors import P2PError, TransferRefusedError
from swarm.identity import Identity
from swarm.p2p.config import P2PConfig, TransferPolicy
from swarm.p2p.membership import JsonFileMembershipSource
from swarm.p2p.protocols import PushRequest, Verdict
from swarm.p2p.service import P2PService, open_p2p
from swarm.p2p.store import BlobKind, content_digest

logger = logging.getLogger(__name__)

#: the repository root: the node process imports ``tests.support.node`` from there
REPO_ROOT = Path(__file__).resolve().parents[2]


def make_payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _peak_rss_kb() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def _cpu_seconds() -> float:
    """CPU time of this process (all threads), user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _policy(fields: Mapping[str, Any] | None, default: TransferPolicy) -> TransferPolicy:
    if not fields:
        return default
    return dataclasses.replace(default, **fields)


class _NodeApp:
    """The command interpreter of one node process."""

    def __init__(self, service: P2PService, out: IO[str]) -> None:
        self.service = service
        self.out = out

    def emit(self, message: Mapping[str, Any]) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    def validator(self, request: PushRequest) -> Verdict:
        # tells a test that a transfer is under way, e.g. to kill this process in its middle
        self.emit(
            {
                "event": "push_accepted",
                "sender": request.sender,
                "kind": str(request.kind),
                "round": request.round_id,
                "size": request.size,
            }
        )
        return None

    async def handle(self, command: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"id": command.get("id")}
        started = time.perf_counter()
        try:
            result = await self.run_command(command)
            reply.update(ok=True, seconds=time.perf_counter() - started, **result)
        except (P2PError, ValueError, KeyError, TypeError) as exc:
            reply.update(ok=False, error=type(exc).__name__, message=str(exc))
            if isinstance(exc, TransferRefusedError):
                reply.update(code=exc.code, reason=exc.reason)
            reply["seconds"] = time.perf_counter() - started
        self.emit(reply)

    async def run_command(self, command: dict[str, Any]) -> dict[str, Any]:
        op = command["op"]
        net = self.service
        policy = _policy(command.get("policy"), net.config.transfer)
        if op == "push":
            payload = make_payload(int(command["seed"]), int(command["size"]))
            kind = BlobKind(command.get("kind", "update"))
            digest = content_digest(kind, payload)
            flip = command.get("flip_byte")
            if flip is not None:
                corrupted = bytearray(payload)
                corrupted[int(flip)] ^= 0xFF
                payload = bytes(corrupted)
            started, started_at, cpu = time.perf_counter(), time.time(), _cpu_seconds()
            if kind == BlobKind.UPDATE:
                await net.push_update(
                    command["to"], int(command["round"]), payload, digest=digest, policy=policy
                )
            elif kind == BlobKind.ROUND_KEY:
                await net.deliver_round_key(
                    command["to"], int(command["round"]), payload, digest=digest, policy=policy
                )
            else:
                raise ValueError(f"cannot push {kind}")
            return {
                "digest": digest.hex(),
                "transfer_seconds": time.perf_counter() - started,
                "transfer_cpu_seconds": _cpu_seconds() - cpu,
                "started_at": started_at,
                "ended_at": time.time(),
            }
        if op == "offer":
            payload = make_payload(int(command["seed"]), int(command["size"]))
            ref = await net.offer(BlobKind(command["kind"]), int(command["round"]), payload)
            return {"digest": ref.digest.hex()}
        if op == "fetch":
            kind = BlobKind(command["kind"])
            digest = bytes.fromhex(command["digest"])
            if kind == BlobKind.AGGREGATE:
                data = await net.fetch_aggregate(
                    command["from"],
                    int(command["round"]),
                    digest,
                    max_size=int(command["max_size"]),
                    policy=policy,
                )
            else:
                data = await net.fetch_model(
                    command["from"], digest, max_size=int(command["max_size"]), policy=policy
                )
            return {"size": len(data), "digest": content_digest(kind, data).hex()}
        if op == "stored":
            return {
                "refs": [
                    {
                        "kind": str(ref.kind),
                        "round": ref.round_id,
                        "sender": ref.sender,
                        "digest": ref.digest.hex(),
                        "size": ref.size,
                    }
                    for ref in net.store.find()
                ]
            }
        if op == "end_sessions":
            # the next push to that member opens a libp2p stream and a new bulk connection
            if net.host.bulk is not None:
                await net.host.bulk.end_sessions(command["with"])
            return {}
        if op == "discard":
            # what a merge peer does with a round's blobs once merged: the memory goes back
            net.store.discard_round(int(command["round"]))
            return {}
        if op == "status":
            return {"status": await net.status(command["of"], policy=policy)}
        if op == "status_latency":
            # many small requests on one warm connection, timed here rather than across the pipe
            samples = []
            for _ in range(int(command.get("count", 100))):
                begin = time.perf_counter()
                await net.status(command["of"], policy=policy)
                samples.append(time.perf_counter() - begin)
            samples.sort()
            return {
                "median_ms": 1000 * samples[len(samples) // 2],
                "p90_ms": 1000 * samples[int(len(samples) * 0.9)],
                "count": len(samples),
            }
        if op == "connected":
            return {"members": sorted(net.connected_members()), "peers": net.host.connected_peers()}
        if op == "stats":
            return {
                "peak_rss_kb": _peak_rss_kb(),
                "pid": os.getpid(),
                "cpu_seconds": _cpu_seconds(),
            }
        raise ValueError(f"unknown op {op!r}")


async def _serve(args: argparse.Namespace) -> None:
    identity = Identity(bytes.fromhex(args.key_hex.removeprefix("0x")))
    config = P2PConfig(
        listen_addrs=tuple(args.listen),
        membership_poll_s=args.poll_s,
        connect_to_members=not args.no_connect,
        transfer=TransferPolicy(),
        max_concurrent_inbound=args.max_inbound,
    )
    source = JsonFileMembershipSource(Path(args.members_file))
    async with open_p2p(identity, config, source) as service:
        app = _NodeApp(service, sys.stdout)
        for kind in args.accept:
            service.accept_pushes(BlobKind(kind), app.validator, args.max_push_bytes)
        app.emit(
            {
                "event": "ready",
                "address": service.address,
                "peer_id": service.peer_id,
                "addrs": service.addrs(),
                "pid": os.getpid(),
            }
        )
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        buffer = b""
        async with trio.open_nursery() as nursery:
            while True:
                data = await stdin.receive_some(65536)
                if not data:
                    break
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    command = json.loads(line)
                    if command.get("op") == "quit":
                        nursery.cancel_scope.cancel()
                        break
                    nursery.start_soon(app.handle, command)
            nursery.cancel_scope.cancel()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key-hex", required=True, help="the secp256k1 private key, hex")
    parser.add_argument("--listen", action="append", required=True, help="TCP multiaddr")
    parser.add_argument("--members-file", required=True, help="JSON list of members")
    parser.add_argument("--poll-s", type=float, default=0.5, help="membership poll interval")
    parser.add_argument("--no-connect", action="store_true", help="dial members only on demand")
    parser.add_argument(
        "--accept", action="append", default=[], help="blob kinds to accept pushes of"
    )
    parser.add_argument("--max-push-bytes", type=int, default=256 << 20)
    parser.add_argument("--max-inbound", type=int, default=8)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
    )
    # libp2p detaches its loggers at import (unless LIBP2P_DEBUG is set); let its warnings
    # reach this process's log instead of Python's last-resort handler
    logging.getLogger("libp2p").propagate = True
    trio.run(_serve, args)


# --- driving a node from a test or a benchmark --------------------------------------------


class NodeProcess:
    """A node subprocess and a blocking client for its commands (thread-safe)."""

    def __init__(
        self,
        identity: Identity,
        listen: str,
        members_file: Path,
        *,
        accept: Sequence[str] = ("update", "round_key"),
        max_push_bytes: int = 256 << 20,
        poll_s: float = 0.5,
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
    ) -> None:
        self.identity = identity
        self.listen = listen
        self.members_file = Path(members_file)
        self.args = [
            sys.executable,
            "-m",
            "tests.support.node",
            "--key-hex",
            identity.private_key.hex(),
            "--listen",
            listen,
            "--members-file",
            str(members_file),
            "--poll-s",
            str(poll_s),
            "--max-push-bytes",
            str(max_push_bytes),
            *(arg for kind in accept for arg in ("--accept", kind)),
            *extra_args,
        ]
        self.log_path = log_path
        self.process: subprocess.Popen[str] | None = None
        self._ids = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._cond = threading.Condition()
        self._log: IO[str] | None = None

    @property
    def address(self) -> str:
        return self.identity.address

    def start(self) -> NodeProcess:
        self._log = open(self.log_path, "a") if self.log_path else None  # noqa: SIM115
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self.process = subprocess.Popen(
            self.args,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log if self._log is not None else subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        return self

    def _read_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "event" in message:
                self._events.put(message)
            else:
                with self._cond:
                    self._replies[int(message["id"])] = message
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_event(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {name!r} event from {self.address}")
            try:
                event = self._events.get(timeout=remaining)
            except queue.Empty:
                continue
            if event["event"] == name:
                return event

    def drain_events(self) -> list[dict[str, Any]]:
        """Every event received and not yet consumed by :meth:`wait_event`."""
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        return self.wait_event("ready", timeout)

    def send(self, op: str, **fields: Any) -> int:
        assert self.process is not None and self.process.stdin is not None
        command_id = next(self._ids)
        self.process.stdin.write(json.dumps({"id": command_id, "op": op, **fields}) + "\n")
        self.process.stdin.flush()
        return command_id

    def result(self, command_id: int, timeout: float = 120.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        with self._cond:
            while command_id not in self._replies:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no answer to command {command_id} from {self.address}")
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"node {self.address} exited ({self.process.returncode})")
                self._cond.wait(min(remaining, 0.5))
            return self._replies.pop(command_id)

    def request(self, op: str, timeout: float = 120.0, **fields: Any) -> dict[str, Any]:
        return self.result(self.send(op, **fields), timeout)

    def kill(self) -> None:
        """SIGKILL: the peer vanishes mid-whatever, as a crashed host would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._close_log()

    def ask_to_quit(self) -> None:
        """Send ``quit`` without waiting (see :meth:`stop`)."""
        if self.process is not None and self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.flush()
            except (BrokenPipeError, OSError):
                pass

    def stop(self, timeout: float = 15.0) -> int | None:
        """Ask it to quit (a clean shutdown); kill it if it does not. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.ask_to_quit()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._close_log()
        return self.process.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


if __name__ == "__main__":
    main()
