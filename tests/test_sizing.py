"""swarm.sizing: the bytes of a round and the least windows, from the parameter count (pure)."""

from __future__ import annotations

import dataclasses

import pytest

from swarm.ledger import Params
from swarm.sizing import (
    MODEL_ONLY,
    SAFETY_FACTOR,
    Throughput,
    check_fits,
    fit_warning,
    round_bytes,
    size_round,
)

RESNET18 = 11_177_538  # ResNet-18 with a small head: the example


def params(**windows: int) -> Params:
    base = Params(
        min_peers=3,
        join_window=60,
        key_window=60,
        commit_window=120,
        merge_window=120,
        ack_window=60,
        ckks_params_id=1,
        task_id=b"\1" * 32,
        initial_model_hash=b"\2" * 32,
        metrics_enabled=True,
    )
    return dataclasses.replace(base, **windows)  # type: ignore[arg-type]


def test_bytes_follow_the_model_in_whole_ciphertexts() -> None:
    """Fault: bytes per parameter off (the 15.1 B/param seeded update, the aggregate's 65 B per
    contributor per ciphertext), or a small model priced below the one ciphertext it moves."""
    small = round_bytes(36, 3)
    assert small.update == round_bytes(4096, 3).update  # one ciphertext, however few values
    assert 61_000 < small.update < 63_000  # measured: 61,662 (docs/benchmarks.md)
    big = round_bytes(RESNET18, 10)
    assert big.update / RESNET18 == pytest.approx(15.1, rel=0.01)
    chunks = -(-RESNET18 // 4096)
    assert big.aggregate - big.update == pytest.approx(65 * 10 * chunks, abs=1)
    assert big.round_key == 363_000


def test_the_heart_model_needs_less_than_the_documented_defaults() -> None:
    """Fault: deriving windows would change the 36-parameter heart consortium (its windows
    must stay the documented defaults: 60/120/120/60)."""
    derived = size_round(36, 3).windows()
    defaults = params()
    for name, least in derived.items():
        assert least <= getattr(defaults, name), name
    assert (
        check_fits(params(key_window=10, commit_window=12, merge_window=10, ack_window=10), 36)
        == []
    )


@pytest.mark.parametrize("count", [36, 1_000_000, RESNET18])
def test_windows_are_the_estimate_times_the_safety_factor(count: int) -> None:
    """Fault: the safety factor not applied, or applied twice, or parts left out of a step."""
    sizing = size_round(count, 3)
    one = size_round(count, 3, safety=1.0)
    for name, step in sizing.steps.items():
        assert step.need_s == pytest.approx(one.steps[name].need_s)
        assert step.least_s == pytest.approx(step.need_s * SAFETY_FACTOR, abs=1)
        assert one.steps[name].least_s <= step.least_s
        assert step.need_s == pytest.approx(sum(p.seconds for p in step.parts))


def test_resnet18_commit_window_counts_the_merge_peers_fan_in() -> None:
    """Fault: the commit window sized for one push, while the merge peer's link takes every
    participant's update before the commit deadline."""
    t = Throughput()
    sizing = size_round(RESNET18, 3, expected=10)
    step = sizing.steps["commit_window"]
    push = 9 * sizing.bytes.update / (t.link_mb_s * 1e6)
    encrypt = RESNET18 / t.encrypt_per_s
    keys = 9 * 363_000 / 10e6
    assert step.need_s == pytest.approx(push + encrypt + keys + t.train_s + t.tx_s)
    assert 400 < step.least_s < 420  # 2 x (152 s pushes + 7 s encrypt + 30 s training + 15 s tx)
    assert sizing.hospitals == 10
    # the bigger of min-peers and the expected count is what counts
    assert size_round(RESNET18, 10).windows() == sizing.windows()
    assert size_round(RESNET18, 3).least("commit_window") < step.least_s


def test_a_faster_link_and_more_cores_shorten_the_windows() -> None:
    """Fault: --link-mb-s or the cores ignored."""
    slow = size_round(1_000_000, 4, Throughput(link_mb_s=1.0))
    fast = size_round(1_000_000, 4, Throughput(link_mb_s=100.0))
    assert fast.least("commit_window") < slow.least("commit_window")
    assert fast.least("ack_window") < slow.least("ack_window")
    one = size_round(RESNET18, 4, Throughput(cores=1))
    two = size_round(RESNET18, 4, Throughput(cores=2))
    assert two.least("merge_window") < one.least("merge_window")


def test_a_too_short_window_is_one_line_naming_option_seconds_and_parts() -> None:
    """Fault: a window too short for an 11.2M-parameter model not reported, or reported without
    what it needs and why (a typo'd --commit-window 12 for 120 included)."""
    for typo in (120, 12):
        lines = check_fits(params(commit_window=typo, ack_window=600), RESNET18, expected=10)
        assert len(lines) == 1
        line = lines[0]
        assert line.startswith(f"--commit-window {typo} is too short for 11,177,538 parameters")
        least = size_round(RESNET18, 3, MODEL_ONLY, expected=10).least("commit_window")
        assert f"needs >= {least} s" in line
        assert "9 updates of 169 MB into the merge peer at 10 MB/s ~152 s" in line
        assert "encrypt at 1.7 M params/s ~7 s" in line
        assert "training" not in line  # not counted unless given
    # training counts once its time is given
    with_training = dataclasses.replace(MODEL_ONLY, train_s=60.0)
    (line,) = check_fits(params(commit_window=120, ack_window=600), RESNET18, with_training)
    assert "training allowance ~60 s" in line
    # every window that is short gets its own line
    short = params(key_window=5, commit_window=5, merge_window=5, ack_window=5)
    lines = check_fits(short, RESNET18)
    assert [x.split()[0] for x in lines] == ["--commit-window", "--merge-window", "--ack-window"]


def test_the_peer_warns_once_per_parameter_version() -> None:
    """Fault: the peer warns every round (or never) about windows the model cannot fit."""
    short = params(commit_window=30)
    first = fit_warning(short, RESNET18, None)
    assert first is not None and "--commit-window 30 is too short" in first
    assert "\n" not in first
    assert fit_warning(short, RESNET18, short) is None  # the same parameters: said already
    wider = params(commit_window=600, ack_window=600)
    assert fit_warning(wider, RESNET18, short) is None  # changed, and now it fits
    again = params(commit_window=31)
    assert fit_warning(again, RESNET18, wider) is not None  # changed, and short again
    assert fit_warning(params(commit_window=10, ack_window=10), 36, None) is None


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError):
        Throughput(link_mb_s=0)
    with pytest.raises(ValueError):
        Throughput(train_s=-1)
    with pytest.raises(ValueError):
        size_round(0, 3)
    with pytest.raises(ValueError):
        size_round(36, 3, safety=0.5)


