"""`swarm peer run`'s process-level memory settings (cli/peer.py)."""

from __future__ import annotations

from typing import Any

import pytest

from cli import peer as peer_cli


class _FakeLibc:
    def __init__(self) -> None:
        self.trims: list[int] = []

    def malloc_trim(self, pad: int) -> int:
        self.trims.append(pad)
        return 1


def test_heap_is_trimmed_once_a_round_is_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event still reaches the printer, in order; the heap is trimmed after the events
    that end a round for this peer, and only then."""
    libc = _FakeLibc()
    monkeypatch.setattr(peer_cli, "_libc", lambda: libc)
    seen: list[tuple[str, dict[str, Any]]] = []
    handle = peer_cli._trim_heap_after_rounds(lambda kind, data: seen.append((kind, data)))
    events = ["joined", "trained", "committed", "finalized", "opened", "lapsed", "caught up"]
    for kind in events:
        handle(kind, {"round": 1})
    assert [kind for kind, _ in seen] == events
    assert libc.trims == [0, 0, 0]


def test_no_malloc_trim_leaves_the_handler_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """No C library (or one without malloc_trim, not glibc): the printer's own handler."""

    def printer(kind: str, data: dict[str, Any]) -> None:
        return None

    monkeypatch.setattr(peer_cli, "_libc", lambda: None)
    assert peer_cli._trim_heap_after_rounds(printer) is printer
    peer_cli._cap_malloc_arenas()  # a no-op, no error


def test_the_real_libc_trims() -> None:
    """Where this runs on glibc, the handler calls the real malloc_trim without error."""
    calls: list[str] = []
    handle = peer_cli._trim_heap_after_rounds(lambda kind, data: calls.append(kind))
    handle("finalized", {})
    assert calls == ["finalized"]
