"""The events of both contracts, read back, reconstruct the consortium's history exactly."""

from __future__ import annotations

import coincurve

from swarm.audit import build_history, verify
from swarm.audit.history import round_summary
from swarm.audit.verify import Severity
from swarm.identity import encryption_key_digest
from swarm.ledger import LapseReason
from tests.conftest import WINDOW, Consortium, h
from tests.ledger.rounds import SHARES, finalize, join_all, open_round


def test_history_of_round_with_replaced_merge_peer(consortium: Consortium) -> None:
    """A merge peer replaced mid-round: the history shows who held which role and when, the
    order derived from the stored seed, and the contributors decoded from the bitmap (the
    fault would be a history that differs from the contract's own view)."""
    c = consortium
    rid = open_round(c, opener=c.addresses[1])
    info = join_all(c, rid)
    first_merge, steward = info.merge_peer, info.key_steward
    assert first_merge is not None and steward is not None
    c.client(steward).post_round_key(rid, h("key-0"))
    for i, a in enumerate(info.participants):
        c.client(a).commit_update(rid, h(f"u0-{a}"), 10 + i, shares_hash=SHARES)
    c.chain.advance_time(2 * WINDOW + 1)
    c.client(steward).replace_merge_peer(rid)
    second_merge = c.admin.round(rid).merge_peer
    c.client(steward).post_round_key(rid, h("key-1"))
    for i, a in enumerate(info.participants):
        c.client(a).commit_update(rid, h(f"u1-{a}"), 20 + i, shares_hash=SHARES)
    final = finalize(c, rid, h("model-1"))

    history = build_history(c.admin.events())
    r = history.rounds[rid]
    assert r.opened_by == c.addresses[1]
    assert r.base_model == h("model-0")
    assert r.params_version == 0 and r.params is not None and r.params["minPeers"] == 3
    assert r.joined == list(info.participants)
    assert r.draw_block == info.draw_block
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
    assert r.contributor_bits == final.contributor_bits == 0b1111
    assert r.contributors == list(final.contributors)
    assert r.contributors == sorted(info.participants, key=lambda a: int(a, 16))
    assert r.total_samples == final.total_samples == sum(20 + i for i in range(4))
    assert r.acks == {a: h("model-1") for a in info.participants if a != second_merge}
    assert r.final_model == h("model-1") and r.outcome == "finalized"
    assert r.missed == [] and r.sit_outs == [] and r.left == []
    # Every one of the round's events, and nothing else, was attributed to it.
    assert all(e.args.get("round") == rid for e in r.events)
    assert len(r.events) == sum(1 for e in history.events if e.args.get("round") == rid)


def test_history_of_membership_and_lapsed_round(consortium_factory: object) -> None:
    """A lapsed round, a removed member and its encryption key, the consortium's owner and
    parameter versions, as the history records them (the fault would be a fold that drops
    the Consortium's events or keeps only the newest parameters)."""
    c: Consortium = consortium_factory(3, min_peers=3)  # type: ignore[operator]
    rid = open_round(c)
    join_all(c, rid, c.addresses[:2])
    c.chain.advance_time(WINDOW + 1)
    c.admin.remove_member(c.addresses[2])
    rid2 = open_round(c)  # records the lapse of round 1

    history = build_history(c.admin.events())
    assert history.rounds[rid].lapse_reason == LapseReason.TOO_FEW_JOINED
    assert history.rounds[rid].outcome == "lapsed (too few joined)"
    assert history.rounds[rid].left == []  # it did not join: nothing to leave
    assert history.rounds[rid2].outcome == "in progress"
    admin = c.admin.identity
    assert admin is not None
    assert history.admins == {admin.address: True}
    assert history.owner == admin.address
    assert history.ledger == c.admin.address
    removed = history.members[c.addresses[2]]
    assert not removed.active and removed.removed_by == admin.address
    assert removed.encryption_key == c.hospitals[2].encryption_public_key
    assert removed.key_rotations == []
    assert [m.name for m in history.members.values()] == ["Hospital 0", "Hospital 1", "Hospital 2"]
    assert len(history.params) == 1 and history.params[0].values["minPeers"] == 3
    assert history.params[0].version == 0 and history.params_of(0) is history.params[0].values
    summary = round_summary(history.rounds[rid])
    assert summary["lapse_reason"] == "TOO_FEW_JOINED" and summary["final_model"] is None


