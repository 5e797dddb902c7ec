"""`swarm peer`: what a hospital's operator runs."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import (
    ChainUrlOpt,
    ContractOpt,
    Interrupted,
    JsonOpt,
    check_peer_config,
    console,
    load_identity,
    print_json,
    resolve_chain,
    stop_signals_raise,
)
from cli.events import EventPrinter, LogFormat, format_option, route_logging
from cli.pidfile import hold_pid_file, running_peer
from swarm.errors import ConfigError, LedgerError, SwarmError

if TYPE_CHECKING:
    from swarm.peer import Peer, PeerHooks

log = logging.getLogger(__name__)

app = typer.Typer(help="Set up and run this hospital's peer.")

#: Test hooks for `swarm peer run` (tests/e2e/faulty_peer.py sets them); None in real use.
PEER_HOOKS: PeerHooks | None = None

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", envvar="SWARM_PEER_CONFIG", help="The peer's config file.")
]


@app.command("init")
def init(
    keystore: Annotated[Path, typer.Option("--keystore", "-k", help="This hospital's key file.")],
    task_file: Annotated[
        Path | None,
        typer.Option(
            "--task-file",
            help="The consortium's task file (task.toml from the admin). Its hash must be the "
            "ledger's task id.",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="This hospital's own data for the task file: a CSV file, an image folder, or "
            "what the task's plugin reads. Check it first: swarm task check.",
        ),
    ] = None,
    site: Annotated[
        str | None,
        typer.Option(
            help="This hospital's name in logs and reports (default: the data's file name); "
            "for a built-in task, which of its sites is this hospital's data, e.g. Cleveland."
        ),
    ] = None,
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    listen: Annotated[
        list[str] | None,
        typer.Option(help="Where the peer listens (repeatable). Default /ip4/0.0.0.0/tcp/4001."),
    ] = None,
    announce: Annotated[
        list[str] | None,
        typer.Option(
            help="What the peer announces (repeatable), e.g. /ip4/203.0.113.10/tcp/4001. "
            "Default: its --listen addresses that are not 0.0.0.0."
        ),
    ] = None,
    task: Annotated[
        str, typer.Option(help="A built-in task's name (instead of --task-file).")
    ] = "heart-disease-uci/logreg",
    seed: Annotated[
        int, typer.Option(min=0, help="The consortium's task seed (its initial model).")
    ] = 0,
    data_dir: Annotated[Path, typer.Option(help="Checkpoints and round data.")] = Path(
        "swarm-data"
    ),
    password_file: Annotated[
        Path | None, typer.Option(help="File with the key's password, for unattended runs.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Config file to write.")] = Path(
        "peer.toml"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing config file.")] = False,
) -> None:
    """Write this hospital's peer config: its key, the ledger, where it listens, its data.

    Checks first, each failure one line: the chain answers, the contract is there, this key is
    an active member, and the task (and seed) is the one the ledger records."""
    from swarm.config import PeerConfig, check_p2p_addresses
    from swarm.identity import read_keystore_address
    from swarm.ledger import LedgerClient, connect
    from swarm.training.task_id import check_ledger_task
    from swarm.training.taskfile import consortium_task, default_site

    listen_addrs, announce_addrs = check_p2p_addresses(
        listen or ["/ip4/0.0.0.0/tcp/4001"], announce or [], where="--"
    )
    url, address = resolve_chain(chain_url, contract)
    if address is None:
        raise ConfigError("no contract given: pass --contract (or SWARM_CONTRACT)")
    if not keystore.exists():
        raise ConfigError(f"{keystore}: no such key file (make one: swarm keys new)")
    if task_file is not None:
        if data is None:
            raise ConfigError("--task-file needs --data: this hospital's own data for the task")
        if not data.exists():
            raise ConfigError(f"--data {data}: no such file or folder")
        site = site or default_site(data)
    elif site is None:
        raise ConfigError("give --task-file and --data (or --site for a built-in task)")
    resolved = consortium_task(
        task_file=task_file.resolve() if task_file else None,
        data=data.resolve() if data else None,
        site=site,
        name=task,
        seed=seed,
    )
    if out.exists() and not force:
        raise ConfigError(f"{out} exists (use --force to overwrite)")
    me = read_keystore_address(keystore)
    ledger = LedgerClient(connect(url), address)  # the chain answers, the contract is there
    member = ledger.member(me)
    if member is None or not member.active:
        raise ConfigError(
            f"{me} is not an active member of the consortium at {ledger.address}: send your "
            "member card (swarm keys show --json) to the consortium admin to be admitted"
        )
    check_ledger_task(ledger.params().task_id, resolved.task_id, resolved.described)
    config = PeerConfig(
        keystore=keystore.resolve(),
        password_file=password_file.resolve() if password_file else None,
        chain_url=url,
        contract=address,
        listen=listen_addrs,
        announce=announce_addrs,
        task=task,
        site=site,
        seed=seed,
        task_file=task_file.resolve() if task_file else None,
        data=data.resolve() if data else None,
        data_dir=data_dir.resolve(),
    )
    out.write_text(config.to_toml())
    console.print(f"wrote {out}: run it with `swarm peer run --config {out}`")


def _libc() -> Any:
    """The C library (ctypes), or None where there is none to load."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def _cap_malloc_arenas(arenas: int = 2) -> None:
    """At most ``arenas`` glibc malloc arenas. The peer's worker threads come and go (trio's
    thread cache); each new thread can get an arena that keeps freed memory: a 200-round soak
    grew 30-58 MB per 100 rounds with in-use memory flat, +6-25 MB with 2 arenas. Same as
    MALLOC_ARENA_MAX=2; a no-op where there is no glibc."""
    try:
        _libc().mallopt(-8, arenas)  # -8: M_ARENA_MAX
    except AttributeError:  # no libc, or one without mallopt (not glibc)
        return


