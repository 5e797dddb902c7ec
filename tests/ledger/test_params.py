"""What the Consortium accepts as parameters, their versions, the per-round snapshot, and that the
CLI checks the same bounds. Each test's docstring names the fault it exercises."""

from __future__ import annotations

import dataclasses

import pytest

from cli import admin
from swarm import errors
from swarm.crypto import PARAMETER_SETS
from swarm.ledger import RoundState
from tests.conftest import WINDOW, Consortium, h
from tests.ledger.rounds import SHARES, join_all, open_round, run_to_merging

_DP = {"epsilon_budget": 1.0, "dp_delta": 1e-5, "dp_noise_multiplier": 1.1, "dp_clip_norm": 1.0}


@pytest.mark.parametrize(
    ("change", "name", "value"),
    [
        ({"min_peers": 2}, "minPeers", 2),
        ({"min_peers": 0}, "minPeers", 0),
        ({"min_peers": 65}, "minPeers", 65),  # more than CKKS set 1 sums
        ({"join_window": 4}, "joinWindow", 4),
        ({"key_window": 0}, "keyWindow", 0),
        ({"commit_window": 86_401}, "commitWindow", 86_401),
        ({"merge_window": 1}, "mergeWindow", 1),
        ({"ack_window": 2**32 - 1}, "ackWindow", 2**32 - 1),
        ({"ckks_params_id": 0}, "ckksParamsId", 0),
        ({"ckks_params_id": 3}, "ckksParamsId", 3),  # one past the highest set (2)
        ({"ckks_params_id": 99}, "ckksParamsId", 99),
        ({"task_id": b"\0" * 32}, "taskId", 0),
        ({"initial_model_hash": b"\0" * 32}, "initialModelHash", 0),
        ({"max_missed_commits": 2, "sit_out_rounds": 0}, "sitOutRounds", 0),
        ({"max_missed_commits": 2, "sit_out_rounds": 1001}, "sitOutRounds", 1001),
        ({"mask_threshold_pct": 50}, "maskThresholdPct", 50),
        ({"mask_threshold_pct": 101}, "maskThresholdPct", 101),
        ({**_DP, "dp_delta": 0.0}, "dpDelta", 0),
        ({**_DP, "dp_delta": 1.0}, "dpDelta", 10**12),
        ({**_DP, "dp_noise_multiplier": 0.0}, "dpNoiseMultiplier", 0),
        ({**_DP, "dp_clip_norm": 0.0}, "dpClipNorm", 0),
    ],
)
def test_out_of_range_parameters_are_refused_with_the_value(
    consortium: Consortium, change: dict[str, int], name: str, value: int
) -> None:
    """An out-of-range parameter: InvalidParameter names it and the value; nothing changes (no
    new version), and the CLI refuses the same value before sending."""
    c = consortium
    before = c.admin.params()
    bad = dataclasses.replace(before, **change)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidParameterError) as exc:
        c.admin.set_params(bad)
    assert exc.value.values == {"name": name, "value": value}
    assert c.admin.params() == before and c.admin.params_version() == 0
    if name not in ("taskId", "initialModelHash"):  # the CLI derives both from the task
        with pytest.raises(errors.ConfigError):
            admin.check_params(bad)


def test_bounds_are_accepted(consortium: Consortium) -> None:
    """Fault: an off-by-one in the bounds: every edge value is accepted by the CLI and the
    contract."""
    c = consortium
    edge = dataclasses.replace(
        c.admin.params(),
        min_peers=64,
        join_window=5,
        commit_window=86_400,
        ckks_params_id=1,
        max_missed_commits=1,
        sit_out_rounds=1000,
        mask_threshold_pct=51,
        epsilon_budget=1e-6,
        dp_delta=1e-12,
        dp_noise_multiplier=0.001,
        dp_clip_norm=0.001,
    )
    admin.check_params(edge)
    for pct in (0, 100):
        admin.check_params(dataclasses.replace(edge, mask_threshold_pct=pct))
    for ckks in PARAMETER_SETS:  # every known set, each with its most contributors
        admin.check_params(dataclasses.replace(edge, ckks_params_id=ckks))
    # DP off: the DP settings are not checked
    admin.check_params(dataclasses.replace(edge, epsilon_budget=0.0, dp_delta=0.0))
    c.admin.set_params(edge)
    assert c.admin.params() == edge
    complex_packing = dataclasses.replace(edge, ckks_params_id=2)  # CKKS set 2: 64 as well
    c.admin.set_params(complex_packing)
    assert c.admin.params() == complex_packing


def test_set_params_appends_a_version(consortium: Consortium) -> None:
    """Parameters are versioned: an old version stays readable (auditors replay rounds with it),
    and each change is an event with its version."""
    c = consortium
    v0 = c.admin.params()
    v1 = dataclasses.replace(v0, min_peers=4, max_missed_commits=3, sit_out_rounds=2)
    c.admin.set_params(v1)
    assert c.admin.params_version() == 1
    assert c.admin.params_at(0) == v0 and c.admin.params_at(1) == v1 == c.admin.params()
    with pytest.raises(errors.InvalidParameterError) as exc:
        c.admin.params_at(2)
    assert exc.value.name == "UnknownParamsVersion"
    sets = [e for e in c.admin.events() if e.name == "ParamsSet"]
    assert [e.args["version"] for e in sets] == [0, 1]


