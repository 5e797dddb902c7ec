"""Setting a consortium up from the command line (anvil): deploy records the task's true id and
initial model, parameters are checked before anything is sent, `peer init` checks the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.app import run
from localnet import network
from swarm.identity import DEV_SCRYPT_N, Identity, save_keystore
from swarm.training.task_id import task_fingerprint

pytestmark = pytest.mark.anvil


def swarm(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[network.LocalnetConfig]:
    workdir = tmp_path_factory.mktemp("net")
    config = network.up(workdir, peers=2)
    try:
        yield config
    finally:
        network.down(workdir)


@pytest.fixture(autouse=True)
def _password(net: network.LocalnetConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_PASSWORD", net.password())


def _params(capsys: pytest.CaptureFixture[str], where: list[str]) -> dict[str, object]:
    code, out, err = swarm(capsys, "admin", "params", "--json", *where)
    assert code == 0, err
    return dict(json.loads(out))


def test_deploy_records_the_task_s_true_id_and_initial_model(
    net: network.LocalnetConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--chain-url", net.chain_url]
    code, out, err = swarm(
        capsys, "admin", "deploy", "-k", net.admin_keystore, *url,
        "--task", "heart-disease-uci/mlp", "--seed", "1", "--json",
    )  # fmt: skip
    assert code == 0, err
    contract = json.loads(out)["contract"]
    fp = task_fingerprint("heart-disease-uci/mlp", 1)
    params = _params(capsys, [*url, "--contract", contract])
    assert params["task_id"] == "0x" + fp.task_id.hex()
    assert params["initial_model_hash"] == "0x" + fp.initial_model_hash.hex()
    assert params["min_peers"] == 3
    # The documented default deployment: the default task, seed 0, minPeers 3.
    code, out, err = swarm(capsys, "admin", "deploy", "-k", net.admin_keystore, *url, "--json")
    assert code == 0, err
    default = _params(capsys, [*url, "--contract", json.loads(out)["contract"]])
    fp0 = task_fingerprint("heart-disease-uci/logreg", 0)
    assert default["task_id"] == "0x" + fp0.task_id.hex()
    assert default["initial_model_hash"] == "0x" + fp0.initial_model_hash.hex()
    assert default["min_peers"] == 3
    # An initial-model hash that is not the task's: refused before deploying.
    code, _, err = swarm(
        capsys, "admin", "deploy", "-k", net.admin_keystore, *url, "--initial-model-hash",
        "00" * 32,
    )  # fmt: skip
    assert code == 2 and "is not the task's initial model" in one_line(err)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--ckks-params-id", "99", "--ckks-params-id 99 is not a known CKKS parameter set"),
        ("--commit-window", "-5", "--commit-window -5 is out of range"),
        ("--join-window", "86401", "--join-window 86401 is out of range"),
        ("--min-peers", "2", "--min-peers 2 is too low: at least 3"),
    ],
)
def test_bad_parameters_are_one_line_and_change_nothing(
    net: network.LocalnetConfig,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    message: str,
) -> None:
    where = ["--chain-url", net.chain_url, "--contract", net.contract]
    before = _params(capsys, where)
    code, out, err = swarm(
        capsys, "admin", "set-params", "-k", net.admin_keystore, *where, option, value
    )
    assert code == 2 and message in one_line(err) and out == ""
    assert _params(capsys, where) == before


def test_set_params_prints_what_changed(
    net: network.LocalnetConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--chain-url", net.chain_url, "--contract", net.contract]
    code, out, _ = swarm(capsys, "admin", "params", *where)
    assert code == 0 and "min-peers" in out and "commit-window" in out
    old = _params(capsys, where)["commit_window"]
    code, out, err = swarm(
        capsys, "admin", "set-params", "-k", net.admin_keystore, *where,
        "--commit-window", "300", "--min-peers", "3",
    )  # fmt: skip
    assert code == 0, err
    assert out.strip().splitlines() == [f"commit-window: {old} s -> 300 s"]
    assert _params(capsys, where)["commit_window"] == 300
    code, out, _ = swarm(
        capsys, "admin", "set-params", "-k", net.admin_keystore, *where, "--commit-window", "300"
    )
    assert code == 0 and "nothing to change" in out


def test_peer_init_checks_the_ledger_first(
    net: network.LocalnetConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "peer.toml"
    member = net.peers[0]

    def init(keystore: str, *extra: str) -> tuple[int, str, str]:
        return swarm(
            capsys, "peer", "init", "-k", keystore, "--site", "Cleveland", "--out", str(out),
            "--data-dir", str(tmp_path / "data"), *extra,
        )  # fmt: skip

    where = ["--chain-url", net.chain_url, "--contract", net.contract]
    code, _, err = init(member.keystore, "--chain-url", "http://127.0.0.1:9", "--contract",
                        net.contract)  # fmt: skip
    assert code == 1 and "cannot reach the chain at http://127.0.0.1:9" in one_line(err)
    code, _, err = init(member.keystore, "--chain-url", net.chain_url, "--contract",
                        "0x00000000000000000000000000000000000000C1")  # fmt: skip
    assert code == 1 and "no contract at 0x" in one_line(err)
    stranger = tmp_path / "stranger.json"
    ident = Identity.generate()
    save_keystore(ident, stranger, net.password(), scrypt_n=DEV_SCRYPT_N)
    code, _, err = init(str(stranger), *where)
    assert code == 2 and f"{ident.address} is not an active member" in one_line(err)
    code, _, err = init(member.keystore, *where, "--task", "heart-disease-uci/mlp")
    line = one_line(err)
    assert code == 2 and "task id" in line and "ledger records task id" in line
    code, _, err = init(member.keystore, *where, "--seed", "1")
    assert code == 2 and "(seed 1)" in one_line(err)
    assert not out.exists()
    code, _, err = init(member.keystore, *where)
    assert code == 0, err
    assert 'name = "heart-disease-uci/logreg"' in out.read_text()


def test_add_member_funds_the_hospital_on_a_dev_chain(
    net: network.LocalnetConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from swarm.ledger import RpcChain

    where = ["--chain-url", net.chain_url, "--contract", net.contract]
    code, card, _ = swarm(capsys, "keys", "new", "-k", str(tmp_path / "h.json"), "--json")
    address = json.loads(card)["address"]
    (tmp_path / "card.json").write_text(card)
    add = [
        "admin",
        "add-member",
        "-k",
        net.admin_keystore,
        *where,
        "--card",
        str(tmp_path / "card.json"),
    ]
    code, _, err = swarm(capsys, *add, "--name", "Funded", "--fund", "-1")
    assert code == 2 and "--fund must be a positive amount" in one_line(err)
    code, out, err = swarm(capsys, *add, "--name", "Funded", "--fund", "2.5")
    assert code == 0, err
    assert "sent 2.5 ETH to" in out
    assert RpcChain(net.chain_url).w3.eth.get_balance(address) == 25 * 10**17
