"""Windows that follow the model (issue 14), from the admin's command line on anvil: `swarm admin
deploy` and `set-params` derive the windows an admin leaves unset from the task's parameter
count, and refuse, in one line, a window too short for the model (swarm.sizing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.app import run
from localnet import network
from swarm.sizing import MODEL_ONLY, Throughput, size_round

pytestmark = pytest.mark.anvil

HEART = Path(__file__).resolve().parents[2] / "examples" / "heart" / "task.toml"
#: the heart study's features through an MLP this wide: 11,174,001 parameters, a ResNet-18's
#: size, and a model that builds in a moment (ResNet-18 takes seconds)
HIDDEN = 302_000
BIG = 11_174_001


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


@pytest.fixture(scope="module")
def big_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The heart task file with an 11.2M-parameter MLP instead of logistic regression."""
    text = HEART.read_text().replace(
        'architecture = "logreg"', f'architecture = "mlp"\nhidden = {HIDDEN}'
    )
    path = tmp_path_factory.mktemp("task") / "big.toml"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _password(net: network.LocalnetConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_PASSWORD", net.password())


def deploy(
    capsys: pytest.CaptureFixture[str], net: network.LocalnetConfig, *extra: str
) -> tuple[int, dict[str, object], str]:
    code, out, err = swarm(
        capsys, "admin", "deploy", "-k", net.admin_keystore, "--chain-url", net.chain_url,
        "--json", *extra,
    )  # fmt: skip
    return code, (json.loads(out) if code == 0 else {}), err


def ledger_params(
    capsys: pytest.CaptureFixture[str], net: network.LocalnetConfig, contract: str
) -> dict[str, int]:
    code, out, err = swarm(
        capsys, "admin", "params", "--json", "--chain-url", net.chain_url, "--contract", contract
    )
    assert code == 0, err
    return dict(json.loads(out))


def test_deploy_derives_the_windows_a_big_model_needs(
    net: network.LocalnetConfig, big_task: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fault: an 11.2M-parameter consortium deployed with the small-model defaults (a 120 s
    commit window its ten hospitals' 84 MB updates cannot cross), or derived windows that the
    ledger does not get."""
    code, out, err = deploy(capsys, net, "--task-file", str(big_task), "--hospitals", "10")
    assert code == 0, err
    assert out["param_count"] == BIG
    derived = size_round(BIG, 3, expected=10).windows()
    on_ledger = ledger_params(capsys, net, str(out["contract"]))
    assert on_ledger["commit_window"] == derived["commit_window"] > 120
    assert on_ledger["ack_window"] == derived["ack_window"] > 60
    assert on_ledger["key_window"] == 60  # the default is more than the model needs
    assert on_ledger["merge_window"] == 120
    assert on_ledger["join_window"] == 60  # a policy, never derived
    # each raised window is said, with its estimate (stderr under --json)
    assert f"window: commit-window {derived['commit_window']} s for 11,174,001 parameters" in err
    assert "9 updates of 84 MB into the merge peer at 10 MB/s" in err  # CKKS set 2
    # a faster link: shorter windows
    code, out, err = deploy(
        capsys, net, "--task-file", str(big_task), "--hospitals", "10", "--link-mb-s", "100"
    )
    assert code == 0, err
    fast = size_round(BIG, 3, Throughput(link_mb_s=100), expected=10).windows()
    assert fast["commit_window"] < derived["commit_window"]
    assert out["commit_window"] == max(fast["commit_window"], 120)  # never below the default
    assert out["ack_window"] == fast["ack_window"] < derived["ack_window"]
    # CKKS set 1 (4096 values per ciphertext): twice the bytes, longer windows
    code, out, err = deploy(
        capsys, net, "--task-file", str(big_task), "--hospitals", "10", "--ckks-params-id", "1"
    )
    assert code == 0, err
    set1 = size_round(BIG, 3, expected=10, params_id=1).windows()
    assert ledger_params(capsys, net, str(out["contract"]))["ckks_params_id"] == 1
    assert out["commit_window"] == set1["commit_window"] > derived["commit_window"]
    assert "9 updates of 168 MB into the merge peer at 10 MB/s" in err


def test_the_heart_consortium_keeps_its_windows(
    net: network.LocalnetConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fault: deriving windows changed the 36-parameter heart task's documented defaults, or
    refused the short windows a test network uses (tests/e2e/test_multihost.py: 10-12 s)."""
    code, out, err = deploy(capsys, net)
    assert code == 0, err
    assert "window:" not in err
    assert [out[k] for k in ("join_window", "key_window", "commit_window")] == [60, 60, 120]
    assert [out[k] for k in ("merge_window", "ack_window")] == [120, 60]
    code, out, err = deploy(
        capsys, net, "--task-file", str(HEART), "--key-window", "10", "--commit-window", "12",
        "--merge-window", "10", "--ack-window", "10",
    )  # fmt: skip
    assert code == 0, err
    assert out["commit_window"] == 12


@pytest.mark.parametrize("value", ["120", "12"])
def test_a_window_too_short_for_the_model_is_refused_in_one_line(
    net: network.LocalnetConfig,
    big_task: Path,
    capsys: pytest.CaptureFixture[str],
    value: str,
) -> None:
    """Fault: a --commit-window too short for an 11.2M-parameter model (120 s, or a typo'd 12
    for 120) deployed anyway, or refused without saying what it needs and how to go on."""
    code, _, err = deploy(
        capsys, net, "--task-file", str(big_task), "--hospitals", "10", "--commit-window", value
    )
    line = one_line(err)
    least = size_round(BIG, 3, MODEL_ONLY, expected=10).least("commit_window")
    assert code == 2
    assert (
        f"--commit-window {value} is too short for 11,174,001 parameters and 10 hospitals" in line
    )
    assert f"it needs >= {least} s" in line
    assert "9 updates of 84 MB into the merge peer at 10 MB/s ~76 s" in line
    assert line.endswith("--force-windows to deploy anyway")
    # --force-windows: deployed, with a warning
    code, out, err = deploy(
        capsys, net, "--task-file", str(big_task), "--hospitals", "10", "--commit-window", value,
        "--force-windows",
    )  # fmt: skip
    assert code == 0, err
    assert out["commit_window"] == int(value)
    assert f"warning: --commit-window {value} is too short" in err


def test_the_training_time_given_counts_in_the_least_window(
    net: network.LocalnetConfig, big_task: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fault: --train-s ignored: a commit window that holds the transfers but not the
    slowest hospital's training accepted."""
    code, _, err = deploy(capsys, net, "--task-file", str(big_task), "--commit-window", "120")
    assert code == 0, err  # 3 hospitals: two 84 MB pushes and the encryption fit in 120 s
    code, _, err = deploy(
        capsys, net, "--task-file", str(big_task), "--commit-window", "120", "--train-s", "60"
    )
    assert code == 2 and "training allowance ~60 s" in one_line(err)


def test_set_params_checks_windows_against_the_task_file(
    net: network.LocalnetConfig, big_task: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fault: set-params shrinks a big model's window below what it needs, or needs a task to
    change (the consortium's own file changes nothing but the check), or raises windows the
    admin chose when they are long enough."""
    code, out, err = deploy(capsys, net, "--task-file", str(big_task))
    assert code == 0, err
    where = ["--chain-url", net.chain_url, "--contract", str(out["contract"])]
    setp = ["admin", "set-params", "-k", net.admin_keystore, *where]
    before = ledger_params(capsys, net, str(out["contract"]))
    # 2 active members: the check counts min-peers (3)
    code, _, err = swarm(capsys, *setp, "--task-file", str(big_task), "--commit-window", "30")
    assert code == 2 and "--force-windows to set it anyway" in one_line(err)
    assert ledger_params(capsys, net, str(out["contract"])) == before
    code, stdout, err = swarm(capsys, *setp, "--task-file", str(big_task), "--commit-window", "100")
    assert code == 0, err
    assert stdout.strip().splitlines() == [f"commit-window: {before['commit_window']} s -> 100 s"]
    # without a task file the parameter count is unknown: sizing options need one
    code, _, err = swarm(capsys, *setp, "--link-mb-s", "100")
    assert code == 2 and "give the consortium's --task-file too" in one_line(err)
