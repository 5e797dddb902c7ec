"""Checkpoint retention: only the newest N rounds' checkpoints stay on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from swarm.training.checkpoint import (
    checkpoint_path,
    checkpoints_to_prune,
    latest_checkpoint,
    prune_checkpoints,
    write_checkpoint,
)


def names(rounds: list[int]) -> list[Path]:
    return [Path("ck") / f"round-{r:06d}.ckpt" for r in rounds]


def test_which_checkpoints_go() -> None:
    """Pure: the oldest go, by round number, not by the order given or by name (the fault: a
    data directory that grows by one checkpoint per round, forever)."""
    paths = names([5, 1, 3, 2, 4])
    assert checkpoints_to_prune(paths, 2) == names([1, 2, 3])
    assert checkpoints_to_prune(paths, 5) == []
    assert checkpoints_to_prune(paths, 9) == []
    assert checkpoints_to_prune(paths, 1) == names([1, 2, 3, 4])


def test_keep_zero_keeps_everything_and_negative_is_refused() -> None:
    """``keep_checkpoints = 0`` keeps all (the operator's choice for a full archive); a
    negative count is a programming error."""
    assert checkpoints_to_prune(names(list(range(1, 100))), 0) == []
    with pytest.raises(ValueError, match="at least 0"):
        checkpoints_to_prune(names([1]), -1)


def test_other_files_are_never_chosen() -> None:
    """Temporary files of an atomic write, and anything else an operator keeps there, stay
    (the fault would be deleting a file that is not a checkpoint)."""
    paths = [
        *names([1, 2, 3]),
        Path("ck/.round-000004.ckpt.x1y2.tmp"),
        Path("ck/notes.txt"),
        Path("ck/round-7.ckpt.bak"),
    ]
    assert checkpoints_to_prune(paths, 1) == names([1, 2])


def test_rounds_past_six_digits_sort_by_number() -> None:
    """Round 1,000,000 is newer than 999,999 although its name sorts first as text."""
    paths = [Path("round-999999.ckpt"), Path("round-1000000.ckpt")]
    assert checkpoints_to_prune(paths, 1) == [Path("round-999999.ckpt")]


def test_prune_deletes_the_oldest_files(tmp_path: Path) -> None:
    """On disk: after writing round 6 with ``keep = 3``, rounds 4 to 6 remain and the newest
    still reads back."""
    state = {"w": torch.zeros(2)}
    for rid in range(1, 7):
        write_checkpoint(tmp_path, rid, state)
    (tmp_path / "keep-me.txt").write_text("x")
    deleted = prune_checkpoints(tmp_path, 3)
    assert deleted == [checkpoint_path(tmp_path, r) for r in (1, 2, 3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "keep-me.txt", "round-000004.ckpt", "round-000005.ckpt", "round-000006.ckpt",
    ]  # fmt: skip
    latest = latest_checkpoint(tmp_path)
    assert latest is not None and latest.round_id == 6
    assert prune_checkpoints(tmp_path, 0) == []
