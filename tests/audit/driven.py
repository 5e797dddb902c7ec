"""A consortium history driven through the ledger client on the embedded chain, built once.

Five rounds, as peers and an admin would make them:

1. finalized; one key holder acknowledges a different model (a dissent: a warning);
2. the merge peer misses its deadline and is replaced; attempt 1 finalizes;
   then the admin admits a hospital with a hostile name, changes a parameter, grants a second
   admin and removes the hospital again;
3. only one hospital joins: lapses (too few joined), recorded when round 4 opens;
4. the merge peer leaves one committer out of the aggregate (a warning); finalized;
5. open, two hospitals joined: in progress.

The finalized models are real state dicts whose ``model_hash`` is what the hospitals
acknowledged, so checkpoint files written from them verify. Building it costs ~80 transactions
(~20 s on the embedded chain), so every audit test shares one copy: tests only read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch

from swarm.identity import Identity
from swarm.ledger import EmbeddedChain, LedgerClient
from swarm.training.checkpoint import model_hash
from tests.conftest import WINDOW, h, make_params

NAMES = ["Charité Berlin", "Hôpital Lariboisière", "Karolinska", "Rigshospitalet"]
# Taken for HTML by a browser and for markup by rich if either were not escaped.
HOSTILE_NAME = "<script>alert(1)</script>[/]"

# (accuracy, AUC) each hospital reports on its own test set, per finalized round
METRICS = {
    1: [(0.61, 0.66), (0.58, 0.63), (0.64, 0.69), (0.60, 0.65)],
    2: [(0.72, 0.78), (0.69, 0.74), (0.74, 0.80), (0.70, 0.76)],
    4: [(0.81, 0.87), (0.77, 0.84), (0.83, 0.89), (0.79, 0.85)],
}


@dataclass(frozen=True)
class Driven:
    chain: EmbeddedChain
    ledger: LedgerClient  # read-only: an auditor's client
    admin: str
    hospitals: list[str]  # addresses, in order of admission
    hostile: str  # the address of the member with the hostile name (removed)
    models: dict[int, dict[str, torch.Tensor]]  # finalized round -> its weights
    dissenter: str  # acknowledged another model in round 1
    replaced_merge_peer: str  # round 2's first merge peer
    left_out: str  # committed in round 4, not aggregated


def model(round_id: int) -> dict[str, torch.Tensor]:
    """A small, deterministic state dict standing for the model round ``round_id`` finalized."""
    g = torch.Generator().manual_seed(round_id)
    return {"linear.weight": torch.randn(2, 3, generator=g), "linear.bias": torch.zeros(2)}


def _client(base: LedgerClient, chain: EmbeddedChain, ident: Identity) -> LedgerClient:
    chain.fund(ident.address, 10**20)
    return base.as_identity(ident)


@cache
def driven() -> Driven:
    chain = EmbeddedChain()
    admin_id = Identity.generate()
    chain.fund(admin_id.address, 10**20)
    admin = LedgerClient.deploy(chain, admin_id, make_params())
    ids = [Identity.generate() for _ in NAMES]
    clients: dict[str, LedgerClient] = {}
    for ident, name in zip(ids, NAMES, strict=True):
        admin.add_member(ident.address, ident.public_key, name, ["/ip4/10.0.0.1/tcp/4001"])
        clients[ident.address] = _client(admin, chain, ident)
    everyone = [i.address for i in ids]
    models = {r: model(r) for r in METRICS}

    def c(address: str | None) -> LedgerClient:
        assert address is not None
        return clients[address]

    def commit_all(rid: int, attempt: int) -> None:
        for i, a in enumerate(everyone):
            c(a).commit_update(rid, h(f"update-{rid}-{attempt}-{a}"), 100 * (i + 1))

    def report(rid: int) -> None:
        for a, (acc, auc) in zip(everyone, METRICS[rid], strict=True):
            c(a).report_metrics(rid, 500, acc, auc, 1 - acc)

    # Round 1: finalized; the last key holder dissents.
    rid = c(everyone[0]).open_round(admin.latest_model())
    for a in everyone:
        c(a).join(rid)
    info = admin.round(rid)
    c(info.key_steward).post_round_key(rid, h("key-1"))
    commit_all(rid, 0)
    c(info.merge_peer).submit_aggregate(rid, h("aggregate-1"), everyone)
    voters = [a for a in everyone if a != info.merge_peer]
    c(voters[0]).acknowledge(rid, model_hash(models[1]))
    c(voters[1]).acknowledge(rid, model_hash(models[1]))
    c(voters[2]).acknowledge(rid, h("a model of its own"))
    dissenter = voters[2]
    report(rid)

    # Round 2: the merge peer misses its deadline; attempt 1 finalizes.
    rid = c(everyone[1]).open_round(admin.latest_model())
    for a in everyone:
        c(a).join(rid)
    info = admin.round(rid)
    c(info.key_steward).post_round_key(rid, h("key-2-0"))
    commit_all(rid, 0)
    chain.advance_time(2 * WINDOW + 1)
    c(info.key_steward).replace_merge_peer(rid)
    replaced = info.merge_peer
    info = admin.round(rid)
    c(info.key_steward).post_round_key(rid, h("key-2-1"))
    commit_all(rid, 1)
    c(info.merge_peer).submit_aggregate(rid, h("aggregate-2"), everyone)
    for a in everyone:
        if a != info.merge_peer:
            c(a).acknowledge(rid, model_hash(models[2]))
    report(rid)

    # Between rounds: membership and parameter changes by the admin.
    hostile = Identity.generate()
    admin.add_member(hostile.address, hostile.public_key, HOSTILE_NAME, [])
    admin.set_params(make_params(join_window=WINDOW + 50))
    admin.add_admin(everyone[0])
    admin.remove_member(hostile.address)

    # Round 3: one hospital joins; lapses when the join window ends.
    rid = c(everyone[2]).open_round(admin.latest_model())
    c(everyone[2]).join(rid)
    chain.advance_time(WINDOW + 51)

    # Round 4: the merge peer leaves a committer out (records round 3's lapse first).
    rid = c(everyone[3]).open_round(admin.latest_model())
    for a in everyone:
        c(a).join(rid)
    info = admin.round(rid)
    c(info.key_steward).post_round_key(rid, h("key-4"))
    commit_all(rid, 0)
    left_out = info.order[-1]
    contributors = [a for a in everyone if a != left_out]
    c(info.merge_peer).submit_aggregate(rid, h("aggregate-4"), contributors)
    for a in contributors:
        if a != info.merge_peer:
            c(a).acknowledge(rid, model_hash(models[4]))
    report(rid)

    # Round 5: in progress.
    rid = c(everyone[0]).open_round(admin.latest_model())
    c(everyone[0]).join(rid)
    c(everyone[1]).join(rid)

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
    )


__all__ = ["HOSTILE_NAME", "METRICS", "NAMES", "Driven", "driven", "model"]
