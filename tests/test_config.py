"""A peer's TOML config: parsed once, paths relative to the file, clear errors."""

from __future__ import annotations

import dataclasses
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
    assert config.crypto_workers == 0  # auto: by the model's size and the host's cores


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
        crypto_workers=6,
    )
    path = tmp_path / "peer.toml"
    path.write_text(config.to_toml())
    assert PeerConfig.load(path) == config
    for bulk_port in (4002, None):
        other = dataclasses.replace(config, bulk_port=bulk_port)
        path.write_text(other.to_toml())
        assert PeerConfig.load(path) == other
        assert PeerConfig.load(path).p2p_config().bulk_port == bulk_port


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[identity\n", "not valid TOML"),
        (MINIMAL.replace('site = "Cleveland"', ""), "needs 'site'"),
        (MINIMAL + "[training]\nepochz = 3\n", "[training]"),
        (MINIMAL + "[p2p]\nlisten = 4001\n", "listen must be a list"),
        (MINIMAL + "[p2p]\nbulk_port = 70000\n", "bulk_port must be a TCP port"),
        (MINIMAL + '[p2p]\nbulk_port = "of"\n', "bulk_port must be a TCP port"),
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


TASK_FILE_CONFIG = """
[identity]
keystore = "key.json"
[ledger]
chain_url = "http://127.0.0.1:8545"
contract = "0x0000000000000000000000000000000000000001"
[task]
file = "task.toml"
data = "site-data/cleveland.csv"
[training]
device = "auto"
optimizer = "adamw"
"""


def test_task_file_config_points_at_the_sites_own_data(tmp_path: Path) -> None:
    """A hospital's config names the consortium's task file and its own data, relative to the
    config; the site label defaults to the data's name; the device is the hospital's choice."""
    path = tmp_path / "peer.toml"
    path.write_text(TASK_FILE_CONFIG)
    config = PeerConfig.load(path)
    assert config.task_file == tmp_path / "task.toml"
    assert config.data == tmp_path / "site-data" / "cleveland.csv"
    assert config.site == "cleveland"
    assert config.training == TrainingOptions(device="auto", optimizer="adamw")
    path.write_text(config.to_toml())
    assert PeerConfig.load(path) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (TASK_FILE_CONFIG.replace('data = "site-data/cleveland.csv"\n', ""), "needs 'data'"),
        (TASK_FILE_CONFIG.replace("[task]\n", '[task]\nname = "x"\n'), "exclude each other"),
        (TASK_FILE_CONFIG.replace("[task]\n", "[task]\ndatta = 1\n"), "unknown key(s) datta"),
        (TASK_FILE_CONFIG.replace('"auto"', '"gpu"'), "device must be one of cpu, cuda, auto"),
        (TASK_FILE_CONFIG.replace('"adamw"', '"adam"'), "optimizer must be one of sgd, adamw"),
    ],
)
def test_bad_task_section_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    """Typos in [task] and [training] (a config typo): a ConfigError naming the key."""
    path = tmp_path / "peer.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PeerConfig.load(path)