def test_a_running_peer_logs_one_warning_not_one_per_round(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fault: the peer's check (swarm.peer.runner, where it reads the ledger's parameters) warns
    on every look at the ledger, or not again after the parameters changed."""
    from types import SimpleNamespace

    from swarm.ledger import LedgerView
    from swarm.peer.runner import Peer

    def view(p: Params) -> LedgerView:
        return LedgerView(
            block_number=1,
            block_time=1,
            current_round=0,
            last_finalized=0,
            finalized_count=0,
            latest_model=b"\2" * 32,
            params=p,
            round=None,
            commitments={},
            acks={},
        )

    peer = Peer.__new__(Peer)  # only what _observe reads before a round exists
    short = params(commit_window=30)
    peer.params, peer.sized_for, peer._idle_since = short, None, None
    peer.layout = SimpleNamespace(param_count=RESNET18)  # type: ignore[assignment]
    with caplog.at_level("WARNING", logger="swarm.peer.runner"):
        for _ in range(3):
            peer._observe(view(short))
        assert [r.getMessage()[:40] for r in caplog.records] == [
            "the consortium's windows are too short f"
        ]
        peer._observe(view(params(commit_window=600, ack_window=600)))
        peer._observe(view(params(commit_window=31)))
        peer._observe(view(params(commit_window=31)))
    assert len(caplog.records) == 2
    assert "--commit-window 31 is too short" in caplog.records[1].getMessage()


def test_a_local_network_keeps_its_small_model_windows_and_widens_for_a_big_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fault: localnet's windows for the heart task changed (tests and benchmarks rely on 20,
    15, 30, 20, 20 s), or a ResNet-18's stay those of a 36-parameter model (every round lapses)."""
    import os

    from localnet import network
    from swarm.training.task_id import task_fingerprint

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    names = ("join_window", "key_window", "commit_window", "merge_window", "ack_window")
    heart = task_fingerprint("heart-disease-uci/logreg", 0)
    for p in (network.swarm_params(), network.swarm_params(fingerprint=heart)):
        assert [getattr(p, n) for n in names] == [20, 15, 30, 20, 20]
    resnet = dataclasses.replace(heart, param_count=RESNET18)
    three = network.swarm_params(fingerprint=resnet, hospitals=3)
    four = network.swarm_params(fingerprint=resnet, hospitals=4)
    assert three.join_window == 20 and three.key_window == 15  # nothing there grows
    assert 120 < three.commit_window < four.commit_window < 200  # 60-70 s measured for 3
    assert three.ack_window < four.ack_window
    # a peer on that network finds its windows wide enough
    assert fit_warning(three, RESNET18, None, hospitals=3) is None
    assert fit_warning(four, RESNET18, None, hospitals=4) is None
    # windows given are taken as they are
    assert network.swarm_params(fingerprint=resnet, commit_window=12).commit_window == 12


def test_the_ciphertext_size_is_the_crypto_layers() -> None:
    """Fault: swarm.sizing's copy of the CKKS slot count (kept to stay free of TenSEAL) drifted
    from swarm.crypto's parameter set."""
    from swarm.crypto.params import DEFAULT_PARAMS_ID, get_params
    from swarm.sizing import SLOTS

    assert get_params(DEFAULT_PARAMS_ID).slots == SLOTS
