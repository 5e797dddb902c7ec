"""A consortium history driven through the ledger client on the embedded chain, built once.

Seven rounds, as peers and an admin would make them (four hospitals; a member that misses two
commits in a row sits out the next round):

1. finalized; one key holder acknowledges a different model (a dissent: a warning);
2. the merge peer misses its deadline and is replaced; attempt 1 finalizes;
   then the admin admits a hospital with a hostile name, changes a parameter (a new version)
   and grants a second admin;
3. two hospitals join, the hostile one among them; the admin removes it while the round runs
   (it leaves the round: a note); too few joined: lapses, recorded when round 4 opens;
4. the merge peer leaves one committer out of the aggregate (a warning); finalized;
5. the stalling hospital joins but does not commit (a missed commit: a warning); finalized
   by the other three after the commit deadline;
6. it misses again: two in a row, so it sits out round 7 (a note); finalized;
7. open, two hospitals joined (the stalling one may not: the contract refuses it): in progress.

The finalized models are real state dicts whose ``model_hash`` is what the hospitals
acknowledged, so checkpoint files written from them verify. Building it costs ~130 transactions
(~30 s on the embedded chain), so every audit test shares one copy: tests only read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch

from swarm.errors import NotParticipantError
from swarm.identity import Identity
from swarm.ledger import EmbeddedChain, LedgerClient, RoundInfo, RoundState
from swarm.training.checkpoint import model_hash
from tests.conftest import WINDOW, h, make_params
from tests.ledger.rounds import SHARES

NAMES = ["Charité Berlin", "Hôpital Lariboisière", "Karolinska", "Rigshospitalet"]
# Taken for HTML by a browser and for markup by rich if either were not escaped.
HOSTILE_NAME = "<script>alert(1)</script>[/]"
#: consecutive missed commits before a member sits out, and for how many rounds
MAX_MISSED, SIT_OUT = 2, 1

# (accuracy, AUC) each hospital reports on its own test set, per round that reports metrics
METRICS = {
    1: [(0.61, 0.66), (0.58, 0.63), (0.64, 0.69), (0.60, 0.65)],
    2: [(0.72, 0.78), (0.69, 0.74), (0.74, 0.80), (0.70, 0.76)],
    4: [(0.81, 0.87), (0.77, 0.84), (0.83, 0.89), (0.79, 0.85)],
}
FINALIZED = (1, 2, 4, 5, 6)


@dataclass(frozen=True)
class Driven:
    chain: EmbeddedChain
    ledger: LedgerClient  # read-only: an auditor's client
    admin: str
    hospitals: list[str]  # addresses, in order of admission
    hostile: str  # the address of the member with the hostile name (removed in round 3)
    models: dict[int, dict[str, torch.Tensor]]  # finalized round -> its weights
    dissenter: str  # acknowledged another model in round 1
    replaced_merge_peer: str  # round 2's first merge peer
    left_out: str  # committed in round 4, not aggregated
    staller: str  # joined rounds 5 and 6 without committing; sits out round 7


def model(round_id: int) -> dict[str, torch.Tensor]:
    """A small, deterministic state dict standing for the model round ``round_id`` finalized."""
    g = torch.Generator().manual_seed(round_id)
    return {"linear.weight": torch.randn(2, 3, generator=g), "linear.bias": torch.zeros(2)}


def _client(base: LedgerClient, chain: EmbeddedChain, ident: Identity) -> LedgerClient:
    chain.fund(ident.address, 10**20)
    return base.as_identity(ident)


def _params(**changes: object) -> object:
    return make_params(max_missed_commits=MAX_MISSED, sit_out_rounds=SIT_OUT, **changes)


@cache
def driven() -> Driven:
    chain = EmbeddedChain()
    admin_id = Identity.generate()
    chain.fund(admin_id.address, 10**20)
    admin = LedgerClient.deploy(chain, admin_id, _params())  # type: ignore[arg-type]
    ids = [Identity.generate() for _ in NAMES]
    clients: dict[str, LedgerClient] = {}
    for ident, name in zip(ids, NAMES, strict=True):
        admin.add_member_identity(ident, name, ["/ip4/10.0.0.1/tcp/4001"])
        clients[ident.address] = _client(admin, chain, ident)
    everyone = [i.address for i in ids]
    staller = everyone[1]
    models = {r: model(r) for r in FINALIZED}

    def c(address: str | None) -> LedgerClient:
        assert address is not None
        return clients[address]

    def join(rid: int, joiners: list[str]) -> RoundInfo:
        """Join; once the window closed, mine past the draw block (the embedded chain mines
        only on transactions) so that the roles exist."""
        for a in joiners:
            c(a).join(rid)
        info = admin.round(rid)
        if info.state == RoundState.DRAWING:
            chain.mine(2)
            info = admin.round(rid)
        return info

    def commit(rid: int, attempt: int, who: list[str]) -> None:
        for a in who:
            c(a).commit_update(
                rid,
                h(f"update-{rid}-{attempt}-{a}"),
                100 * (everyone.index(a) + 1),
                shares_hash=SHARES,
            )

    def report(rid: int) -> None:
        for a, (acc, auc) in zip(everyone, METRICS[rid], strict=True):
            c(a).report_metrics(rid, 500, acc, auc, 1 - acc)

    def stalled_round(rid: int) -> None:
        """Everyone joins; the staller holds its role if it has one but never commits."""
        info = join(rid, everyone)
        c(info.key_steward).post_round_key(rid, h(f"key-{rid}"))
        committers = [a for a in everyone if a != staller]
        commit(rid, 0, committers)
        chain.advance_time(WINDOW + 1)  # the commit window ends without the staller
        c(info.merge_peer).submit_aggregate(rid, h(f"aggregate-{rid}"), committers)
        for a in committers:
            if a != info.merge_peer:
                c(a).acknowledge(rid, model_hash(models[rid]))

    # Round 1: finalized; the last key holder dissents.
    rid = c(everyone[0]).open_round(admin.latest_model())
    info = join(rid, everyone)
    c(info.key_steward).post_round_key(rid, h("key-1"))
    commit(rid, 0, everyone)
    c(info.merge_peer).submit_aggregate(rid, h("aggregate-1"), everyone)
    voters = [a for a in everyone if a != info.merge_peer]
    c(voters[0]).acknowledge(rid, model_hash(models[1]))
    c(voters[1]).acknowledge(rid, model_hash(models[1]))
    c(voters[2]).acknowledge(rid, h("a model of its own"))
    dissenter = voters[2]
    report(rid)

    # Round 2: the merge peer misses its deadline; attempt 1 finalizes.
    rid = c(everyone[1]).open_round(admin.latest_model())
    info = join(rid, everyone)
    c(info.key_steward).post_round_key(rid, h("key-2-0"))
    commit(rid, 0, everyone)
    chain.advance_time(2 * WINDOW + 1)
    c(info.key_steward).replace_merge_peer(rid)
    replaced = info.merge_peer
    info = admin.round(rid)
    c(info.key_steward).post_round_key(rid, h("key-2-1"))
    commit(rid, 1, everyone)
    c(info.merge_peer).submit_aggregate(rid, h("aggregate-2"), everyone)
    for a in everyone:
        if a != info.merge_peer:
            c(a).acknowledge(rid, model_hash(models[2]))
    report(rid)

    # Between rounds: membership, parameter and role changes by the admin.
    hostile = Identity.generate()
    admin.add_member_identity(hostile, HOSTILE_NAME, [])
    clients[hostile.address] = _client(admin, chain, hostile)
    admin.set_params(_params(join_window=WINDOW + 50))  # type: ignore[arg-type]
    admin.add_admin(everyone[0])

    # Round 3: two join, the hostile member is removed meanwhile; lapses when the window ends.
    rid = c(everyone[2]).open_round(admin.latest_model())
    join(rid, [everyone[2], hostile.address])
    admin.remove_member(hostile.address)
    chain.advance_time(WINDOW + 51)

    # Round 4: the merge peer leaves a committer out (records round 3's lapse first).
    rid = c(everyone[3]).open_round(admin.latest_model())
    info = join(rid, everyone)
    c(info.key_steward).post_round_key(rid, h("key-4"))
    commit(rid, 0, everyone)
    left_out = info.order[-1]
    contributors = [a for a in everyone if a != left_out]
    c(info.merge_peer).submit_aggregate(rid, h("aggregate-4"), contributors)
    for a in contributors:
        if a != info.merge_peer:
            c(a).acknowledge(rid, model_hash(models[4]))
    report(rid)

    # Rounds 5 and 6: the staller joins and never commits; after the second miss it sits out.
    for rid in (5, 6):
        assert c(everyone[0]).open_round(admin.latest_model()) == rid
        stalled_round(rid)
    assert admin.sitting_out_until(staller) == 6 + SIT_OUT

    # Round 7: in progress; the staller may not join it.
    rid = c(everyone[0]).open_round(admin.latest_model())
    join(rid, [everyone[0], everyone[2]])
    try:
        c(staller).join(rid)
    except NotParticipantError:
        pass
    else:
        raise AssertionError("the contract let a member that sits out join")

    assert replaced is not None
    return Driven(
        chain=chain,
        ledger=LedgerClient(chain, admin.address),
        admin=admin_id.address,
        hospitals=everyone,
        hostile=hostile.address,
        models=models,
        dissenter=dissenter,
        replaced_merge_peer=replaced,
        left_out=left_out,
        staller=staller,
    )


__all__ = ["FINALIZED", "HOSTILE_NAME", "METRICS", "NAMES", "Driven", "driven", "model"]
