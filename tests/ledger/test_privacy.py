"""Masking and differential privacy on the ledger: the mask-share manifest hash each commitment
carries, and each member's privacy budget (``epsilonSpent`` never decreases nor exceeds the
round's ``epsilonBudget``; a member that spent it all can no longer join)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarm import errors
from swarm.ledger import RoundState
from swarm.ledger.chain import EmbeddedChain
from swarm.ledger.client import epsilon_to_micro, params_from_tuple, params_to_tuple
from tests.conftest import Consortium, h, make_consortium, make_params
from tests.ledger.rounds import SHARES, draw, finalize, join_all, open_round

DP = dict(epsilon_budget=1.0, dp_delta=1e-5, dp_noise_multiplier=1.1, dp_clip_norm=0.75)


@pytest.fixture
def dp(chain: EmbeddedChain) -> Consortium:
    return make_consortium(chain, 4, make_params(**DP))


def _to_committing(c: Consortium, joiners: list[str] | None = None) -> tuple[int, list[str]]:
    rid = open_round(c)
    if joiners is None:
        info = join_all(c, rid)
    else:
        info = join_all(c, rid, joiners)
        if info.state == RoundState.JOINING:
            pytest.fail("the join window should have closed early")
    assert info.key_steward is not None
    c.client(info.key_steward).post_round_key(rid, h(f"key-{rid}"))
    return rid, list(info.participants)


def _commit(c: Consortium, rid: int, a: str, round_eps: float, total_eps: float) -> None:
    c.client(a).commit_update(
        rid,
        h(f"u-{rid}-{a}"),
        10,
        shares_hash=h(f"shares-{rid}-{a}"),
        round_epsilon=round_eps,
        total_epsilon=total_eps,
    )


def test_params_round_trip_in_contract_units(dp: Consortium) -> None:
    p = dp.admin.params()
    assert p.mask_threshold_pct == 66
    assert p.epsilon_budget == 1.0
    assert p.dp_delta == 1e-5
    assert p.dp_noise_multiplier == 1.1
    assert p.dp_clip_norm == 0.75
    raw = params_to_tuple(p)
    assert raw[12:] == (66, 1_000_000, 10_000_000, 1_100, 750)
    assert params_from_tuple(raw) == p


def test_epsilon_conversion_rounds_up_and_not_on_float_noise() -> None:
    assert epsilon_to_micro(0.1) == 100_000
    assert epsilon_to_micro(0.3) == 300_000
    assert epsilon_to_micro(1e-7) == 1
    with pytest.raises(errors.ConfigError):
        epsilon_to_micro(-1.0)


def test_masking_off_takes_no_shares_hash(consortium_factory) -> None:  # type: ignore[no-untyped-def]
    c = consortium_factory(4, mask_threshold_pct=0)
    rid, participants = _to_committing(c)
    with pytest.raises(errors.InvalidParameterError) as exc:
        c.client(participants[0]).commit_update(rid, h("u"), 1, shares_hash=SHARES)
    assert exc.value.name == "InvalidSharesHash"
    assert exc.value.values["maskThresholdPct"] == 0
    for a in participants:
        c.client(a).commit_update(rid, h(f"u-{a}"), 1)
    view = c.admin.view(rid)
    assert view.shares_hashes == {}
    assert len(view.commitments) == len(participants)


def test_shares_hashes_are_stored_per_attempt_and_read_with_the_commitments(
    consortium: Consortium,
) -> None:
    c = consortium
    rid, participants = _to_committing(c)
    for a in participants[:2]:
        c.client(a).commit_update(rid, h(f"u-{a}"), 5, shares_hash=h(f"s-{a}"))
    view = c.admin.view(rid)
    assert dict(view.shares_hashes) == {a: h(f"s-{a}") for a in participants[:2]}
    assert set(view.shares_hashes) == set(view.commitments)
    assert c.admin.shares_hash(rid, 0, participants[0]) == h(f"s-{participants[0]}")
    assert c.admin.shares_hash(rid, 0, participants[3]) == b"\0" * 32
    assert c.admin.shares_hash(rid, 1, participants[0]) == b"\0" * 32
    committed = [e for e in c.admin.events() if e.name == "UpdateCommitted"]
    assert [e.args["sharesHash"] for e in committed] == [h(f"s-{a}") for a in participants[:2]]


def test_privacy_spending_is_recorded_and_emitted(dp: Consortium) -> None:
    c = dp
    rid, participants = _to_committing(c)
    for a in participants:
        _commit(c, rid, a, 0.25, 0.25)
    assert c.admin.epsilon_spent(participants[0]) == 0.25
    spent = [e for e in c.admin.events() if e.name == "PrivacySpent"]
    assert [(e.args["round"], e.args["account"]) for e in spent] == [(rid, a) for a in participants]
    assert all(e.args["roundEpsilon"] == 250_000 for e in spent)
    assert all(e.args["totalEpsilon"] == 250_000 for e in spent)


def test_budget_refusals(dp: Consortium) -> None:
    c = dp
    rid, participants = _to_committing(c)
    a = participants[0]
    with pytest.raises(errors.InvalidParameterError) as exc:
        _commit(c, rid, a, 0.0, 0.0)
    assert exc.value.name == "InvalidParameter" and exc.value.values["name"] == "totalEpsilon"
    with pytest.raises(errors.InvalidParameterError) as exc:
        _commit(c, rid, a, 1.5, 1.5)
    assert exc.value.name == "PrivacyBudgetExceeded"
    assert exc.value.values == {"account": a, "totalEpsilon": 1_500_000, "budget": 1_000_000}
    for p in participants:
        _commit(c, rid, p, 0.5, 0.5)
    finalize(c, rid, h("model-1"))
    rid2, _ = _to_committing(c)
    with pytest.raises(errors.InvalidParameterError) as exc:
        _commit(c, rid2, a, 0.25, 0.25)
    assert exc.value.name == "EpsilonDecreased"
    assert exc.value.values == {"account": a, "totalEpsilon": 250_000, "previous": 500_000}
    _commit(c, rid2, a, 0.5, 0.5)  # unchanged total (e.g. the same update re-sent) is fine
    assert c.admin.epsilon_spent(a) == 0.5


def test_an_exhausted_member_cannot_join_and_does_not_hold_the_window(dp: Consortium) -> None:
    c = dp
    rid, participants = _to_committing(c)
    spender = participants[0]
    for p in participants:
        _commit(c, rid, p, 1.0 if p == spender else 0.5, 1.0 if p == spender else 0.5)
    finalize(c, rid, h("model-1"))
    assert c.admin.epsilon_spent(spender) == 1.0

    rid2 = open_round(c)
    with pytest.raises(errors.NotParticipantError) as exc:
        c.client(spender).join(rid2)
    assert exc.value.name == "PrivacyBudgetExhausted"
    assert exc.value.values == {"account": spender, "spent": 1_000_000, "budget": 1_000_000}
    others = [a for a in c.addresses if a != spender]
    for a in others:
        c.client(a).join(rid2)
    info = draw(c, rid2)
    assert info.state == RoundState.KEYING  # closed early: the spender was not waited for
    assert set(info.participants) == set(others)


def test_a_raised_budget_lets_the_member_back(dp: Consortium) -> None:
    c = dp
    rid, participants = _to_committing(c)
    for p in participants:
        _commit(c, rid, p, 1.0, 1.0)
    finalize(c, rid, h("model-1"))
    c.admin.set_params(replace(c.admin.params(), epsilon_budget=2.0))
    rid2 = open_round(c)
    c.client(participants[0]).join(rid2)
    assert c.admin.has_joined(rid2, participants[0])


def test_spending_outlives_removal(dp: Consortium) -> None:
    c = dp
    rid, participants = _to_committing(c)
    for p in participants:
        _commit(c, rid, p, 0.5, 0.5)
    finalize(c, rid, h("model-1"))
    gone = participants[0]
    c.admin.remove_member(gone)
    assert c.admin.epsilon_spent(gone) == 0.5


def test_removing_an_exhausted_member_keeps_the_early_close(dp: Consortium) -> None:
    c = dp
    rid, participants = _to_committing(c)
    spender = participants[0]
    for p in participants:
        _commit(c, rid, p, 1.0 if p == spender else 0.5, 1.0 if p == spender else 0.5)
    finalize(c, rid, h("model-1"))
    rid2 = open_round(c)
    c.admin.remove_member(spender)  # it was counted as out of budget when the round opened
    others = [a for a in c.addresses if a != spender]
    for a in others[:-1]:
        c.client(a).join(rid2)
    assert c.admin.round(rid2).state == RoundState.JOINING  # not closed one join too early
    c.client(others[-1]).join(rid2)
    assert draw(c, rid2).state == RoundState.KEYING
