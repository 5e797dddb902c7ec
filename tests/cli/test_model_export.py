"""`swarm model export`: a finalized model as safetensors, checked against the ledger.

The ledger is the history driven on the embedded chain (tests/audit/driven.py), whose finalized
models are real state dicts; the command's ``ledger_client`` is pointed at that chain.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import cli.model
from cli.app import run
from swarm.ledger import LedgerClient
from swarm.training.checkpoint import model_hash, write_checkpoint
from tests.audit.driven import driven

UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture
def chain(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    d = driven()

    def embedded(chain_url: str | None, contract: str | None) -> LedgerClient:
        assert chain_url == "embedded" and contract == d.ledger.address
        return d.ledger

    real = cli.model.ledger_client
    monkeypatch.setattr(
        cli.model,
        "ledger_client",
        lambda url, address: embedded(url, address) if url == "embedded" else real(url, address),
    )
    return ["--chain-url", "embedded", "--contract", d.ledger.address]


def swarm(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())


def test_export_a_checkpoint_the_ledger_finalized(
    chain: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The newest checkpoint of a folder, written as safetensors: the same tensors, and in the
    metadata the model's ledger hash (recomputable from the tensors), round and task, checked
    against the ledger."""
    d = driven()
    for rid in (1, 2, 4):
        write_checkpoint(tmp_path / "ck", rid, d.models[rid], {"task": "heart-disease-uci/mlp"})
    out = tmp_path / "model.safetensors"
    code, stdout, err = swarm(
        capsys, "model", "export", "--checkpoint", str(tmp_path / "ck"), "--out", str(out), *chain
    )
    assert code == 0, err
    tensors = load_file(str(out))
    assert set(tensors) == set(d.models[4])
    assert all(torch.equal(tensors[k], d.models[4][k]) for k in tensors)
    meta = metadata(out)
    assert meta["model_hash"] == "0x" + model_hash(d.models[4]).hex()
    assert meta["model_hash"] == "0x" + model_hash(tensors).hex()
    assert meta["round"] == "4" and meta["task"] == "heart-disease-uci/mlp"
    assert meta["format"] == "swarm-model/1"
    assert meta["ledger_check"].startswith("checked against the ledger")
    assert "checked against the ledger" in stdout
    # the file is not a pickle: nothing in it runs on load
    assert out.read_bytes()[8:9] == b"{"


def test_a_checkpoint_the_ledger_did_not_finalize_is_refused(
    chain: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint labelled round 4 whose weights are another model (the fault: exporting a
    tampered or stale model as if the consortium had agreed on it): refused in one line,
    nothing written. So is one of a round that lapsed."""
    d = driven()
    forged = {k: v + 1 for k, v in d.models[4].items()}
    path = write_checkpoint(tmp_path, 4, forged)
    out = tmp_path / "model.safetensors"
    code, _, err = swarm(
        capsys, "model", "export", "--checkpoint", str(path), "--out", str(out), *chain
    )
    assert code == 1 and not out.exists()
    assert "is not the model the ledger finalized in round 4" in err
    assert len(err.strip().splitlines()) == 1
    lapsed = write_checkpoint(tmp_path, 3, d.models[4])
    code, _, err = swarm(
        capsys, "model", "export", "--checkpoint", str(lapsed), "--out", str(out), *chain
    )
    assert code == 1 and "round 3 has no finalized model" in err and not out.exists()


def test_without_a_reachable_chain_it_says_it_could_not_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No chain, or a chain that is down (the fault would be a silent "verified", or a
    refusal to export a model one has): the file is written, says it was not checked, and so
    does its metadata."""
    monkeypatch.chdir(tmp_path)  # no local network to fall back on
    for var in ("SWARM_CHAIN_URL", "SWARM_CONTRACT"):
        monkeypatch.delenv(var, raising=False)
    d = driven()
    path = write_checkpoint(tmp_path, 2, d.models[2])
    out = tmp_path / "m.safetensors"
    code, stdout, err = swarm(capsys, "model", "export", "--checkpoint", str(path), "-o", str(out))
    assert code == 0, err
    assert "not checked against the ledger: no chain given" in stdout
    assert metadata(out)["ledger_check"].startswith("not checked")
    code, stdout, err = swarm(
        capsys, "model", "export", "--checkpoint", str(path), "-o", str(out), "--force",
        "--chain-url", UNREACHABLE, "--contract", d.ledger.address,
    )  # fmt: skip
    assert code == 0, err
    assert "not checked against the ledger: cannot reach the chain" in stdout
    assert metadata(out)["round"] == "2"


def test_export_from_a_peer_config(
    chain: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--config peer.toml``: the newest checkpoint of the peer's data directory, the task of
    its config; an existing file is not overwritten without --force; a corrupt checkpoint or
    an empty folder is one line."""
    d = driven()
    data = tmp_path / "data"
    write_checkpoint(data / "checkpoints", 2, d.models[2])
    config = tmp_path / "peer.toml"
    config.write_text(
        '[identity]\nkeystore = "k.json"\n[ledger]\nchain_url = "embedded"\n'
        f'contract = "{d.ledger.address}"\n[task]\nname = "heart-disease-uci/logreg"\n'
        'site = "Cleveland"\n[peer]\ndata_dir = "data"\n'
    )
    out = tmp_path / "m.safetensors"
    code, _, err = swarm(capsys, "model", "export", "--config", str(config), "-o", str(out))
    assert code == 0, err
    meta = metadata(out)
    assert meta["round"] == "2" and meta["task"] == "heart-disease-uci/logreg"
    assert meta["ledger_check"].startswith("checked against the ledger")
    code, _, err = swarm(capsys, "model", "export", "--config", str(config), "-o", str(out))
    assert code == 2 and "exists" in err
    (data / "checkpoints" / "round-000002.ckpt").write_bytes(b"SWARMCK1garbage")
    code, _, err = swarm(capsys, "model", "export", "-c", str(config), "-o", str(out), "--force")
    assert code == 2 and "no checkpoint in it" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    code, _, err = swarm(
        capsys, "model", "export", "--checkpoint", str(bad), "-o", str(out), "--force"
    )
    assert code == 1 and "not a swarm checkpoint" in err


def test_the_exported_hash_is_the_ledger_hash_not_the_file_hash(
    chain: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The metadata's hash is the one hospitals acknowledged (sha256 of swarm's canonical
    encoding), which anyone can recompute from the tensors; not a hash of the file."""
    d = driven()
    path = write_checkpoint(tmp_path, 1, d.models[1])
    out = tmp_path / "m.safetensors"
    assert (
        swarm(capsys, "model", "export", "--checkpoint", str(path), "-o", str(out), *chain)[0] == 0
    )
    file_hash = "0x" + hashlib.sha256(out.read_bytes()).hexdigest()
    assert metadata(out)["model_hash"] != file_hash
    assert d.ledger.round(1).final_model.hex() == metadata(out)["model_hash"][2:]