#: Events after which a round is over for this peer: its buffers (updates, blobs, the
#: aggregate, training tensors) are garbage by then.
_ROUND_OVER = frozenset({"finalized", "lapsed", "caught up"})


def _trim_heap_after_rounds(
    on_event: Callable[[str, dict[str, Any]], None],
) -> Callable[[str, dict[str, Any]], None]:
    """``on_event``, then glibc's ``malloc_trim(0)`` once a round is over: free pages inside
    the heap go back to the OS instead of staying in the peer's RSS (large blocks freed during a
    round raise glibc's mmap threshold, so later ones come from the heap and leave holes in it).
    Measured on the 4-hospital heart localnet: 5-10 MB less RSS per peer; one call takes
    milliseconds at most.
    ``on_event`` unchanged where the C library has no malloc_trim (not glibc)."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return on_event

    def handle(kind: str, data: dict[str, Any]) -> None:
        on_event(kind, data)
        if kind in _ROUND_OVER:
            trim(0)

    return handle


@app.command("run")
def run(
    config_path: ConfigOpt = Path("peer.toml"),
    rounds: Annotated[
        int | None, typer.Option(help="Stop once the ledger has this many finalized rounds.")
    ] = None,
    plain: Annotated[
        bool, typer.Option(help="Plain log lines (for files and services): --log-format plain.")
    ] = False,
    log_format: Annotated[
        LogFormat | None,
        typer.Option(
            "--log-format",
            help="rich (for a terminal), plain (timestamped lines) or json (one object a line).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the peer: join rounds, train on local data, exchange encrypted updates, merge when
    chosen, and keep the finalized models (checkpoints in the data directory).

    SIGTERM stops it cleanly with exit code 0, Ctrl-C (SIGINT) with 130."""
    import dataclasses

    _cap_malloc_arenas()
    fmt = format_option(plain, log_format)
    printer = EventPrinter(fmt, "-")
    try:
        with stop_signals_raise():  # a SIGTERM while it starts (imports, loading) too
            from cli.app import log_handler
            from swarm.config import PeerConfig
            from swarm.ledger import LedgerClient, connect
            from swarm.peer import Peer  # imports libp2p, which resets its loggers: first

            config = PeerConfig.load(config_path)
            if rounds is not None:
                if rounds < 0:
                    raise ConfigError(f"--rounds must be at least 0, not {rounds}")
                config = dataclasses.replace(config, rounds=rounds)
            check_peer_config(config)
            printer = EventPrinter(fmt, config.site)
            with (
                hold_pid_file(config.data_dir, config_path.resolve()),
                route_logging(log_handler(), printer),
            ):
                identity = load_identity(config.keystore, config.password_file)
                ledger = LedgerClient(connect(config.chain_url), config.contract, identity)
                if not ledger.is_member(identity.address):
                    raise ConfigError(
                        f"{identity.address} is not an active member of this consortium"
                    )
                peer = Peer(
                    config,
                    identity,
                    ledger,
                    on_event=_trim_heap_after_rounds(printer.event),
                    hooks=PEER_HOOKS,
                    p2p_config=config.p2p_config(),  # [p2p] listen and announce
                )
                signum = _run_peer(peer)
    except Interrupted as exc:  # SIGTERM before the peer ran (loading, connecting)
        signum = exc.signum
    except KeyboardInterrupt:  # Ctrl-C before the peer ran
        signum = signal.SIGINT
    if signum is not None:
        printer.event("stopped", {"signal": signal.Signals(signum).name})
        if signum == signal.SIGINT:
            raise typer.Exit(130)


def _run_peer(peer: Peer) -> int | None:
    """Run the peer until it is done (None) or a SIGINT/SIGTERM stopped it (the signal)."""
    import trio

    received: list[int] = []

    async def main() -> None:
        # Held until the peer has shut down: a second Ctrl-C meanwhile is not a traceback.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    async for signum in signals:
                        received.append(signum)
                        nursery.cancel_scope.cancel()
                        return

                nursery.start_soon(stop_on_signal)
                await peer.run()
                nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except BaseExceptionGroup as group:
        if received:  # something failed while the peer shut down on a signal
            log.debug("while stopping: %r", group)
        else:
            _raise_swarm_error(group)
            raise
    return received[0] if received else None


