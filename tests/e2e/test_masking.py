"""Masked secure aggregation and differential privacy, end to end: 4 hospital peers as OS
processes on anvil, real libp2p, real CKKS, real hospital data, DP-SGD accounted on the ledger.

Fault exercised: a participant that drops out after committing (``after-commit`` in
tests/e2e/faulty_peer.py: killed right after its commitment is on the ledger, before it hands
out its mask shares or sends its update). The round must finalize with the other three, whose
masks cancel in their sum and are corrected from the survivors' shares; the dropped
participant's own ciphertext, decrypted with the round's secret key, must be noise that says
nothing about its real update (its self mask is never revealed). Then it restarts, catches up
and contributes to a later round. Each round's epsilon per contributor and the cumulative figure are
on the ledger, and `swarm audit privacy` shows them.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cli.app import run
from localnet import network
from localnet.peers import PeerProcess, peer_dir, start_peer, stop_peer, write_peer_configs
from swarm import crypto
from swarm.audit import build_history
from swarm.audit.verify import Severity, verify
from swarm.config import PeerConfig
from swarm.errors import CryptoError
from swarm.identity import load_keystore
from swarm.ledger import LedgerClient, RpcChain
from swarm.p2p import BlobKind
from swarm.p2p.disk_store import DirectoryBlobStore
from swarm.training import get_task, model_delta
from swarm.training.checkpoint import latest_checkpoint
from tests.e2e.faulty_peer import CRASH_EXIT

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

ROUNDS = 3
DROPOUT_POSITION = 2  # order[2]: neither the merge peer nor the key steward
FAULTS = f"after-commit@1:{DROPOUT_POSITION}"
BUDGET = 40.0


@pytest.fixture
def net(tmp_path: Path) -> Iterator[network.LocalnetConfig]:
    params = network.swarm_params(
        join_window=12, key_window=10, commit_window=12, merge_window=10, ack_window=15
    )
    params = dataclasses.replace(
        params,
        mask_threshold_pct=66,  # t = 3 of 4: the three survivors are enough
        epsilon_budget=BUDGET,
        dp_delta=1e-5,
        dp_noise_multiplier=1.0,
        dp_clip_norm=1.0,
    )
    config = network.up(tmp_path, peers=4, params=params)
    try:
        yield config
    finally:
        network.down(tmp_path)


def test_a_participant_that_drops_after_committing_spoils_nothing_and_stays_masked(
    net: network.LocalnetConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = write_peer_configs(net, tmp_path, rounds=ROUNDS)
    ledger = LedgerClient(RpcChain(net.chain_url), net.contract)
    procs: list[PeerProcess] = [
        start_peer(path, env={"SWARM_TEST_FAULTS": FAULTS}, module=_FAULTY) for path in configs
    ]
    dropped: int | None = None
    restarted = False
    try:
        deadline = time.monotonic() + 360
        while time.monotonic() < deadline:
            for i, proc in enumerate(procs):
                code = proc.process.poll() if proc.process is not None else None
                if dropped is None and code == CRASH_EXIT:
                    dropped = i
            if dropped is not None and not (tmp_path / "dropout-blobs").exists():
                # what its disk held when it died (a restarted peer prunes old rounds' blobs)
                blobs = peer_dir(tmp_path, net.peers[dropped]) / "data" / "blobs"
                shutil.copytree(blobs, tmp_path / "dropout-blobs")
            if dropped is not None and not restarted and ledger.last_finalized_round() >= 1:
                # restarted once round 1 is over (restarted at once it would hand out its
                # shares from disk and might still make round 1): it catches up and is back
                # in a later round
                procs[dropped] = start_peer(configs[dropped], module=_FAULTY)
                restarted = True
            if ledger.last_finalized_round() >= ROUNDS and not any(p.alive() for p in procs):
                break
            time.sleep(0.3)
        if ledger.last_finalized_round() < ROUNDS:
            for p in procs:
                print(f"==== {p.name}", *p.log_path.read_text().splitlines()[-40:], sep="\n")
        assert dropped is not None, "the dropout fault never fired"
        assert ledger.last_finalized_round() >= ROUNDS, "the swarm lost a round to a dropout"
        assert all(p.process and p.process.returncode == 0 for p in procs), "a peer failed"
    finally:
        for p in procs:
            stop_peer(p)

    history = build_history(ledger.events())
    r1 = history.rounds[1]
    later = [history.rounds[r] for r in range(2, ROUNDS + 1)]
    dropout = r1.order[DROPOUT_POSITION]
    assert dropout == net.peers[dropped].address
    assert dropout in {c.account for c in r1.commits}, "it committed before it died"
    assert r1.outcome == "finalized" and dropout not in r1.contributors
    assert len(r1.contributors) == 3
    assert all(r.outcome == "finalized" for r in later)
    assert any(dropout in r.contributors for r in later), "it never came back"

    # Every honest key holder computed the same model, bit for bit (the ledger finalized it
    # with a majority), and it is the model every peer's latest checkpoint holds.
    finals = set()
    for entry in net.peers:
        ckpt = latest_checkpoint(peer_dir(tmp_path, entry) / "data" / "checkpoints")
        assert ckpt is not None
        finals.add(ckpt.model_hash)
    assert finals == {history.rounds[ROUNDS].final_model}

    # The dropout's ciphertext, decrypted with the round's secret key, is noise.
    _assert_dropout_ciphertext_is_noise(net, tmp_path, dropout, r1.aggregate_attempt or 0)

    # Privacy on the ledger: every contributor's epsilon per round, cumulative and rising,
    # within the budget; `swarm audit privacy` prints it.
    spent = [e for e in history.events if e.name == "PrivacySpent"]
    by_member: dict[str, list[float]] = {}
    for e in spent:
        by_member.setdefault(e.args["account"], []).append(e.args["totalEpsilon"])
    assert set(later[-1].contributors) <= set(by_member)
    for totals in by_member.values():
        assert totals == sorted(totals) and 0 < totals[-1] <= BUDGET * 1_000_000
    assert not [f for f in verify(history) if f.severity == Severity.ERROR]
    code = run(["audit", "privacy", "--chain-url", net.chain_url, "--contract", net.contract])
    out = capsys.readouterr().out
    assert code == 0 and "epsilon" in out.lower()


def _assert_dropout_ciphertext_is_noise(
    net: network.LocalnetConfig, workdir: Path, dropout: str, attempt: int
) -> None:
    entry = next(p for p in net.peers if p.address == dropout)
    folder = peer_dir(workdir, entry)
    store = DirectoryBlobStore(workdir / "dropout-blobs")
    (update_ref,) = [r for r in store.find(kind=BlobKind.UPDATE, round_id=1) if r.sender == dropout]
    blob = store.get(update_ref.digest)
    assert blob is not None
    identity = load_keystore(Path(entry.keystore), net.password())
    context = None
    public = None
    for ref in store.find(kind=BlobKind.ROUND_CONTEXT, round_id=1):
        data = store.get(ref.digest)
        assert data is not None
        candidate = crypto.PublicRoundContext.from_bytes(
            data, params_id=crypto.read_header(blob).params_id
        )
        if candidate.context_hash == crypto.read_header(blob).context_hash:
            public = candidate
    assert public is not None
    for ref in store.find(kind=BlobKind.ROUND_KEY, round_id=1):
        sealed = store.get(ref.digest)
        assert sealed is not None
        binding = crypto.SealBinding.of(
            chain_id=net.chain_id,
            contract=net.contract,
            round_id=1,
            attempt=attempt,
            context_hash=public.context_hash,
            recipient=dropout,
        )
        try:
            context = crypto.open_sealed_key(
                sealed, public, binding=binding, private_key=identity.encryption_private_key()
            )
        except CryptoError:
            continue  # another attempt's key
    assert context is not None, "the dropout held the round's secret key"
    header = crypto.read_header(blob)
    task = get_task("heart-disease-uci/logreg")
    layout = crypto.layout_of(task.build_model(0).state_dict())
    decrypted = crypto.decrypt_blob(
        blob,
        context,
        round_id=1,
        layout=layout,
        kinds=frozenset({crypto.PayloadKind.SEEDED_UPDATE}),
    )
    # What an unmasked update would be: the same hospital's local training of round 1 stays
    # within a few units per weight times its sample count; the masked plaintext decodes to
    # values spread over the whole ring (|v| ~ q / scale), far beyond that.
    config = PeerConfig.load(folder / "peer.toml")
    site = task.load_site(config.site, seed=config.seed)
    bound = 10.0 * site.train_samples
    assert np.median(np.abs(decrypted)) > 100 * bound
    # ... and carries no trace of it: uncorrelated with the update. The peer trained with DP-SGD
    # (its noise drawn from OS entropy, so not reproducible here); the reference is the same
    # hospital's non-private update of the round, which an unmasked DP update follows closely.
    base = task.build_model(config.seed)
    trained = task.build_model(config.seed)
    cfg = dataclasses.replace(task.default_config, seed=config.seed, **config.training.given())
    task.train(trained, site, cfg.for_round(1, config.site), base.state_dict())
    real = crypto.flatten(model_delta(trained.state_dict(), base.state_dict()), layout)
    r = float(np.corrcoef(decrypted, real)[0, 1])
    # 36 values: under independence r has standard deviation ~0.17; 0.6 is 3.5 of them
    assert abs(r) < 0.6, f"the masked update correlates with a plain update (r={r:.2f})"
    assert header.sender == bytes.fromhex(dropout[2:])


_FAULTY = "tests.e2e.faulty_peer"
