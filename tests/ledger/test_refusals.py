"""Every state-changing function of both contracts refuses a non-member (or non-admin), a wrong
round state and an out-of-bound argument with one named error.

One round is driven through its states once; each case starts from the snapshot of the state
it needs (eth-tester snapshots), so the table stays fast. Each case's id names the function and
the fault: ``fn/non-member``, ``fn/wrong-state``, ``fn/<argument>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from swarm import errors
from swarm.identity import Identity
from swarm.ledger import ADMIN_ROLE, EmbeddedChain, LedgerClient, Params, RoundInfo
from tests.conftest import Consortium, h, make_consortium, make_params
from tests.ledger.rounds import SHARES, encryption_card, join_all, open_round

ZERO = b"\0" * 32


@dataclass
class World:
    chain: EmbeddedChain
    c: Consortium
    outsider: LedgerClient
    newcomer: Identity  # not a member
    rid: int
    info: RoundInfo  # the round's roles (after the draw)
    snapshots: dict[str, Any]

    def member(self) -> LedgerClient:
        return self.c.client(self.c.addresses[0])

    def steward(self) -> LedgerClient:
        return self.c.client(self.info.key_steward)  # type: ignore[arg-type]

    def merge(self) -> LedgerClient:
        return self.c.client(self.info.merge_peer)  # type: ignore[arg-type]

    def acker(self) -> LedgerClient:
        return self.c.client(next(a for a in self.info.participants if a != self.info.merge_peer))

    def raw(self, who: LedgerClient, fn_name: str, *args: Any) -> Any:
        """Send a SwarmLedger call as is (no client-side conversion or clamping)."""
        return who._send(getattr(who.contract.functions, fn_name)(*args))

    def raw_c(self, who: LedgerClient, fn_name: str, *args: Any) -> Any:
        """Send a Consortium call as is."""
        return who._send(getattr(who.consortium.functions, fn_name)(*args))


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    chain = EmbeddedChain()
    c = make_consortium(chain, 4, make_params())
    newcomer = Identity.generate()
    chain.fund(newcomer.address, 10**20)
    outsider = c.admin.as_identity(newcomer)
    snaps: dict[str, Any] = {}
    rid = open_round(c)
    snaps["JOINING"] = chain.tester.take_snapshot()
    for a in c.addresses:
        c.client(a).join(rid)
    snaps["DRAWING"] = chain.tester.take_snapshot()
    info = join_all(c, rid, [])
    snaps["KEYING"] = chain.tester.take_snapshot()
    c.client(info.key_steward).post_round_key(rid, h("key"))  # type: ignore[arg-type]
    snaps["COMMITTING"] = chain.tester.take_snapshot()
    for a in info.participants:
        c.client(a).commit_update(rid, h(f"u-{a}"), 10, shares_hash=SHARES)
    snaps["MERGING"] = chain.tester.take_snapshot()
    c.client(info.merge_peer).submit_aggregate(rid, h("agg"), info.participants)  # type: ignore[arg-type]
    snaps["ACKNOWLEDGING"] = chain.tester.take_snapshot()
    for a in info.participants:
        if a != info.merge_peer:
            c.client(a).acknowledge(rid, h("model-1"))
    snaps["FINALIZED"] = chain.tester.take_snapshot()
    yield World(chain, c, outsider, newcomer, rid, info, snaps)


Call = Callable[[World], Any]


def _dp(w: World) -> Params:
    """The newest parameters with valid differential-privacy settings (budget 1.0)."""
    return replace(
        w.c.admin.params(),
        epsilon_budget=1.0,
        dp_delta=1e-5,
        dp_noise_multiplier=1.1,
        dp_clip_norm=1.0,
    )


# (case id, state to start from, the call, the error's name)
CASES: list[tuple[str, str, Call, str]] = [
    # --- SwarmLedger ---
    (
        "openRound/non-member",
        "FINALIZED",
        lambda w: w.outsider.open_round(h("model-1")),
        "NotAMember",
    ),
    (
        "openRound/wrong-state",
        "KEYING",
        lambda w: w.member().open_round(h("model-0")),
        "WrongRoundState",
    ),
    (
        "openRound/baseModel",
        "FINALIZED",
        lambda w: w.member().open_round(h("stale")),
        "WrongBaseModel",
    ),
    ("join/non-member", "JOINING", lambda w: w.outsider.join(w.rid), "NotAMember"),
    ("join/wrong-state", "KEYING", lambda w: w.member().join(w.rid), "WrongRoundState"),
    ("join/round", "JOINING", lambda w: w.member().join(w.rid + 1), "WrongRoundState"),
    ("closeJoin/non-member", "JOINING", lambda w: w.outsider.close_join(w.rid), "NotAMember"),
    ("closeJoin/wrong-state", "DRAWING", lambda w: w.member().close_join(w.rid), "WrongRoundState"),
    ("closeJoin/too-early", "JOINING", lambda w: w.member().close_join(w.rid), "DeadlineNotPassed"),
    ("drawRoles/non-member", "KEYING", lambda w: w.outsider.draw_roles(w.rid), "NotAMember"),
    ("drawRoles/wrong-state", "JOINING", lambda w: w.member().draw_roles(w.rid), "WrongRoundState"),
    ("drawRoles/again", "COMMITTING", lambda w: w.member().draw_roles(w.rid), "RolesAlreadyDrawn"),
    (
        "postRoundKey/non-member",
        "KEYING",
        lambda w: w.outsider.post_round_key(w.rid, h("k")),
        "NotAMember",
    ),
    (
        "postRoundKey/wrong-state",
        "COMMITTING",
        lambda w: w.steward().post_round_key(w.rid, h("k")),
        "WrongRoundState",
    ),
    (
        "postRoundKey/keyHash",
        "KEYING",
        lambda w: w.steward().post_round_key(w.rid, ZERO),
        "InvalidParameter",
    ),
    (
        "postRoundKey/not-steward",
        "KEYING",
        lambda w: w.merge().post_round_key(w.rid, h("k")),
        "NotKeySteward",
    ),
    (
        "replaceKeySteward/non-member",
        "KEYING",
        lambda w: w.outsider.replace_key_steward(w.rid),
        "NotAMember",
    ),
    (
        "replaceKeySteward/wrong-state",
        "COMMITTING",
        lambda w: w.member().replace_key_steward(w.rid),
        "WrongRoundState",
    ),
    (
        "replaceKeySteward/too-early",
        "KEYING",
        lambda w: w.member().replace_key_steward(w.rid),
        "DeadlineNotPassed",
    ),
    (
        "commitUpdate/non-member",
        "COMMITTING",
        lambda w: w.outsider.commit_update(w.rid, h("u"), 1, shares_hash=SHARES),
        "NotAMember",
    ),
    (
        "commitUpdate/wrong-state",
        "KEYING",
        lambda w: w.member().commit_update(w.rid, h("u"), 1, shares_hash=SHARES),
        "WrongRoundState",
    ),
    (
        "commitUpdate/updateHash",
        "COMMITTING",
        lambda w: w.member().commit_update(w.rid, ZERO, 1, shares_hash=SHARES),
        "InvalidParameter",
    ),
    (
        "commitUpdate/sampleCount=0",
        "COMMITTING",
        lambda w: w.member().commit_update(w.rid, h("u"), 0, shares_hash=SHARES),
        "InvalidParameter",
    ),
    (
        "commitUpdate/sampleCount>max",
        "COMMITTING",
        lambda w: w.member().commit_update(w.rid, h("u"), 2**48, shares_hash=SHARES),
        "InvalidParameter",
    ),
    (
        "commitUpdate/sharesHash",  # the round masks (maskThresholdPct 66): a manifest hash is due
        "COMMITTING",
        lambda w: w.member().commit_update(w.rid, h("u"), 1),
        "InvalidSharesHash",
    ),
    (
        "commitUpdate/epsilon-without-budget",
        "COMMITTING",
        lambda w: w.member().commit_update(w.rid, h("u"), 1, shares_hash=SHARES, total_epsilon=1),
        "InvalidParameter",
    ),
    (
        "submitAggregate/non-member",
        "MERGING",
        lambda w: w.raw(w.outsider, "submitAggregate", w.rid, h("a"), 7),
        "NotAMember",
    ),
    (
        "submitAggregate/wrong-state",
        "COMMITTING",
        lambda w: w.raw(w.merge(), "submitAggregate", w.rid, h("a"), 7),
        "WrongRoundState",
    ),
    (
        "submitAggregate/aggregateHash",
        "MERGING",
        lambda w: w.raw(w.merge(), "submitAggregate", w.rid, ZERO, 7),
        "InvalidParameter",
    ),
    (
        "submitAggregate/bits-not-committed",
        "MERGING",
        lambda w: w.raw(w.merge(), "submitAggregate", w.rid, h("a"), 0b10111),
        "InvalidContributors",
    ),
    (
        "submitAggregate/too-few",
        "MERGING",
        lambda w: w.raw(w.merge(), "submitAggregate", w.rid, h("a"), 0b11),
        "TooFewContributors",
    ),
    (
        "submitAggregate/not-merge-peer",
        "MERGING",
        lambda w: w.raw(w.steward(), "submitAggregate", w.rid, h("a"), 7),
        "NotMergePeer",
    ),
    (
        "replaceMergePeer/non-member",
        "MERGING",
        lambda w: w.outsider.replace_merge_peer(w.rid),
        "NotAMember",
    ),
    (
        "replaceMergePeer/wrong-state",
        "ACKNOWLEDGING",
        lambda w: w.member().replace_merge_peer(w.rid),
        "WrongRoundState",
    ),
    (
        "replaceMergePeer/too-early",
        "MERGING",
        lambda w: w.member().replace_merge_peer(w.rid),
        "DeadlineNotPassed",
    ),
    (
        "acknowledge/non-member",
        "ACKNOWLEDGING",
        lambda w: w.outsider.acknowledge(w.rid, h("m")),
        "NotAMember",
    ),
    (
        "acknowledge/wrong-state",
        "MERGING",
        lambda w: w.acker().acknowledge(w.rid, h("m")),
        "WrongRoundState",
    ),
    (
        "acknowledge/modelHash",
        "ACKNOWLEDGING",
        lambda w: w.acker().acknowledge(w.rid, ZERO),
        "InvalidParameter",
    ),
    (
        "acknowledge/merge-peer",
        "ACKNOWLEDGING",
        lambda w: w.merge().acknowledge(w.rid, h("m")),
        "NotContributor",
    ),
    (
        "reportMetrics/non-member",
        "FINALIZED",
        lambda w: w.outsider.report_metrics(w.rid, 5, 0.5, 0.5, 0.1),
        "NotAMember",
    ),
    (
        "reportMetrics/wrong-state",
        "ACKNOWLEDGING",
        lambda w: w.member().report_metrics(w.rid, 5, 0.5, 0.5, 0.1),
        "WrongRoundState",
    ),
    (
        "reportMetrics/testSamples",
        "FINALIZED",
        lambda w: w.member().report_metrics(w.rid, 0, 0.5, 0.5, 0.1),
        "InvalidParameter",
    ),
    (
        "reportMetrics/accuracyPpm",
        "FINALIZED",
        lambda w: w.raw(w.member(), "reportMetrics", w.rid, 5, 1_000_001, 0, 0),
        "InvalidParameter",
    ),
    (
        "reportMetrics/aucPpm",
        "FINALIZED",
        lambda w: w.raw(w.member(), "reportMetrics", w.rid, 5, 0, 1_000_001, 0),
        "InvalidParameter",
    ),
    (
        "memberRemoved/not-consortium",
        "KEYING",
        lambda w: w.raw(w.member(), "memberRemoved", w.c.addresses[1]),
        "NotConsortium",
    ),
    # --- Consortium ---
    (
        "addMember/non-admin",
        "JOINING",
        lambda w: w.member().add_member_identity(w.newcomer, "x"),
        "AccessControlUnauthorizedAccount",
    ),
    (
        "addMember/publicKey",
        "JOINING",
        lambda w: w.raw_c(
            w.c.admin,
            "addMember",
            w.newcomer.address,
            b"\1" * 63,
            *encryption_card(w.newcomer),
            "p",
            [],
            "x",
        ),
        "InvalidPublicKeyLength",
    ),
    (
        "addMember/multiaddrs",
        "JOINING",
        lambda w: w.c.admin.add_member_identity(w.newcomer, "x", ["/ip4/10.0.0.1/tcp/1"] * 17),
        "InvalidParameter",
    ),
    (
        "addMember/account",
        "JOINING",
        lambda w: w.raw_c(
            w.c.admin,
            "addMember",
            "0x" + "00" * 20,
            w.newcomer.public_key,
            *encryption_card(w.newcomer),
            "p",
            [],
            "x",
        ),
        "InvalidAccount",
    ),
    (
        "removeMember/non-admin",
        "JOINING",
        lambda w: w.member().remove_member(w.c.addresses[1]),
        "AccessControlUnauthorizedAccount",
    ),
    (
        "removeMember/account",
        "JOINING",
        lambda w: w.c.admin.remove_member(w.newcomer.address),
        "NotAMember",
    ),
    (
        "updateMultiaddrs/non-member",
        "JOINING",
        lambda w: w.outsider.update_multiaddrs([]),
        "NotAMember",
    ),
    (
        "updateMultiaddrs/multiaddrs",
        "JOINING",
        lambda w: w.member().update_multiaddrs(["/ip4/10.0.0.1/tcp/1"] * 17),
        "InvalidParameter",
    ),
    (
        "setEncryptionKey/non-member",
        "JOINING",
        lambda w: w.outsider.set_encryption_key(*encryption_card(w.newcomer)),
        "NotAMember",
    ),
    (
        "setEncryptionKey/signature",
        "JOINING",
        lambda w: w.member().set_encryption_key(*encryption_card(w.newcomer)),
        "EncryptionKeySignatureInvalid",
    ),
    (
        "setEncryptionKey/key",
        "JOINING",
        lambda w: w.member().set_encryption_key(ZERO, b"\0" * 65),
        "InvalidParameter",
    ),
    (
        "setParams/non-admin",
        "JOINING",
        lambda w: w.member().set_params(w.c.admin.params()),
        "AccessControlUnauthorizedAccount",
    ),
    (
        "setParams/minPeers",
        "JOINING",
        lambda w: w.c.admin.set_params(replace(w.c.admin.params(), min_peers=2)),
        "InvalidParameter",
    ),
    (
        "setParams/maskThresholdPct<51",
        "JOINING",
        lambda w: w.c.admin.set_params(replace(w.c.admin.params(), mask_threshold_pct=50)),
        "InvalidParameter",
    ),
    (
        "setParams/maskThresholdPct>100",
        "JOINING",
        lambda w: w.c.admin.set_params(replace(w.c.admin.params(), mask_threshold_pct=101)),
        "InvalidParameter",
    ),
    (
        "setParams/dpDelta=0",
        "JOINING",
        lambda w: w.c.admin.set_params(replace(_dp(w), dp_delta=0.0)),
        "InvalidParameter",
    ),
    (
        "setParams/dpDelta>=1",
        "JOINING",
        lambda w: w.c.admin.set_params(replace(_dp(w), dp_delta=1.0)),
        "InvalidParameter",
    ),
    (
        "setParams/dpNoiseMultiplier",
        "JOINING",
        lambda w: w.c.admin.set_params(replace(_dp(w), dp_noise_multiplier=0.0)),
        "InvalidParameter",
    ),
    (
        "setParams/dpClipNorm",
        "JOINING",
        lambda w: w.c.admin.set_params(replace(_dp(w), dp_clip_norm=0.0)),
        "InvalidParameter",
    ),
    (
        "bindLedger/non-owner",
        "JOINING",
        lambda w: w.raw_c(w.member(), "bindLedger", w.c.admin.address),
        "AccessControlUnauthorizedAccount",
    ),
    (
        "bindLedger/again",
        "JOINING",
        lambda w: w.raw_c(w.c.admin, "bindLedger", w.c.admin.address),
        "LedgerAlreadyBound",
    ),
    (
        "grantRole/non-owner",
        "JOINING",
        lambda w: w.member().add_admin(w.newcomer.address),
        "AccessControlUnauthorizedAccount",
    ),
    (
        "grantRole/account",
        "JOINING",
        lambda w: w.raw_c(w.c.admin, "grantRole", ADMIN_ROLE, "0x" + "00" * 20),
        "InvalidAccount",
    ),
]


@pytest.mark.parametrize(
    ("state", "call", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_refusal_is_one_named_error(world: World, state: str, call: Call, error: str) -> None:
    """Fault: the case id's (a non-member, a call in the wrong round state, an out-of-bound
    argument): the contract refuses with exactly the named error, and nothing changes."""
    world.chain.tester.revert_to_snapshot(world.snapshots[state])
    before = world.chain.w3.eth.block_number
    with pytest.raises(errors.ContractRevertError) as exc:
        call(world)
    assert exc.value.name == error, exc.value
    # refused at the estimate: nothing was sent, nothing mined
    assert world.chain.w3.eth.block_number == before


def test_every_state_changing_function_has_its_refusals() -> None:
    """The table covers every state-changing function of both contracts (a new function
    without refusal cases fails here)."""
    from swarm.ledger.artifacts import load_artifact

    covered = {case.split("/")[0] for case, *_ in CASES}
    skip = {
        # OpenZeppelin's own role administration, tested by OpenZeppelin; the two-step
        # ownership handover is exercised in test_membership.py
        "revokeRole",
        "renounceRole",
        "beginDefaultAdminTransfer",
        "cancelDefaultAdminTransfer",
        "acceptDefaultAdminTransfer",
        "changeDefaultAdminDelay",
        "rollbackDefaultAdminDelay",
    }
    for name in ("SwarmLedger", "Consortium"):
        writers = {
            item["name"]
            for item in load_artifact(name).abi
            if item["type"] == "function" and item["stateMutability"] == "nonpayable"
        }
        assert writers - skip <= covered, writers - skip - covered
