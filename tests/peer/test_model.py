"""The model a peer holds and the round keys a steward keeps (swarm.peer.model, .work)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from swarm import crypto
from swarm.errors import CheckpointError, ConfigError
from swarm.merge import model_delta, weighted_sum
from swarm.merge.server import ServerOptimizer, swarm_state
from swarm.peer.keyholder import apply_decrypted_sum
from swarm.peer.model import ModelKeeper
from swarm.peer.work import RoundWork, StewardKeys, prune_steward_keys
from swarm.training.checkpoint import latest_checkpoint, model_bytes, model_hash, write_checkpoint

INITIAL = {"w": torch.zeros(2, 3), "b": torch.zeros(3), "steps": torch.tensor(0)}


def keeper(directory: Path) -> ModelKeeper:
    return ModelKeeper(directory, INITIAL, model_hash(INITIAL), {"task": "t"})


def test_a_fresh_peer_starts_from_the_consortiums_initial_model(tmp_path: Path) -> None:
    """No checkpoint: the task's initial model, whose hash the ledger recorded."""
    k = keeper(tmp_path)
    assert k.round == 0 and k.hash == model_hash(INITIAL)


def test_an_initial_model_the_consortium_did_not_record_is_refused_in_full(
    tmp_path: Path,
) -> None:
    """Config typo (another task or seed): one line naming both full hashes and what to check."""
    with pytest.raises(ConfigError) as err:
        ModelKeeper(tmp_path, INITIAL, b"\x01" * 32, {})
    text = str(err.value)
    assert model_hash(INITIAL).hex() in text and ("01" * 32) in text and "[task]" in text


def test_a_checkpoint_with_the_right_names_but_wrong_shapes_is_refused(tmp_path: Path) -> None:
    """Corrupt or foreign checkpoint (names match, shapes do not): refused at start-up with the
    tensor named, instead of being adopted and then refusing every update of every round."""
    wrong = {"w": torch.zeros(3, 2), "b": torch.zeros(3), "steps": torch.tensor(0)}
    write_checkpoint(tmp_path, 7, wrong)
    with pytest.raises(CheckpointError, match=r"tensor w is torch.float32 \[3, 2\]"):
        keeper(tmp_path)


def test_a_wrong_model_is_never_adopted_and_nothing_is_overwritten(tmp_path: Path) -> None:
    """A member serves a model of another shape (or dtype): adopt refuses it, the current model
    and the checkpoints on disk stay as they were."""
    k = keeper(tmp_path)
    good = {"w": torch.ones(2, 3), "b": torch.ones(3), "steps": torch.tensor(1)}
    k.adopt(1, good, model_hash(good))
    bad = {"w": torch.ones(2, 3, dtype=torch.float64), "b": torch.ones(3), "steps": torch.tensor(1)}
    with pytest.raises(CheckpointError, match="tensor w"):
        k.adopt(2, bad, model_hash(bad))
    assert k.round == 1 and k.hash == model_hash(good)
    ck = latest_checkpoint(tmp_path)
    assert ck is not None and ck.round_id == 1 and ck.model_hash == model_hash(good)
    assert keeper(tmp_path).hash == model_hash(good)  # a restart resumes from round 1


def test_steward_keys_survive_a_restart_and_an_interrupted_save_is_ignored(
    tmp_path: Path,
) -> None:
    """Steward restarted after posting its key: it reads back the same keys. A save that died
    before its index was written is not taken for a key."""
    keys = StewardKeys(3, 1, b"context", b"\x05" * 32, {"0xA": b"sealed-a", "0xB": b"sealed-b"})
    keys.save(tmp_path)
    assert StewardKeys.load(tmp_path, 3, 1) == keys
    assert StewardKeys.load(tmp_path, 3, 0) is None  # another attempt's key is another key
    (tmp_path / "round000003-attempt1" / "index.json").unlink()
    assert StewardKeys.load(tmp_path, 3, 1) is None
    StewardKeys(5, 0, b"c", b"\x06" * 32, {}).save(tmp_path)
    prune_steward_keys(tmp_path, 5)
    assert [p.name for p in tmp_path.iterdir()] == ["round000005-attempt0"]


