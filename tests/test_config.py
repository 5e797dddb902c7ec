"""A peer's TOML config: parsed once, paths relative to the file, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.config import PeerConfig, TrainingOptions
from swarm.errors import ConfigError

MINIMAL = """
[identity]
keystore = "keys/hospital.json"
[ledger]
chain_url = "http://127.0.0.1:8545"
contract = "0x0000000000000000000000000000000000000001"
[task]
site = "Cleveland"
"""


def test_minimal_config_takes_defaults_and_resolves_paths(tmp_path: Path) -> None:
    path = tmp_path / "peer.toml"
    path.write_text(MINIMAL)
    config = PeerConfig.load(path)
    assert config.keystore == tmp_path / "keys" / "hospital.json"
    assert config.data_dir == tmp_path / "data"
    assert config.task == "heart-disease-uci/logreg" and config.rounds == 0
    assert config.training == TrainingOptions()  # the task's tuned defaults


def test_written_config_reads_back_identically(tmp_path: Path) -> None:
    config = PeerConfig(
        keystore=tmp_path / "k.json",
        password_file=tmp_path / "pw",
        chain_url="http://10.0.0.1:8545",
        contract="0xabc",
        site="Hungary",
        data_dir=tmp_path / "d",
        listen=("/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/tcp/4002"),
        training=TrainingOptions(epochs=2, fedprox_mu=0.5),
        rounds=7,
    )
    path = tmp_path / "peer.toml"
    path.write_text(config.to_toml())
    assert PeerConfig.load(path) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[identity\n", "not valid TOML"),
        (MINIMAL.replace('site = "Cleveland"', ""), "needs 'site'"),
        (MINIMAL + "[training]\nepochz = 3\n", "[training]"),
        (MINIMAL + "[p2p]\nlisten = 4001\n", "listen must be a list"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "peer.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        PeerConfig.load(path)


def test_missing_config_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="swarm peer init"):
        PeerConfig.load(tmp_path / "nope.toml")
