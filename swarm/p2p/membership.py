"""Who may talk to us: the ledger's active members, followed as the ledger changes.

libp2p has no allow-list by PeerID, so this module is the gate. A secp256k1 PeerID embeds its
public key, and that key's Ethereum address is what the ledger lists; an authenticated (Noise)
connection therefore tells us the remote's address without trusting anything it says. The
:class:`MembershipGate` answers "is this peer an active member?", the
:class:`MembershipWatcher` keeps it in step with a :class:`MembershipSource` (the ledger) and
reports removals so their connections can be closed.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import trio

from swarm.errors import ConfigError
from swarm.identity import Identity, address_of_peer_id
from swarm.ledger.types import Member

if TYPE_CHECKING:
    # trio-typing's stubs (a dependency of libp2p) shadow trio's own annotations for mypy
    from trio_typing import TaskStatus

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def run_in_thread_abandoning(fn: Callable[[], T]) -> T:
    """Run a blocking call in a worker thread; on cancellation, stop waiting for it.

    A ledger read can hang on a dead RPC endpoint; shutdown must not wait for it.
    """
    # the stale trio-typing stubs do not know abandon_on_cancel (trio >= 0.23)
    run_sync: Any = trio.to_thread.run_sync
    return cast(T, await run_sync(fn, abandon_on_cancel=True))


class MembershipSource(Protocol):
    """Where the member list comes from; blocking, called from a worker thread."""

    def active_members(self) -> Sequence[Member]: ...


class _HasMembers(Protocol):
    def members(self) -> Sequence[Member]: ...


class LedgerMembershipSource:
    """Adapts a ledger client (anything with a blocking ``members()``) to a MembershipSource."""

    def __init__(self, ledger: _HasMembers) -> None:
        self._ledger = ledger

    def active_members(self) -> Sequence[Member]:
        return [member for member in self._ledger.members() if member.active]


class StaticMembershipSource:
    """A fixed list, for tests and single-process tools."""

    def __init__(self, members: Sequence[Member]) -> None:
        self.members = list(members)

    def active_members(self) -> Sequence[Member]:
        return [member for member in self.members if member.active]


class JsonFileMembershipSource:
    """Members read from a JSON file (a list of member objects), re-read on every poll.

    Stands in for the ledger in multi-process tests and local runs: rewriting the file (with
    :func:`write_members_file`, atomically) is how a test adds or removes a member.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def active_members(self) -> Sequence[Member]:
        return [member for member in read_members_file(self.path) if member.active]


def member_to_json(member: Member) -> dict[str, Any]:
    return {
        "address": member.address,
        "public_key": member.public_key.hex(),
        "peer_id": member.peer_id,
        "multiaddrs": list(member.multiaddrs),
        "name": member.name,
        "active": member.active,
        "added_at": member.added_at,
        "encryption_key": member.encryption_key.hex(),
    }