def test_roles_handover_and_a_member_leaving_a_round(consortium: Consortium) -> None:
    """On the real contracts: the owner grants a second admin, hands the owner role over in two
    steps; a participant is removed while a round runs (ParticipantLeft); an encryption key is
    rotated. The history follows each change and the verifier finds no error in them (the
    fault would be an auditor that reads OpenZeppelin's role events as someone acting without
    the role)."""
    c = consortium
    admin = c.admin.identity
    assert admin is not None
    new_owner = c.addresses[0]
    c.admin.add_admin(c.addresses[1])
    c.admin.begin_ownership_transfer(new_owner)
    c.chain.advance_time(2)
    c.client(new_owner).accept_ownership_transfer()
    c.client(new_owner).remove_admin(c.addresses[1])
    # A key rotation: the member signs another X25519 key with its identity key.
    rotated = h("another X25519 key")
    member = c.hospitals[3]
    digest = encryption_key_digest(member.address, rotated)
    rsv = coincurve.PrivateKey(member.private_key).sign_recoverable(digest, hasher=None)
    c.client(member).set_encryption_key(rotated, rsv[:64] + bytes([rsv[64] + 27]))

    rid = open_round(c)
    info = join_all(c, rid)
    c.admin.remove_member(c.addresses[2])

    history = build_history(c.admin.events())
    assert history.owner == new_owner and history.owners == {admin.address: False,
                                                             new_owner: True}  # fmt: skip
    assert history.admins == {admin.address: True, c.addresses[1]: False}
    assert [(x.role, x.account, x.added) for x in history.admin_log] == [
        ("owner", admin.address, True),
        ("admin", admin.address, True),
        ("admin", c.addresses[1], True),
        ("owner", admin.address, False),
        ("owner", new_owner, True),
        ("admin", c.addresses[1], False),
    ]
    assert history.members[member.address].encryption_key == rotated
    assert [k for _, k in history.members[member.address].key_rotations] == [rotated]
    assert history.rounds[rid].left == [c.addresses[2]]
    assert c.addresses[2] in info.participants
    errors = [f for f in verify(history) if f.severity == Severity.ERROR]
    assert errors == []


DP = dict(epsilon_budget=2.0, dp_delta=1e-5, dp_noise_multiplier=1.1, dp_clip_norm=1.0)


def dp_history(chain: object) -> tuple[Consortium, int, list[str]]:
    """A consortium with an epsilon budget of 2.0 and one finalized round in which each
    participant i spent 0.1 * (i + 1)."""
    from swarm.ledger.chain import EmbeddedChain
    from tests.conftest import make_consortium, make_params

    assert isinstance(chain, EmbeddedChain)
    c = make_consortium(chain, 4, make_params(**DP))
    rid = open_round(c)
    info = join_all(c, rid)
    assert info.key_steward is not None
    c.client(info.key_steward).post_round_key(rid, h("key"))
    for i, a in enumerate(info.participants):
        eps = 0.1 * (i + 1)
        c.client(a).commit_update(
            rid, h(f"u-{a}"), 10, shares_hash=h(f"s-{a}"), round_epsilon=eps, total_epsilon=eps
        )
    finalize(c, rid, h("model-1"))
    return c, rid, list(info.participants)


def test_history_records_privacy_spending(chain: object) -> None:
    """PrivacySpent events become per-round and consortium-wide records against the round's
    budget, and each commitment keeps its mask-share manifest hash (the fault would be an
    audit that cannot show who spent how much privacy)."""
    c, rid, participants = dp_history(chain)
    history = build_history(c.admin.events())
    r = history.rounds[rid]
    assert [(p.account, p.round_epsilon, p.total_epsilon, p.budget) for p in r.privacy] == [
        (a, round(0.1 * (i + 1), 6), round(0.1 * (i + 1), 6), 2.0)
        for i, a in enumerate(participants)
    ]
    assert history.privacy == r.privacy
    assert [c_.shares_hash for c_ in r.commits] == [h(f"s-{a}") for a in participants]
    summary = round_summary(r)
    assert summary["privacy"][0]["account"] == participants[0]
    assert summary["commits"][0]["shares_hash"] == "0x" + h(f"s-{participants[0]}").hex()
    assert not [f for f in verify(history) if f.severity == Severity.ERROR]