def _raise_swarm_error(group: BaseExceptionGroup[BaseException]) -> None:
    """The peer's one error out of trio's exception group, so it is printed as one line."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    if len(leaves) == 1 and isinstance(leaves[0], SwarmError):
        raise leaves[0]


@app.command("status")
def status(config_path: ConfigOpt = Path("peer.toml"), json_out: JsonOpt = False) -> None:
    """Whether this peer runs (its data directory's peer.pid), and its newest checkpoint next to
    the ledger's latest model and current round."""
    from swarm.config import PeerConfig
    from swarm.identity import read_keystore_address
    from swarm.ledger import LedgerClient, connect
    from swarm.training.checkpoint import latest_checkpoint

    config = PeerConfig.load(config_path)
    address = read_keystore_address(config.keystore)
    proc = running_peer(config.data_dir)
    ck = latest_checkpoint(config.data_dir / "checkpoints")
    info: dict[str, Any] = {
        "address": address,
        "site": config.site,
        "running": proc is not None,
        "pid": proc.get("pid") if proc else None,
        "running_since": proc.get("started") if proc else None,
        "checkpoint_round": ck.round_id if ck else None,
        "checkpoint_model": ck.model_hash if ck else None,
    }
    error: LedgerError | None = None
    try:
        ledger = LedgerClient(connect(config.chain_url), config.contract)
        latest = ledger.latest_model()
        rid = ledger.current_round()
        info.update(
            member=ledger.is_member(address),
            ledger_latest_model=latest,
            in_sync=bool(ck and ck.model_hash == latest),
            current_round=rid,
            current_round_state=ledger.round(rid).state.name.lower() if rid else "none",
        )
    except LedgerError as exc:  # what runs here is worth telling even with the chain down
        error = exc
        info["ledger_error"] = str(exc)
    if json_out:
        print_json(info)
    else:
        _print_status(info, config.site)
    if error is not None:
        raise error


def _print_status(info: dict[str, Any], site: str) -> None:
    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    member = {True: "yes", False: "NO"}.get(info.get("member"), "?")  # type: ignore[arg-type]
    say(f"peer       {info['address']} ({site}), member: {member}")
    if info["running"]:
        since = info["running_since"]
        when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since)) if since else ""
        say(f"process    running, pid {info['pid']}{when}")
    else:
        say("process    not running")
    ck_model = info["checkpoint_model"]
    say(
        f"checkpoint round {info['checkpoint_round'] or '-'}, model "
        f"{('0x' + ck_model.hex()[:16]) if ck_model else '-'}"
    )
    if "ledger_latest_model" in info:
        say(
            f"ledger     latest model 0x{info['ledger_latest_model'].hex()[:16]}, round "
            f"{info['current_round']} {info['current_round_state']}"
        )
        say("in sync" if info["in_sync"] else "not in sync (the peer catches up when it runs)")


@app.command("set-address")
def set_address(
    config_path: ConfigOpt = Path("peer.toml"),
    multiaddr: Annotated[
        list[str] | None,
        typer.Option(
            "--multiaddr",
            help="Where the other hospitals reach this peer, e.g. /ip4/203.0.113.10/tcp/4001 "
            "(repeatable). Default: the config's [p2p] announce, else its listen addresses "
            "that are not 0.0.0.0.",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Set this peer's multiaddrs on the ledger: where every other member dials it.

    For a peer that moved (a new IP, port or port forward). Running peers read the change at
    their next look at the member list (seconds) and reconnect there; this peer restarts only
    if where it listens changed too. Sent with this hospital's own key (a transaction).
    """
    from swarm.config import PeerConfig
    from swarm.ledger import LedgerClient, connect
    from swarm.p2p.config import addresses_to_announce, dialable_multiaddrs

    config = PeerConfig.load(config_path)
    if multiaddr:
        addrs = dialable_multiaddrs(multiaddr, what="--multiaddr")
    else:
        addrs = addresses_to_announce(config.announce, config.listen)
        if not addrs:
            raise ConfigError(
                f"{config_path} listens on every interface and announces nothing: give "
                "--multiaddr /ip4/<the address other hospitals reach this peer at>/tcp/<port>"
            )
    identity = load_identity(config.keystore, config.password_file)
    ledger = LedgerClient(connect(config.chain_url), config.contract, identity)
    member = ledger.member(identity.address)
    if member is None or not member.active:
        raise ConfigError(f"{identity.address} is not an active member of this consortium")
    before = list(member.multiaddrs)
    changed = before != list(addrs)
    if changed:
        ledger.update_multiaddrs(list(addrs))
    if json_out:
        info = {"address": identity.address, "multiaddrs": list(addrs), "was": before}
        print_json({**info, "changed": changed})
        return
    where = ", ".join(addrs)
    if changed:
        console.print(
            f"the ledger now lists {identity.address} at {where} (was {', '.join(before) or '-'})",
            markup=False,
            highlight=False,
        )
    else:
        console.print(
            f"the ledger already lists {identity.address} at {where}", markup=False, highlight=False
        )
