"""The events of a round, read back, reconstruct its history exactly."""

from __future__ import annotations

from swarm.audit import build_history
from swarm.audit.history import round_summary
from swarm.ledger import LapseReason
from tests.conftest import WINDOW, Consortium, h
from tests.ledger.rounds import finalize, join_all, open_round


def test_history_of_round_with_replaced_merge_peer(consortium: Consortium) -> None:
    """A merge peer replaced mid-round: the history shows who held which role and when."""
    c = consortium
    rid = open_round(c, opener=c.addresses[1])
    info = join_all(c, rid)
    first_merge, steward = info.merge_peer, info.key_steward
    assert first_merge is not None and steward is not None
    c.client(steward).post_round_key(rid, h("key-0"))
    for i, a in enumerate(info.participants):
        c.client(a).commit_update(rid, h(f"u0-{a}"), 10 + i)
    c.chain.advance_time(2 * WINDOW + 1)
    c.client(steward).replace_merge_peer(rid)
    second_merge = c.admin.round(rid).merge_peer
    c.client(steward).post_round_key(rid, h("key-1"))
    for i, a in enumerate(info.participants):
        c.client(a).commit_update(rid, h(f"u1-{a}"), 20 + i)
    final = finalize(c, rid, h("model-1"))

    history = build_history(c.admin.events())
    r = history.rounds[rid]
    assert r.opened_by == c.addresses[1]
    assert r.base_model == h("model-0")
    assert r.joined == list(info.participants)
    assert r.order == list(info.order)
    assert r.seed == info.seed
    assert r.merge_peers == [first_merge, second_merge]
    assert r.key_stewards == [steward]
    assert [(x.role, x.previous, x.next, x.attempt, x.by) for x in r.replacements] == [
        ("merge peer", first_merge, second_merge, 1, steward)
    ]
    assert r.keys == [(0, steward, h("key-0")), (1, steward, h("key-1"))]
    assert [(x.attempt, x.account, x.update_hash, x.sample_count) for x in r.commits] == [
        (att, a, h(f"u{att}-{a}"), (10 if att == 0 else 20) + i)
        for att in (0, 1)
        for i, a in enumerate(info.participants)
    ]
    assert r.aggregate_hash == h(f"aggregate-{rid}") and r.aggregate_attempt == 1
    assert r.aggregate_by == second_merge
    assert r.contributors == sorted(info.participants, key=lambda a: int(a, 16))
    assert r.total_samples == final.total_samples == sum(20 + i for i in range(4))
    assert r.acks == {a: h("model-1") for a in info.participants if a != second_merge}
    assert r.final_model == h("model-1") and r.outcome == "finalized"
    # Every one of the round's events, and nothing else, was attributed to it.
    assert all(e.args.get("round") == rid for e in r.events)
    assert len(r.events) == sum(1 for e in history.events if e.args.get("round") == rid)


def test_history_of_membership_and_lapsed_round(consortium_factory: object) -> None:
    """A lapsed round and a removed member, as the history records them."""
    c: Consortium = consortium_factory(3, min_peers=3)  # type: ignore[operator]
    rid = open_round(c)
    join_all(c, rid, c.addresses[:2])
    c.chain.advance_time(WINDOW + 1)
    c.admin.remove_member(c.addresses[2])
    rid2 = open_round(c)  # records the lapse of round 1

    history = build_history(c.admin.events())
    assert history.rounds[rid].lapse_reason == LapseReason.TOO_FEW_JOINED
    assert history.rounds[rid].outcome == "lapsed (too few joined)"
    assert history.rounds[rid2].outcome == "in progress"
    admin = c.admin.identity
    assert admin is not None
    assert history.admins == {admin.address: True}
    removed = history.members[c.addresses[2]]
    assert not removed.active and removed.removed_by == admin.address
    assert [m.name for m in history.members.values()] == ["Hospital 0", "Hospital 1", "Hospital 2"]
    assert len(history.params) == 1 and history.params[0][2]["minPeers"] == 3
    summary = round_summary(history.rounds[rid])
    assert summary["lapse_reason"] == "TOO_FEW_JOINED" and summary["final_model"] is None
