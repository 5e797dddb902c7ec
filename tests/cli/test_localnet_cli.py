"""`swarm localnet up`, `swarm demo` and `swarm admin deploy` with a task file: what the ledger
records is the file's, and a bad task file or a hospital's bad data is one line before anything
starts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.app import run
from localnet import network
from swarm.ledger import LedgerClient, RpcChain
from swarm.training.taskfile import TaskFile, fingerprint


def swarm(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def heart_data(*replace: Path) -> list[str]:
    """``--data`` options for the heart study's hospitals, the last ones replaced."""
    paths = [*network.HEART_DATA[: 4 - len(replace)], *replace]
    return [x for p in paths for x in ("--data", str(p))]


@pytest.mark.parametrize("command", [["localnet", "up"], ["demo"]])
def test_a_bad_task_file_or_missing_data_is_one_line_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """The faults: a task file that is not there, one that is not valid, and a --data path
    with a typo. Each is one line, exit 2, and no chain is started (no localnet.json)."""
    where = ["--dir", str(tmp_path / "net")]
    code, _, err = swarm(
        capsys, *command, "--task-file", str(tmp_path / "nope.toml"), *heart_data(), *where
    )
    assert code == 2 and "nope.toml: no such task file" in one_line(err)
    bad = tmp_path / "task.toml"
    bad.write_text('[task]\nname = "Heart"\nkind = "csv"\n')
    code, _, err = swarm(capsys, *command, "--task-file", str(bad), *heart_data(), *where)
    assert code == 2 and "task.toml" in one_line(err) and "name" in err
    typo = tmp_path / "va-longbeach.csv"
    code, _, err = swarm(capsys, *command, *heart_data(typo), *where)
    assert code == 2 and f"{typo}: no such file or folder" in one_line(err)
    code, _, err = swarm(capsys, *command, *heart_data()[:4], *where)
    assert code == 2 and "at least 3 hospitals" in one_line(err)
    assert not (tmp_path / "net" / network.CONFIG_NAME).exists()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[network.LocalnetConfig]:
    workdir = tmp_path_factory.mktemp("net")
    config = network.up(workdir, peers=0)
    try:
        yield config
    finally:
        network.down(workdir)


@pytest.mark.anvil
def test_deploy_with_a_task_file_records_its_task_id_and_initial_model(
    chain: network.LocalnetConfig,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`swarm admin deploy --task-file F`: the ledger's task id is the file's hash and its
    initial model the one the file builds (what every peer recomputes and checks). The fault:
    --task-file together with --task, which would name two tasks."""
    monkeypatch.setenv("SWARM_PASSWORD", chain.password())
    key = ["-k", chain.admin_keystore, "--chain-url", chain.chain_url]
    task_file = str(network.HEART_TASK_FILE)
    code, out, err = swarm(capsys, "admin", "deploy", *key, "--task-file", task_file, "--json")
    assert code == 0, err
    deployed = json.loads(out)
    spec = TaskFile.load(network.HEART_TASK_FILE)
    fp = fingerprint(spec)
    assert deployed["task_id"] == "0x" + spec.task_id.hex()
    assert deployed["initial_model_hash"] == "0x" + fp.initial_model_hash.hex()
    assert deployed["task"] == spec.name and deployed["task_file"] == str(spec.path)
    params = LedgerClient(RpcChain(chain.chain_url), deployed["contract"]).params()
    assert params.task_id == spec.task_id
    assert params.initial_model_hash == fp.initial_model_hash
    code, _, err = swarm(
        capsys, "admin", "deploy", *key, "--task-file", task_file, "--task", "heart-disease-uci/mlp"
    )
    assert code == 2 and "not both" in one_line(err)


@pytest.mark.anvil
def test_set_params_with_a_task_file_switches_the_consortium_to_it(
    chain: network.LocalnetConfig,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """`swarm admin set-params --task-file F`: the ledger's task id and initial model become the
    file's (one changed value in the file is another task). The fault: --task-file with --seed."""
    monkeypatch.setenv("SWARM_PASSWORD", chain.password())
    key = ["-k", chain.admin_keystore, "--chain-url", chain.chain_url]
    code, out, err = swarm(capsys, "admin", "deploy", *key, "--json")
    assert code == 0, err
    contract = json.loads(out)["contract"]
    changed = tmp_path / "task.toml"
    changed.write_text(network.HEART_TASK_FILE.read_text().replace("seed = 0", "seed = 1", 1))
    spec = TaskFile.load(changed)
    where = [*key, "--contract", contract]
    code, out, err = swarm(capsys, "admin", "set-params", *where, "--task-file", str(changed))
    assert code == 0, err
    params = LedgerClient(RpcChain(chain.chain_url), contract).params()
    assert params.task_id == spec.task_id
    assert params.initial_model_hash == fingerprint(spec).initial_model_hash
    code, _, err = swarm(
        capsys, "admin", "set-params", *where, "--task-file", str(changed), "--seed", "2"
    )
    assert code == 2 and "not both" in one_line(err)
