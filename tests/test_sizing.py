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


@pytest.mark.parametrize(("params_id", "values", "per_param"), [(1, 4096, 15.0), (2, 8192, 7.5)])
def test_bytes_follow_the_model_in_whole_ciphertexts(
    params_id: int, values: int, per_param: float
) -> None:
    """Fault: bytes per parameter off (a seeded update's 61,440 + 70 bytes per ciphertext: ~15
    B/param for CKKS set 1, ~7.5 for set 2; the aggregate's 65 B per contributor per
    ciphertext), or a small model priced below the one ciphertext it moves."""
    small = round_bytes(36, 3, params_id)
    assert small.update == round_bytes(values, 3, params_id).update  # one ciphertext
    assert small.update < round_bytes(values + 1, 3, params_id).update  # and two
    assert small.update == 61_662  # measured (docs/benchmarks.md): 152 + 61,440 + 70
    big = round_bytes(RESNET18, 10, params_id)
    assert big.update / RESNET18 == pytest.approx(per_param, rel=0.01)
    chunks = -(-RESNET18 // values)
    assert big.update == 152 + chunks * (61_440 + 70)
    assert big.aggregate == 152 + 4 + chunks * (61_440 + 65 * 10)
    assert big.round_key == 363_000


def test_complex_packing_halves_the_bytes_of_a_big_model() -> None:
    """Fault: swarm.sizing prices CKKS set 2 (8192 values per ciphertext) like set 1 (4096):
    a consortium on set 2 gets windows for twice the bytes its rounds move, or the reverse.
    The default set is set 2 (swarm.crypto.params.DEFAULT_PARAMS_ID)."""
    for count in (1_000_000, RESNET18):
        one, two = round_bytes(count, 10, 1), round_bytes(count, 10, 2)
        assert two.update / one.update == pytest.approx(0.5, rel=0.01)
        assert two.aggregate / one.aggregate == pytest.approx(0.5, rel=0.01)
        assert round_bytes(count, 10) == two  # the default set
    assert round_bytes(36, 3, 1) == round_bytes(36, 3, 2)  # one ciphertext either way
    # the windows follow: the transfers of set 2 take half the time
    t = Throughput()
    one = size_round(RESNET18, 3, expected=10, params_id=1)
    two = size_round(RESNET18, 3, expected=10, params_id=2)
    assert "9 updates of 168 MB" in one.steps["commit_window"].explain()
    assert "9 updates of 84 MB" in two.steps["commit_window"].explain()
    push_one = 9 * one.bytes.update / (t.link_mb_s * 1e6)
    push_two = 9 * two.bytes.update / (t.link_mb_s * 1e6)
    assert push_two == pytest.approx(push_one / 2, rel=0.01)
    saved = one.steps["commit_window"].need_s - two.steps["commit_window"].need_s
    assert saved == pytest.approx(push_one - push_two)
    assert two.least("ack_window") < one.least("ack_window")
    # check_fits and fit_warning take the set from the consortium's parameters
    short = params(commit_window=300, ack_window=600)
    assert check_fits(short, RESNET18, expected=10) != []  # set 1: 300 s is short
    assert check_fits(dataclasses.replace(short, ckks_params_id=2), RESNET18, expected=10) == []


def test_an_unknown_parameter_set_is_refused() -> None:
    from swarm.errors import UnknownParameterSetError

    with pytest.raises(UnknownParameterSetError):
        round_bytes(RESNET18, 3, 3)
    with pytest.raises(UnknownParameterSetError):
        check_fits(params(ckks_params_id=3), RESNET18)


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
    sizing = size_round(RESNET18, 3, expected=10, params_id=1)
    step = sizing.steps["commit_window"]
    push = 9 * sizing.bytes.update / (t.link_mb_s * 1e6)
    encrypt = RESNET18 / t.encrypt_per_s
    keys = 9 * 363_000 / 10e6
    assert step.need_s == pytest.approx(push + encrypt + keys + t.train_s + t.tx_s)
    assert 400 < step.least_s < 420  # 2 x (152 s pushes + 7 s encrypt + 30 s training + 15 s tx)
    assert sizing.hospitals == 10
    # the bigger of min-peers and the expected count is what counts
    assert size_round(RESNET18, 10, params_id=1).windows() == sizing.windows()
    assert size_round(RESNET18, 3, params_id=1).least("commit_window") < step.least_s


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
        least = size_round(RESNET18, 3, MODEL_ONLY, expected=10, params_id=1)
        assert f"needs >= {least.least('commit_window')} s" in line  # params(): CKKS set 1
        assert "9 updates of 168 MB into the merge peer at 10 MB/s ~151 s" in line
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
    assert three.ckks_params_id == 2  # the default set: half set 1's bytes
    assert 100 < three.commit_window < four.commit_window < 200  # 60-70 s measured for 3
    assert three.ack_window < four.ack_window
    # a peer on that network finds its windows wide enough
    assert fit_warning(three, RESNET18, None, hospitals=3) is None
    assert fit_warning(four, RESNET18, None, hospitals=4) is None
    # windows given are taken as they are
    assert network.swarm_params(fingerprint=resnet, commit_window=12).commit_window == 12


def test_the_ciphertext_size_is_the_crypto_layers() -> None:
    """Fault: swarm.sizing counts values per ciphertext, or polynomial bytes, other than
    swarm.crypto's parameter set says (a copied constant that drifted), or sizes a set other
    than the default when none is named."""
    from swarm.crypto import HEADER_SIZE
    from swarm.crypto.params import DEFAULT_PARAMS_ID, PARAMETER_SETS
    from swarm.sizing import ciphertext

    assert ciphertext() == ciphertext(DEFAULT_PARAMS_ID)
    for params_id, p in PARAMETER_SETS.items():
        c = ciphertext(params_id)
        assert c.values == p.values_per_ciphertext
        assert c.poly_bytes == 61_440 == p.poly_modulus_degree * p.last_level_bits // 8
        assert c.header_bytes == HEADER_SIZE
    assert ciphertext(1).values == 4096 and ciphertext(2).values == 8192