def member_from_json(data: Mapping[str, Any]) -> Member:
    try:
        return Member(
            address=str(data["address"]),
            public_key=bytes.fromhex(str(data["public_key"]).removeprefix("0x")),
            peer_id=str(data["peer_id"]),
            multiaddrs=tuple(str(a) for a in data.get("multiaddrs", ())),
            name=str(data.get("name", "")),
            active=bool(data.get("active", True)),
            added_at=int(data.get("added_at", 0)),
            encryption_key=bytes.fromhex(
                str(data.get("encryption_key", "00" * 32)).removeprefix("0x")
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"member entry is malformed: {exc}") from exc


def read_members_file(path: Path) -> list[Member]:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the members file ({exc})") from exc
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: a members file holds a JSON list")
    return [member_from_json(entry) for entry in raw]


def write_members_file(path: Path, members: Sequence[Member]) -> None:
    """Write atomically (temp file + rename) so a concurrent reader never sees half a list."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump([member_to_json(m) for m in members], fh, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def member_of_identity(
    identity: Identity,
    multiaddrs: Sequence[str] = (),
    *,
    name: str = "",
    active: bool = True,
    added_at: int = 0,
) -> Member:
    """The Member record the ledger would hold for this key (tests, localnet)."""
    return Member(
        address=identity.address,
        public_key=identity.public_key,
        peer_id=identity.peer_id,
        multiaddrs=tuple(multiaddrs),
        name=name,
        active=active,
        added_at=added_at,
        encryption_key=identity.encryption_public_key,
    )


@dataclass(frozen=True)
class MembershipChange:
    added: frozenset[str]  # addresses
    removed: frozenset[str]
    #: members still active whose multiaddrs on the ledger changed (``swarm peer set-address``)
    readdressed: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.readdressed)


class MembershipGate:
    """The current set of active members, and the check every connection and stream goes through.

    Fails closed: until the first successful poll, nobody is a member.
    """

    def __init__(self) -> None:
        self._members: dict[str, Member] = {}
        self._address_of_peer: dict[str, str | None] = {}

    @property
    def members(self) -> Mapping[str, Member]:
        """Active members by checksummed address."""
        return self._members

    def update(self, members: Sequence[Member]) -> MembershipChange:
        new = {m.address: m for m in members if m.active}
        for member in new.values():
            if self.address_of_peer(member.peer_id) != member.address:
                # the ledger's PeerID string is only used to dial; the gate trusts the key a
                # connection authenticates, so such a member can still reach us
                logger.warning(
                    "member %s lists PeerID %s, which is not its key",
                    member.address,
                    member.peer_id,
                )
        change = MembershipChange(
            added=frozenset(new.keys() - self._members.keys()),
            removed=frozenset(self._members.keys() - new.keys()),
            readdressed=frozenset(
                a
                for a in new.keys() & self._members.keys()
                if new[a].multiaddrs != self._members[a].multiaddrs
            ),
        )
        self._members = new
        return change

    def address_of_peer(self, peer_id: str) -> str | None:
        """The Ethereum address of the key a PeerID embeds (None if it embeds no secp256k1 key)."""
        if peer_id not in self._address_of_peer:
            try:
                address: str | None = address_of_peer_id(peer_id)
            except ValueError:
                address = None
            if len(self._address_of_peer) > 10_000:  # bounded: PeerIDs come from strangers
                self._address_of_peer.clear()
            self._address_of_peer[peer_id] = address
        return self._address_of_peer[peer_id]

    def member(self, address: str) -> Member | None:
        return self._members.get(address)

    def member_of_peer(self, peer_id: str) -> Member | None:
        address = self.address_of_peer(peer_id)
        return None if address is None else self._members.get(address)

    def is_member_peer(self, peer_id: str) -> bool:
        return self.member_of_peer(peer_id) is not None


ChangeListener = Callable[[MembershipChange], Awaitable[None]]


class MembershipWatcher:
    """Polls a MembershipSource every ``interval_s`` and keeps a MembershipGate current.

    A failed poll keeps the last known list (a ledger hiccup must not cut everyone off); listeners
    hear about every change, e.g. to close the connections of removed members.
    """

    def __init__(
        self,
        source: MembershipSource,
        gate: MembershipGate,
        *,
        interval_s: float = 5.0,
    ) -> None:
        if not interval_s > 0:
            raise ValueError("poll interval must be positive")
        self.source = source
        self.gate = gate
        self.interval_s = interval_s
        self.polls = 0
        self.last_error: BaseException | None = None
        self._listeners: list[ChangeListener] = []
        self._poke = trio.Event()

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    async def poll_once(self) -> MembershipChange | None:
        """Read the source once; the change applied, or None if the read failed."""
        try:
            members = await run_in_thread_abandoning(self.source.active_members)
        except Exception as exc:
            self.last_error = exc
            logger.warning("membership poll failed, keeping the last list: %s", exc)
            return None
        self.last_error = None
        self.polls += 1
        change = self.gate.update(members)
        if change:
            logger.info(
                "membership changed: +%d -%d, %d readdressed (now %d)",
                len(change.added),
                len(change.removed),
                len(change.readdressed),
                len(self.gate.members),
            )
            for listener in list(self._listeners):
                await listener(change)
        return change

    def poke(self) -> None:
        """Poll now instead of at the end of the interval."""
        self._poke.set()

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Poll once, report started (even if that poll failed: the gate stays closed), repeat."""
        await self.poll_once()
        task_status.started()
        while True:
            with trio.move_on_after(self.interval_s):
                await self._poke.wait()
            self._poke = trio.Event()
            await self.poll_once()