def test_set_params_never_changes_a_running_round(consortium: Consortium) -> None:
    """An admin shortens the windows and raises minPeers while a round runs: the round keeps the
    version it opened with (deadlines, minPeers, metrics); the next round uses the new one."""
    c = consortium
    rid = open_round(c)
    c.admin.set_params(
        dataclasses.replace(
            c.admin.params(), min_peers=4, key_window=5, commit_window=5, metrics_enabled=False
        )
    )
    info = join_all(c, rid, c.addresses[:3])  # 3 joined: enough for version 0's minPeers
    assert info.params_version == 0 and info.min_peers == 3
    assert info.params is not None and info.params.commit_window == WINDOW
    c.chain.advance_time(WINDOW + 1)
    c.client(c.addresses[0]).close_join(rid)
    c.chain.mine(2)
    info = c.admin.round(rid)
    assert info.key_deadline - c.chain.timestamp() > 5  # version 0's key window
    c.client(info.key_steward).post_round_key(rid, h("key"))  # type: ignore[arg-type]
    info = c.admin.round(rid)
    assert info.merge_deadline - info.commit_deadline == WINDOW
    v = c.admin.view()
    assert v.params.min_peers == 4 and v.params_version == 1  # what the next round gets
    assert v.round is not None and v.round.params is not None and v.round.params.min_peers == 3
    for a in info.participants:
        c.client(a).commit_update(rid, h(f"u-{a}"), 5, shares_hash=SHARES)
    c.client(info.merge_peer).submit_aggregate(rid, h("agg"), info.participants)  # type: ignore[arg-type]
    ackers = [a for a in info.participants if a != info.merge_peer]
    for a in ackers:
        c.client(a).acknowledge(rid, h("model-1"))
    assert c.admin.round(rid).state == RoundState.FINALIZED
    c.client(ackers[0]).report_metrics(rid, 10, 0.5, 0.5, 0.1)  # version 0: metrics on

    rid2 = open_round(c)
    info2 = c.admin.round(rid2)
    assert info2.params_version == 1 and info2.min_peers == 4
    run_to_merging(c, rid2)
    assert c.admin.round(rid2).commit_deadline - c.chain.timestamp() <= 5


def test_the_cli_checks_the_contract_s_bounds(consortium: Consortium) -> None:
    """cli/admin.py refuses before sending exactly what the contract would refuse."""
    f = consortium.admin.consortium.functions
    assert f.MIN_PEERS_FLOOR().call() == admin.MIN_PEERS_FLOOR
    assert f.MIN_WINDOW().call() == admin.MIN_WINDOW_S
    assert f.MAX_WINDOW().call() == admin.MAX_WINDOW_S
    assert f.MAX_SIT_OUT_ROUNDS().call() == admin.MAX_SIT_OUT_ROUNDS
    assert f.MIN_MASK_THRESHOLD_PCT().call() == admin.MIN_MASK_THRESHOLD_PCT
    highest = f.MAX_CKKS_PARAMS_ID().call()
    assert set(range(1, highest + 1)) == set(PARAMETER_SETS)
    for ckks, params in PARAMETER_SETS.items():
        assert f.maxContributors(ckks).call() == params.max_contributors
    assert f.maxContributors(0).call() == f.maxContributors(highest + 1).call() == 0


def test_admin_flags_set_masking_and_privacy(consortium: Consortium) -> None:
    """--mask-threshold, --epsilon-budget, --dp-delta, --dp-noise, --dp-clip reach the
    parameters; `swarm admin params` shows them."""
    base = consortium.admin.params()
    p = admin._merge_params(
        base, None, None, None, None, None, None, None, None, None, None, None,
        mask_threshold_pct=75, epsilon_budget=8.0, dp_delta=1e-5, dp_noise_multiplier=1.1,
        dp_clip_norm=1.0,
    )  # fmt: skip
    assert (p.mask_threshold_pct, p.epsilon_budget, p.dp_delta) == (75, 8.0, 1e-5)
    rows = dict(admin.params_rows(p))
    assert rows["mask-threshold"] == "75 %" and rows["epsilon-budget"] == "8"
    assert rows["dp-delta"] == "1e-05" and rows["dp-noise"] == "1.1" and rows["dp-clip"] == "1"
    assert dict(admin.params_rows(base))["epsilon-budget"].startswith("off")
    with pytest.raises(errors.ConfigError, match="--dp-delta"):
        admin._merge_params(
            base, None, None, None, None, None, None, None, None, None, None, None,
            epsilon_budget=8.0,
        )  # fmt: skip
    consortium.admin.set_params(p)
    assert consortium.admin.params() == p
