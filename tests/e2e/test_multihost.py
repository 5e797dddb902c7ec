"""A consortium across hosts, set up from the guides alone.

The chain (anvil) and four hospital peers each run in a Linux network namespace of their own,
with their own IP address, joined by veth pairs to a bridge that lives in a namespace of its
own; the test's own process reaches that network over one more veth pair, to read the ledger.
Every step is a command docs/admin-guide.md ("Hospitals on their own hosts") and
docs/operator-guide.md give, typed in the namespace of the host it belongs to: ``swarm keys
new``, ``swarm keys show --json``, ``swarm admin deploy``, ``swarm admin add-member
--multiaddr``, ``swarm peer init``, ``swarm peer run``, ``swarm peer set-address``, ``swarm
audit verify``.

Three of the four hospitals listen on ``/ip4/0.0.0.0/tcp/4001`` (one of them with an explicit
``--announce``), one on its own address: what the others dial is the address on the ledger.

- round 1 is clean;
- round 2: as the roles are drawn, the link of a hospital listening on 0.0.0.0 that is a plain
  participant is cut (``ip link set ... down``): the round finishes with the other three within
  one commit window (plus the merge); meanwhile a copy of another hospital's peer, started on
  another host with the same key, refuses to start (one line);
- round 3 runs without it; then its link comes back: it catches up to the ledger's model and
  contributes again;
- then every operator moves its peer behind a relay that adds delay (``swarm peer set-address``
  to the relay's address): the last rounds run through the relays, with every hospital;
- ``swarm audit verify`` finds no error, and every peer ends on the ledger's latest model.

Skipped where network namespaces cannot be made (not root, no ``ip``, no anvil).
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from localnet.anvil import KEPT_STATES, MIN_BLOCK_TIME, anvil_binary
from localnet.network import HOSPITALS
from localnet.peers import HEART_SITES
from localnet.process import terminate
from swarm.audit import build_history
from swarm.audit.history import RoundHistory
from swarm.ledger import LedgerClient, RoundState, RpcChain
from swarm.training.checkpoint import latest_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

#: the heart study's per-hospital files, in HEART_SITES order; each host gets its own only
HEART_DATA = Path(__file__).resolve().parents[2] / "examples" / "heart" / "data"
HEART_FILES = ("cleveland.csv", "hungary.csv", "switzerland.csv", "va-long-beach.csv")

REPO = Path(__file__).resolve().parents[2]
#: the installed command, as an operator types it
SWARM = str(Path(sys.executable).with_name("swarm"))

JOIN_WINDOW, KEY_WINDOW, COMMIT_WINDOW, MERGE_WINDOW, ACK_WINDOW = 10, 10, 12, 10, 10
CUT_ROUND = 2
#: whole rounds, at the end, that run with every hospital behind a delaying relay (at least)
DELAYED_ROUNDS = 2
DELAY_MS = 80
PORT = 4001
RELAY_PORT = 5001
GAS_MONEY = "0x3635C9ADC5DEA00000"  # 1000 ETH of a development chain


# --- the hosts ----------------------------------------------------------------------------


def _skip_reason() -> str | None:
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if not Path(SWARM).exists():
        return f"the swarm command is not installed next to {sys.executable}"
    try:
        anvil_binary()
    except Exception as exc:
        return f"no anvil: {exc}"
    probe = f"swprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _free_subnet() -> str:
    """A 10.x.y.0/24 that no interface or route of this machine uses (``"10.x.y"``)."""
    used = (
        subprocess.run(
            ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True
        ).stdout
        + subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
    )
    networks = []
    for word in used.split():
        try:
            networks.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    rng = random.Random(secrets.randbits(64))
    for _ in range(200):
        candidate = ipaddress.ip_network(f"10.{rng.randint(64, 254)}.{rng.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(n) for n in networks if n.prefixlen > 0):
            return str(candidate.network_address).rsplit(".", 1)[0]
    raise RuntimeError("no free 10.x.y.0/24 for the test network")


class Hosts:
    """Namespaces on one bridge, with unique names, and the processes started in them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.tag = "sw" + secrets.token_hex(3)  # interface names: at most 15 characters
        self.net = _free_subnet()
        self.bridge = f"{self.tag}-br"
        self.namespaces: list[str] = []
        self.root_links: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: dict[str, Path] = {}
        self._add_namespace(self.bridge)
        self.ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        self.ip("-n", self.bridge, "link", "set", "br0", "up")

    def ip(self, *args: str) -> None:
        done = subprocess.run(["ip", *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")

    def _add_namespace(self, name: str) -> None:
        self.ip("netns", "add", name)
        self.namespaces.append(name)
        self.ip("-n", name, "link", "set", "lo", "up")

    def host(self, name: str, last_octet: int) -> tuple[str, str]:
        """A namespace ``<tag>-<name>`` wired to the bridge: (namespace, its IP address)."""
        ns = f"{self.tag}-{name}"
        self._add_namespace(ns)
        return ns, self._wire(ns, name, last_octet)

    def wire_this_process(self) -> str:
        """An address for the test's own (root) namespace on the bridge, to read the ledger."""
        return self._wire(None, "x", 254)

    def _wire(self, ns: str | None, name: str, last_octet: int) -> str:
        inside, at_bridge = f"{self.tag}{name}a", f"{self.tag}{name}b"
        address = f"{self.net}.{last_octet}"
        self.ip("link", "add", inside, "type", "veth", "peer", "name", at_bridge)
        if ns is None:
            self.root_links.append(inside)
        else:
            self.ip("link", "set", inside, "netns", ns)
        self.ip("link", "set", at_bridge, "netns", self.bridge)
        self.ip("-n", self.bridge, "link", "set", at_bridge, "master", "br0")
        self.ip("-n", self.bridge, "link", "set", at_bridge, "up")
        where = [] if ns is None else ["-n", ns]
        self.ip(*where, "addr", "add", f"{address}/24", "dev", inside)
        self.ip(*where, "link", "set", inside, "up")
        return address

    def cut(self, name: str) -> None:
        """Pull the host's cable at the switch: its link goes down, its connections go silent."""
        self.ip("-n", self.bridge, "link", "set", f"{self.tag}{name}b", "down")

    def restore(self, name: str) -> None:
        self.ip("-n", self.bridge, "link", "set", f"{self.tag}{name}b", "up")

    def run(
        self, ns: str, *args: str, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """A command typed on the host ``ns`` (``ip netns exec``), from the test's directory."""
        done = subprocess.run(
            ["ip", "netns", "exec", ns, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.workdir,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"`{' '.join(args)}` on {ns} exited {done.returncode}:\n{done.stderr[-3000:]}"
            )
        return done

    def swarm(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(ns, SWARM, *args, check=check)

    def start(self, ns: str, label: str, *args: str, env: dict[str, str] | None = None) -> int:
        """A long-running process on host ``ns``, its output in ``<label>.log``."""
        log_path = self.workdir / f"{label}.log"
        self.logs[label] = log_path
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *args],  # ip execs the command: the same PID
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env={**os.environ, **(env or {})},
            )
        self.procs.append(proc)
        return len(self.procs) - 1

    def stop(self, index: int, timeout: float = 20.0) -> int | None:
        proc = self.procs[index]
        terminate(proc.pid, lambda: proc.poll() is None, proc, timeout=timeout)
        return proc.returncode

    def print_logs(self, lines: int = 40) -> None:
        for label, path in self.logs.items():
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            print(f"==== {label} ({path})", *text[-lines:], sep="\n")

    def close(self) -> None:
        for index, proc in enumerate(self.procs):
            if proc.poll() is None:
                self.stop(index, timeout=10)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for link in self.root_links:  # gone with its peer end already, normally
            subprocess.run(["ip", "link", "del", link], capture_output=True)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    lab = Hosts(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


# --- the scenario -------------------------------------------------------------------------


def _wait(what: str, condition: Callable[[], bool], timeout: float, poll: float = 0.3) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception as exc:  # a ledger read during a block: try again
            print(f"(while waiting for {what}: {exc})")
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.timeout(1200)  # ~5 min on an idle 2-core machine; much more under load
def test_a_consortium_across_hosts_survives_a_cut_link_and_delay(hosts: Hosts) -> None:
    work = hosts.workdir
    began = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f} s] {text}", flush=True)

    password = work / "password"
    password.write_text(secrets.token_urlsafe(12) + "\n")
    chain_ns, chain_ip = hosts.host("chain", 2)
    relay_ns, relay_ip = hosts.host("relay", 3)
    names = [f"h{i}" for i in range(4)]
    spots = [hosts.host(name, 10 + i) for i, name in enumerate(names)]
    hosts.wire_this_process()
    url = f"http://{chain_ip}:8545"

    try:
        # --- the chain: a development chain on its own host, blocks every 3 s --------------
        home = work / "chain-home"
        home.mkdir()
        hosts.start(
            chain_ns,
            "anvil",
            str(anvil_binary()),
            "--host",
            chain_ip,
            "--port",
            "8545",
            "--prune-history",
            str(KEPT_STATES),
            "--block-time",
            f"{MIN_BLOCK_TIME:g}",
            "--mixed-mining",
            env={"HOME": str(home)},
        )
        _wait("anvil", lambda: _rpc_ok(url), 30)

        def fund(address: str) -> None:  # the admin guide's curl, for a development chain
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "anvil_setBalance",
                "params": [address, GAS_MONEY],
            }
            hosts.run(
                chain_ns,
                "curl",
                "-sf",
                "-H",
                "Content-Type: application/json",
                "--data",
                json.dumps(body),
                url,
            )

        # --- the admin: a key, the contract ----------------------------------------------
        admin_key = work / "admin" / "key.json"
        # the consortium's task file, as the admin writes it (docs/own-data.md)
        task_file = work / "admin" / "task.toml"
        task_file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(HEART_DATA.parent / "task.toml", task_file)
        pw = ["--password-file", str(password)]
        hosts.swarm(chain_ns, "keys", "new", "-k", str(admin_key), *pw)
        admin = json.loads(
            hosts.swarm(chain_ns, "keys", "show", "-k", str(admin_key), *pw, "--json").stdout
        )
        fund(admin["address"])
        deployed = hosts.swarm(
            chain_ns,
            "admin",
            "deploy",
            "-k",
            str(admin_key),
            *pw,
            "--chain-url",
            url,
            "--task-file",
            str(task_file),
            "--min-peers",
            "3",
            "--join-window",
            str(JOIN_WINDOW),
            "--key-window",
            str(KEY_WINDOW),
            "--commit-window",
            str(COMMIT_WINDOW),
            "--merge-window",
            str(MERGE_WINDOW),
            "--ack-window",
            str(ACK_WINDOW),
            "--json",
        )
        contract = json.loads(deployed.stdout)["contract"]
        say(f"deployed {contract} on {url}")
        ledger_args = ["--chain-url", url, "--contract", contract]

        # h0, h1, h2 listen on every interface (h2 also announces its address), h3 on its own
        listen = [f"/ip4/0.0.0.0/tcp/{PORT}"] * 3 + [f"/ip4/{spots[3][1]}/tcp/{PORT}"]
        announce = [[], [], [f"/ip4/{spots[2][1]}/tcp/{PORT}"], []]

        # --- each operator, on its own host: a key, its member card, its peer's config ------
        def make_key(i: int) -> dict[str, str]:
            ns, _ = spots[i]
            key = work / names[i] / "key.json"
            hosts.swarm(ns, "keys", "new", "-k", str(key), *pw)
            shown = hosts.swarm(ns, "keys", "show", "-k", str(key), *pw, "--json").stdout
            (work / names[i] / "member-card.json").write_text(shown)  # `> member-card.json`
            card: dict[str, str] = json.loads(shown)
            return card

        def configure(i: int) -> Path:
            ns, _ = spots[i]
            config = work / names[i] / "peer.toml"
            extra = [arg for a in announce[i] for arg in ("--announce", a)]
            # the hospital's own data and the consortium's task file, on its own host only
            own = work / names[i] / "patients.csv"
            shutil.copy(HEART_DATA / HEART_FILES[i], own)
            hospital_task = work / names[i] / "task.toml"
            shutil.copy(task_file, hospital_task)
            hosts.swarm(ns, "task", "check", str(hospital_task), "--data", str(own))
            hosts.swarm(
                ns,
                "peer",
                "init",
                "-k",
                str(work / names[i] / "key.json"),
                "--task-file",
                str(hospital_task),
                "--data",
                str(own),
                "--site",
                HEART_SITES[i],
                *ledger_args,
                "--listen",
                listen[i],
                *extra,
                "--data-dir",
                str(work / names[i] / "data"),
                *pw,
                "--out",
                str(config),
            )
            return config

        with ThreadPoolExecutor(8) as pool:
            card_jobs = [pool.submit(make_key, i) for i in range(4)]
            config_jobs: list[Future[Path]] = []
            # --- meanwhile the admin funds and admits each at the address its operator sent
            cards = []
            for i, job in enumerate(card_jobs):
                card = job.result()
                cards.append(card)
                fund(card["address"])
                hosts.swarm(
                    chain_ns,
                    "admin",
                    "add-member",
                    "-k",
                    str(admin_key),
                    *pw,
                    *ledger_args,
                    "--card",
                    str(work / names[i] / "member-card.json"),
                    "--name",
                    HOSPITALS[i],
                    "--multiaddr",
                    f"/ip4/{spots[i][1]}/tcp/{PORT}",
                )
                # `peer init` checks the hospital's admission: it runs once admitted
                config_jobs.append(pool.submit(configure, i))
            configs = [job.result() for job in config_jobs]
        say("hospitals admitted and configured; starting their peers")
        peers = [
            hosts.start(
                spots[i][0],
                names[i],
                SWARM,
                "-v",
                "peer",
                "run",
                "--config",
                str(configs[i]),
                "--plain",
            )
            for i in range(4)
        ]
        # relays with delay, on a host of their own, ready for the last rounds
        forwards = [f"{relay_ip}:{RELAY_PORT + i}={spots[i][1]}:{PORT}" for i in range(len(names))]
        hosts.start(
            relay_ns,
            "relay",
            sys.executable,
            "-m",
            "tests.support.relay",
            "--delay-ms",
            str(DELAY_MS),
            *(arg for f in forwards for arg in ("--forward", f)),
            env={"PYTHONPATH": str(REPO)},
        )

        ledger = LedgerClient(RpcChain(url), contract)
        address = [card["address"] for card in cards]
        _wait("round 1 to open", lambda: ledger.current_round() >= 1, 180)

        # --- round 2: cut a plain participant that listens on 0.0.0.0 as roles are drawn ----
        _wait(
            f"round {CUT_ROUND}'s roles",
            lambda: (
                ledger.current_round() >= CUT_ROUND
                and ledger.round(CUT_ROUND).state >= RoundState.KEYING
            ),
            240,
            poll=0.1,
        )
        order = list(ledger.round(CUT_ROUND).order)
        on_any = {address[i] for i in range(4) if listen[i].startswith("/ip4/0.0.0.0/")}
        victim_address = next(a for a in order[2:] if a in on_any)
        victim = address.index(victim_address)
        hosts.cut(names[victim])
        say(f"cut {names[victim]} ({victim_address}) in round {CUT_ROUND}, order {order}")

        # --- meanwhile h3's peer started again on another host, same key: refused, one line
        twin_config = work / "twin" / "peer.toml"
        twin_config.parent.mkdir()
        twin_config.write_text(
            configs[3]
            .read_text()
            .replace(str(work / names[3] / "data"), str(work / "twin" / "data"))
            .replace(f"/ip4/{spots[3][1]}/tcp/{PORT}", f"/ip4/0.0.0.0/tcp/{PORT}")
        )
        twin = hosts.swarm(relay_ns, "peer", "run", "--config", str(twin_config), check=False)
        assert twin.returncode != 0
        errors = [line for line in twin.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "already runs at" in errors[0], twin.stderr[-2000:]
        assert f"{spots[3][1]}/tcp/{PORT}" in errors[0]
        say(f"the twin of {names[3]} was refused: {errors[0]}")

        _wait(
            f"round {CUT_ROUND + 1} to finish without it",
            lambda: ledger.last_finalized_round() >= CUT_ROUND + 1,
            240,
        )
        hosts.restore(names[victim])
        say(f"restored {names[victim]} after round {CUT_ROUND + 1}")

        # --- it catches up and contributes again; then everyone moves behind a relay ------
        def contributed_since_restore() -> bool:
            history = build_history(ledger.events())
            return any(
                victim_address in history.rounds[r].contributors
                for r in range(CUT_ROUND + 2, ledger.last_finalized_round() + 1)
                if r in history.rounds
            )

        _wait(f"{names[victim]} to contribute again", contributed_since_restore, 240, poll=1.0)

        def move(i: int) -> None:
            hosts.swarm(
                spots[i][0],
                "peer",
                "set-address",
                "--config",
                str(configs[i]),
                "--multiaddr",
                f"/ip4/{relay_ip}/tcp/{RELAY_PORT + i}",
            )

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(move, range(4)))
        # the round open now may have started with direct connections; the next ones may not
        relayed_from = ledger.current_round() + 1
        say(f"every hospital behind the relays from round {relayed_from} on")
        last = relayed_from + DELAYED_ROUNDS - 1
        _wait(f"round {last}", lambda: ledger.last_finalized_round() >= last, 300)

        # --- the operators stop their peers, once each holds the ledger's latest model -------
        def synced() -> bool:
            nonlocal last
            last = ledger.last_finalized_round()
            current = ledger.round(ledger.current_round())
            if current.round_id != last and current.state >= RoundState.MERGING:
                return False  # the next round could finalize before the peers have stopped
            model = ledger.round(last).final_model
            held = [latest_checkpoint(work / n / "data" / "checkpoints") for n in names]
            return all(c is not None and c.model_hash == model for c in held)

        _wait("every peer to hold the latest model", synced, 120, poll=0.2)
        for p in peers:
            os.kill(hosts.procs[p].pid, signal.SIGTERM)
        _wait(
            "the peers to stop", lambda: all(hosts.procs[p].poll() is not None for p in peers), 60
        )
        say(f"stopped the peers after round {last}")
        codes = [hosts.procs[p].returncode for p in peers]
        assert codes == [0, 0, 0, 0], f"peer exit codes {codes} (SIGTERM is a clean stop)"
    except BaseException:
        hosts.print_logs()
        raise

    # --- what the ledger says ----------------------------------------------------------------
    history = build_history(ledger.events())
    rounds: dict[int, RoundHistory] = {r: history.rounds[r] for r in range(1, last + 1)}
    for r in [*range(1, CUT_ROUND + 2), *range(relayed_from, last + 1)]:
        assert rounds[r].outcome == "finalized", (r, rounds[r].outcome)
    assert set(rounds[1].contributors) == set(address)
    # round 2: the cut hospital had joined; the other three finished without it, in time
    cut = rounds[CUT_ROUND]
    others = set(address) - {victim_address}
    assert victim_address in cut.joined and victim_address not in cut.contributors
    assert set(cut.contributors) == others and cut.replacements == []
    posted = next(e for e in cut.events if e.name == "RoundKeyPosted").timestamp
    finalized = next(e for e in cut.events if e.name == "RoundFinalized").timestamp
    assert finalized - posted <= COMMIT_WINDOW + MERGE_WINDOW
    # round 3: without it (its link was down); afterwards it contributed again
    assert victim_address not in rounds[CUT_ROUND + 1].joined
    assert any(victim_address in rounds[r].contributors for r in range(CUT_ROUND + 2, last + 1))
    # the last rounds ran through the relays, with everyone
    relayed = hosts.logs["relay"].read_text().count("connection ")
    assert relayed >= 3, "the peers did not dial each other through the relays"
    members = {m.address: m for m in ledger.members()}
    assert all(members[a].multiaddrs[0].startswith(f"/ip4/{relay_ip}/") for a in address)
    for r in range(relayed_from, last + 1):
        assert set(rounds[r].contributors) == set(address), f"round {r} (behind the relays)"
    # every peer, the cut one included, ended on the ledger's latest model (``synced``)
    assert ledger.last_finalized_round() == last
    audit = hosts.swarm(chain_ns, "audit", "verify", *ledger_args, check=False)
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-2000:]


def _rpc_ok(url: str) -> bool:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    try:
        return requests.post(url, json=body, timeout=1).ok
    except requests.RequestException:
        return False
