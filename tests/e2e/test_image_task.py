"""An image-folder task with ResNet-18, from the CLI alone: three hospitals, each with its own
folder of generated images, train through real peer processes until a round finalizes.

This is the issue's "an image-folder task with ResNet-18 finalizes rounds on generated images":
11.2 million parameters per update through CKKS and masking, every peer ending on the model the
ledger records. Three peers (the fewest a round accepts) and one round: on CPU, each peer needs
about 1-1.7 GB and a round about a minute (the test prints what it measured).

``localnet up`` widens the windows of the steps that grow with the model from its parameter
count, the hospitals sharing the machine's cores and loopback throughput (swarm.sizing via
localnet.network.swarm_params): with a fixed 30 s commit window every ResNet-18 round lapsed,
its commit alone taking 60-70 s on a loaded 2-core machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from cli.app import run
from localnet.network import LocalnetConfig
from localnet.peers import load_pids, peer_dir
from swarm.ledger import LedgerClient, RpcChain
from swarm.merge.fedavg import fedavg, model_delta
from swarm.training.checkpoint import checkpoint_path, read_checkpoint
from swarm.training.taskfile import TaskFile, fingerprint, open_task
from tests.support.images import make_hospital

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

TASK = """\
[task]
name = "shapes/resnet18"
kind = "image-folder"
seed = 0
rounds = 2

[model]
architecture = "resnet18"

[data]
classes = ["circle", "square"]
image_size = 32
channels = 3

[training]
epochs = 1
batch_size = 4
lr = 0.01
"""
HOSPITALS = ("north", "south", "east")
FINALIZED_WITHIN_S = 1000


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB; NaN once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


@pytest.mark.timeout(1500)
def test_resnet18_image_folders_finalize_a_round_with_every_peer_agreeing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task_file = tmp_path / "task.toml"
    task_file.write_text(TASK)
    data = [make_hospital(tmp_path / "data" / name, i) for i, name in enumerate(HOSPITALS)]
    expected = fingerprint(TaskFile.load(task_file))
    assert 11_100_000 < expected.param_count < 11_200_000  # ResNet-18 with a 2-class head

    workdir = tmp_path / "ln"
    where = ["--dir", str(workdir)]
    started = time.monotonic()
    args = ["localnet", "up", "--task-file", str(task_file)]
    for folder in data:
        args += ["--data", str(folder)]
    code = run([*args, *where])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stdout + stderr
    peaks: dict[str, float] = {}
    try:
        config = LocalnetConfig.load(workdir)
        assert [p.site for p in config.peers] == list(HOSPITALS)
        ledger = LedgerClient(RpcChain(config.chain_url), config.contract)
        assert ledger.params().task_id == expected.task_id
        assert ledger.params().initial_model_hash == expected.initial_model_hash
        deadline = started + FINALIZED_WITHIN_S
        while ledger.last_finalized_round() < 1 and time.monotonic() < deadline:
            time.sleep(1)
        finalized_s = time.monotonic() - started
        assert ledger.last_finalized_round() >= 1, _logs(workdir)
        round_one = ledger.round(1)
        assert len(round_one.contributors) == 3
        # Every hospital's checkpoint of round 1 is the ledger's model, bit for bit.
        checkpoints = [
            checkpoint_path(peer_dir(workdir, p) / "data" / "checkpoints", 1) for p in config.peers
        ]
        while not all(p.exists() for p in checkpoints) and time.monotonic() < deadline + 60:
            time.sleep(1)
        for entry, path in zip(config.peers, checkpoints, strict=True):
            checkpoint = read_checkpoint(path)
            assert checkpoint.model_hash == round_one.final_model, entry.name
            params = sum(t.numel() for t in checkpoint.state_dict.values() if t.is_floating_point())
            assert params == expected.param_count
        peaks = {p.name: _peak_rss_mb(p.pid) for p in load_pids(workdir)}
    finally:
        assert run(["localnet", "down", *where]) == 0
        capsys.readouterr()
    # ... and it is the FedAvg of what the three hospitals trained (CPU training is
    # deterministic, so this process retrains each one's round 1), up to CKKS's precision.
    swarm_model = read_checkpoint(checkpoints[0]).state_dict
    plain = _plaintext_round_one(TaskFile.load(task_file), data)
    error = max(float((swarm_model[k] - v).abs().max()) for k, v in plain.items())
    assert error < 1e-4
    with capsys.disabled():
        print(
            f"\nResNet-18 image task: round 1 finalized {finalized_s:.0f} s after `localnet up`"
            f" (3 peers, {expected.param_count:,} parameters); peak RSS per peer: "
            + ", ".join(f"{name} {mb:.0f} MB" for name, mb in peaks.items())
            + f"; largest difference to plaintext FedAvg {error:.1e}"
        )


def _plaintext_round_one(spec: TaskFile, data: list[Path]) -> dict[str, torch.Tensor]:
    """Round 1 as FedAvg in the clear: each hospital trains the initial model on its folder."""
    updates = []
    for folder in data:
        task = open_task(spec, folder, folder.name)
        base = task.build_model(spec.seed).state_dict()
        model = task.build_model(spec.seed)
        site = task.load_site(folder.name, seed=spec.seed)
        samples = task.train(model, site, spec.training.for_round(1, folder.name), base)
        updates.append((model_delta(model.state_dict(), base), samples))
    return fedavg(base, updates)


def _logs(workdir: Path) -> str:
    """The tail of every peer's log, for a failure message."""
    tails = []
    for proc in load_pids(workdir):
        text = proc.log_path.read_text() if proc.log_path.exists() else "(no log)"
        tails.append(f"--- {proc.name}\n" + "\n".join(text.splitlines()[-15:]))
    return "no round finalized\n" + "\n".join(tails)
