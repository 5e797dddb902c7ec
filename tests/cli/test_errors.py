"""Bad input gives one clear line on stderr and a non-zero exit, never a traceback.

None of these needs a chain: each mistake is caught before anything is connected to.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.app import run

CONTRACT = "0x00000000000000000000000000000000000000C1"
CONFIG = """
[identity]
keystore = "key.json"
[ledger]
chain_url = "http://127.0.0.1:9"
contract = "{contract}"
[task]
name = "{task}"
site = "{site}"
{extra}
"""


def swarm(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def write_config(
    tmp_path: Path,
    *,
    contract: str = CONTRACT,
    task: str = "heart-disease-uci/logreg",
    site: str = "Cleveland",
    extra: str = "",
) -> Path:
    path = tmp_path / "peer.toml"
    path.write_text(CONFIG.format(contract=contract, task=task, site=site, extra=extra))
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "rounds"],
        ["audit", "verify"],
        ["audit", "report", "--json"],
        ["model", "export", "--checkpoint", "x.ckpt"],
    ],
)
@pytest.mark.parametrize("address", ["0x1234", "0x" + "g" * 40, "1234"])
def test_bad_contract_option_is_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    address: str,
) -> None:
    """``--contract 0x1234`` (the fault: ValueError from eth_utils, a 40-line traceback):
    one line naming the value, exit code 2, before any connection."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.ckpt").write_bytes(b"")
    code, _, err = swarm(capsys, *argv, "--chain-url", "http://127.0.0.1:9", "--contract", address)
    line = one_line(err)
    assert code == 2 and f"'{address}' is not an Ethereum address" in line


def test_address_with_a_bad_checksum_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """A mixed-case address whose checksum is wrong (a typo in one digit): refused."""
    bad = "0x5Aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55's 0x5aAe… with two flipped
    code, _, err = swarm(capsys, "audit", "rounds", "--chain-url", "http://x:1", "--contract", bad)
    assert code == 2 and "checksum" in one_line(err)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (dict(contract="0x1234"), "config: [ledger] contract '0x1234' is not an Ethereum address"),
        (dict(task="no-such-task"), "config: [task] name: unknown task 'no-such-task'"),
        (dict(site="Atlantis"), "config: [task] site 'Atlantis' is not one of the task's sites"),
        (dict(extra="[training]\nepochs = 0"), "config: [training] epochs must be at least 1"),
        (dict(extra="[training]\nlr = -0.1"), "config: [training] lr must be above 0"),
        (dict(extra="[training]\nlr = 'fast'"), "config: [training] lr must be a number"),
        (dict(extra="[training]\nbatch_size = true"), "batch_size must be a whole number"),
        (dict(extra="[training]\nepochz = 3"), "config: [training] has unknown key(s) epochz"),
        (dict(extra="[training]\nlr = 10.0\nfedprox_mu = 1.0"), "makes local training diverge"),
        (dict(extra="[peer]\npoll_s = -1"), "config: [peer] poll_s must be above 0"),
        (dict(extra="[peer]\npoll_s = 0"), "config: [peer] poll_s must be above 0"),
        (dict(extra="[peer]\nreconcile_s = 0"), "config: [peer] reconcile_s must be above 0"),
        (dict(extra="[peer]\nrounds = -2"), "config: [peer] rounds must be at least 0"),
        (dict(extra="[peer]\nkeep_checkpoints = -1"), "keep_checkpoints must be at least 0"),
        (dict(extra="[peer]\ncrypto_workers = -1"), "crypto_workers must be at least 0"),
        (dict(extra="[peer]\ncrypto_workers = 'all'"), "crypto_workers must be a whole number"),
        (dict(extra="[peer]\nreport_metrics = 'yes'"), "report_metrics must be true or false"),
        (dict(extra="[task]\nseed = 1.5"), None),  # a TOML error: [task] twice
    ],
)
def test_bad_peer_config_is_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    config: dict[str, str],
    message: str | None,
) -> None:
    """A peer config with a bad address, an unknown task or site, ``epochs = 0``, a negative
    ``lr`` or ``poll_s``, a wrong type (the faults: tracebacks from eth_utils, the task
    registry, TrainConfig, or a peer that polls in a busy loop): `peer run` says what is wrong
    in one line, ``[section]`` names included (the fault: rich took them for markup and
    dropped them), and exits with 2 before it asks for a password or connects."""
    path = write_config(tmp_path, **config)
    code, _, err = swarm(capsys, "peer", "run", "--config", str(path))
    line = one_line(err)
    assert code == 2
    if message is not None:
        assert message in line


def test_peer_init_with_an_unknown_task_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`peer init --task nope` (the fault: ValueError from the task registry, a traceback)."""
    key = tmp_path / "key.json"
    key.write_text("{}")
    code, _, err = swarm(
        capsys, "peer", "init", "-k", str(key), "--site", "Cleveland", "--task", "nope",
        "--chain-url", "http://127.0.0.1:9", "--contract", CONTRACT,
        "--out", str(tmp_path / "p.toml"),
    )  # fmt: skip
    assert code == 2 and "unknown task 'nope'" in one_line(err)


def test_error_text_is_not_markup(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The error formatter prints the message as it is (the fault: ``[training]`` and any
    ``[...]`` vanished as rich markup, ``[/]`` raised MarkupError while printing an error)."""
    path = tmp_path / "peer.toml"
    path.write_text("[identity]\nkeystore = 1\n[ledger\n")
    code, _, err = swarm(capsys, "peer", "status", "--config", str(path))
    assert code == 2 and "not valid TOML" in one_line(err)
    path.write_text("[identity]\n[ledger]\nchain_url = 'x'\n[task]\nsite = '[/]'\n")
    code, _, err = swarm(capsys, "peer", "run", "--config", str(path))
    assert code == 2 and "config: [identity] needs 'keystore'" in one_line(err)


def test_unknown_command_and_option_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """Typer's own usage errors still print as before, exit 2."""
    code, _, err = swarm(capsys, "peer", "run", "--log-format", "xml")
    assert code == 2 and "xml" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["localnet", "up", "--peers", "2"], ["demo", "-n", "1"]])
def test_a_local_consortium_of_fewer_than_three_hospitals_is_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """A typo in a command: two hospitals would each read the other's update, and the contract
    would refuse minPeers 2 anyway; refused before anvil starts, exit 2, saying why."""
    code, _, err = swarm(capsys, *argv)
    assert code == 2 and "at least 3 hospitals" in err and "Traceback" not in err


def test_an_error_of_the_running_peer_is_one_error_not_a_group() -> None:
    """A SwarmError raised while the peer runs under trio (e.g. its port is taken: libp2p's
    listen fails inside the nursery) comes out of `peer run` as that error (the fault: an
    ExceptionGroup, printed as a traceback); anything else still propagates as it is."""
    from types import SimpleNamespace

    from cli.peer import _run_peer
    from swarm.errors import PortInUseError

    async def port_taken() -> None:
        raise PortInUseError("cannot listen on /ip4/0.0.0.0/tcp/4001: port 4001 is in use")

    with pytest.raises(PortInUseError, match="port 4001"):
        _run_peer(SimpleNamespace(run=port_taken))  # type: ignore[arg-type]

    async def bug() -> None:
        raise ZeroDivisionError

    with pytest.raises(BaseExceptionGroup):
        _run_peer(SimpleNamespace(run=bug))  # type: ignore[arg-type]