def test_two_prunes_at_once_do_not_stop_the_peer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault (found by a long localnet run): adopting a model and catching up pruned the old
    round keys in two worker threads at once; the slower one found a folder already gone and
    its FileNotFoundError stopped the peer. Here the other prune wins each folder just before
    this one removes it."""
    for rid in (1, 2):
        StewardKeys(rid, 0, b"c", b"\x06" * 32, {"0xA": b"s"}).save(tmp_path)
    real_rmdir = Path.rmdir

    def other_prune_was_first(self: Path) -> None:
        real_rmdir(self)  # the other thread removes it...
        real_rmdir(self)  # ...before this one does: FileNotFoundError

    monkeypatch.setattr(Path, "rmdir", other_prune_was_first)
    prune_steward_keys(tmp_path, 3)
    assert list(tmp_path.iterdir()) == []


def test_a_new_attempt_forgets_the_old_attempts_key_and_push_but_not_the_training() -> None:
    """Merge peer replaced: the key and the update of attempt 0 are void; the trained delta is
    reused (same base model)."""
    work = RoundWork(4, b"\x00" * 32, delta={"w": torch.zeros(1)}, samples=10, pushed=True)
    work.keys_delivered = True
    work.at_attempt(1)
    assert work.attempt == 1 and not work.pushed and not work.keys_delivered
    assert work.delta is not None and work.samples == 10


FEDADAM = ServerOptimizer("fedadam", lr=0.05)


def adam_keeper(directory: Path) -> ModelKeeper:
    initial_hash = model_hash(swarm_state(INITIAL, FEDADAM.initial_state(INITIAL)))
    return ModelKeeper(directory, INITIAL, initial_hash, {"task": "t"}, FEDADAM)


def _decrypted_sum(
    base: dict[str, torch.Tensor], seed: int
) -> tuple[npt.NDArray[np.float64], crypto.Layout]:
    gen = torch.Generator().manual_seed(seed)
    updates = []
    for n in (11, 29):
        new = {
            k: v + 0.1 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
            for k, v in base.items()
        }
        updates.append((model_delta(new, base), n))
    layout = crypto.layout_of(updates[0][0])
    summed = weighted_sum(updates)
    flat = torch.cat([summed[t.name].reshape(-1) for t in layout.tensors]).numpy()
    return flat.astype(np.float64), layout


def test_key_holders_with_fedadam_agree_bit_for_bit_and_resume_the_optimizer_state(
    tmp_path: Path,
) -> None:
    """Fault: the server optimizer's state lost on a restart (or kept outside the hash): a
    restarted key holder would step from m = 0, v = tau^2 and acknowledge another model than
    the others. Two keepers apply the same decrypted sums with FedAdam for two rounds: the same
    swarm-state bytes; restarted from their checkpoints, both hold the model and the optimizer
    state they had, and the third round agrees with a keeper that never stopped."""
    keepers = [adam_keeper(tmp_path / "a"), adam_keeper(tmp_path / "b")]
    assert keepers[0].server and set(keepers[0].server) == {"m/w", "m/b", "v/w", "v/b"}
    for round_id in (1, 2):
        summed, layout = _decrypted_sum(keepers[0].state, round_id)
        fulls = [
            apply_decrypted_sum(k.state, summed, layout, 40, optimizer=k.optimizer, server=k.server)
            for k in keepers
        ]
        assert model_bytes(fulls[0]) == model_bytes(fulls[1])
        for keeper, full in zip(keepers, fulls, strict=True):
            keeper.adopt(round_id, full, model_hash(full))
    assert keepers[0].hash == keepers[1].hash == model_hash(keepers[0].swarm_state)
    assert float(keepers[0].server["v/w"].max()) > FEDADAM.tau**2  # the state moved
    restarted = adam_keeper(tmp_path / "a")
    assert restarted.round == 2 and restarted.hash == keepers[0].hash
    assert model_bytes(restarted.state) == model_bytes(keepers[0].state)
    assert model_bytes(restarted.server) == model_bytes(keepers[0].server)
    assert list(restarted.state) == list(INITIAL)  # the model alone: load_state_dict takes it
    summed, layout = _decrypted_sum(restarted.state, 3)
    after_restart = apply_decrypted_sum(
        restarted.state, summed, layout, 40, optimizer=FEDADAM, server=restarted.server
    )
    never_stopped = apply_decrypted_sum(
        keepers[1].state, summed, layout, 40, optimizer=FEDADAM, server=keepers[1].server
    )
    assert model_bytes(after_restart) == model_bytes(never_stopped)


def test_the_consortium_hash_covers_the_server_optimizer(tmp_path: Path) -> None:
    """Fault: a peer running FedAdam in a FedAvg consortium (or the reverse) steps differently
    from everyone. The initial hash is that of the swarm state, so the keeper refuses to start;
    a FedAvg checkpoint resumed under FedAdam is refused naming the missing optimizer state."""
    with pytest.raises(ConfigError, match="consortium recorded"):
        ModelKeeper(tmp_path, INITIAL, model_hash(INITIAL), {}, FEDADAM)
    keeper(tmp_path).adopt(1, INITIAL, model_hash(INITIAL))
    with pytest.raises(CheckpointError, match="@server/m/b"):
        adam_keeper(tmp_path)
