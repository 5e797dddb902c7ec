"""A local consortium's hospitals from a task file and per-site data (localnet.network.local_task)
and the peer configs written for them: everything is checked before a chain or peer starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from localnet import network
from localnet.network import Hospital, LocalnetConfig, LocalTask, PeerEntry, assign_hospitals
from localnet.peers import write_peer_configs
from swarm.config import PeerConfig
from swarm.errors import ConfigError, SiteDataError, TaskFileError
from swarm.training.task_id import TaskFingerprint


def test_the_default_is_the_heart_task_file_with_its_four_hospitals_data() -> None:
    """No task file and no data: the heart study as a task file plus each hospital's own CSV
    (examples/heart), checked and fingerprinted like any other task file."""
    task = network.local_task()
    assert task.task_file == network.HEART_TASK_FILE
    assert [h.data for h in task.hospitals] == list(network.HEART_DATA)
    assert [h.site for h in task.hospitals] == list(network.HEART_SITES)
    assert [h.name for h in task.hospitals] == list(network.HOSPITALS)
    assert all(p.exists() for p in network.HEART_DATA)
    assert len(task.fingerprint.task_id) == 32 and len(task.fingerprint.initial_model_hash) == 32
    first_three = network.local_task(peers=3)
    assert [h.site for h in first_three.hospitals] == list(network.HEART_SITES[:3])


def test_a_missing_data_path_is_one_line_naming_it(tmp_path: Path) -> None:
    """The fault: a typo in one --data path; a SiteDataError (exit 2) naming the path, before
    anything starts, instead of a peer that dies after the chain is up."""
    data = [*network.HEART_DATA[:3], tmp_path / "cleveland-2024.csv"]
    with pytest.raises(SiteDataError, match=r"cleveland-2024\.csv: no such file or folder"):
        network.local_task(network.HEART_TASK_FILE, data)


def test_a_csv_that_lacks_a_column_is_one_line_naming_file_and_column(tmp_path: Path) -> None:
    """The fault: one hospital's export lacks a column the task's schema reads."""
    source = network.HEART_DATA[3].read_text().splitlines()
    header = source[0].split(",")
    drop = header.index("chol")
    bad = tmp_path / "va.csv"
    bad.write_text(
        "\n".join(",".join(c for i, c in enumerate(r.split(",")) if i != drop) for r in source)
    )
    with pytest.raises(SiteDataError) as err:
        network.local_task(network.HEART_TASK_FILE, [*network.HEART_DATA[:3], bad])
    message = str(err.value)
    assert "\n" not in message and "va.csv" in message and "chol" in message, message


def test_a_bad_task_file_is_one_line(tmp_path: Path) -> None:
    """The fault: a task file with an unknown kind; TaskFileError naming the file."""
    bad = tmp_path / "task.toml"
    bad.write_text('[task]\nname = "x"\nkind = "spreadsheet"\n')
    with pytest.raises(TaskFileError, match=r"task\.toml.*kind"):
        network.local_task(bad, list(network.HEART_DATA))


def test_too_few_hospitals_and_unmatched_sites_are_refused() -> None:
    """The faults: two --data (each could read the other's update), and a --site count that
    does not match the --data count (which label is whose?)."""
    with pytest.raises(ConfigError, match="at least 3 hospitals"):
        network.local_task(network.HEART_TASK_FILE, network.HEART_DATA[:2])
    with pytest.raises(ConfigError, match="at least 3 hospitals"):
        network.local_task(peers=2)
    with pytest.raises(ConfigError, match="2 --site for 4 --data"):
        network.local_task(network.HEART_TASK_FILE, network.HEART_DATA, ["a", "b"])


def test_more_peers_than_data_reuse_it_under_new_names_and_same_names_are_refused() -> None:
    """``--peers`` above the number of --data: the paths are reused in turn, each hospital with
    its own name (and folder); two data files of the same name need a --site each."""
    paths = [Path("/d/a.csv"), Path("/d/b.csv"), Path("/d/c.csv")]
    five = assign_hospitals(["A", "B", "C"], ["a", "b", "c"], paths, 5)
    assert [h.name for h in five] == ["A", "B", "C", "A 2", "B 2"]
    assert [h.site for h in five] == ["a", "b", "c", "a 2", "b 2"]
    assert [h.data for h in five] == [*paths, paths[0], paths[1]]
    with pytest.raises(ConfigError, match="give each a name with --site"):
        assign_hospitals(["data", "data", "x"], ["data", "data", "x"], paths, 3)


def test_peer_configs_name_the_task_file_and_each_hospital_s_own_data(tmp_path: Path) -> None:
    """Each peer's config points at the task file and at its own hospital's data only."""
    fp = TaskFingerprint("t", 0, b"\1" * 32, b"\2" * 32, 10)
    task = LocalTask(
        tmp_path / "task.toml",
        tuple(Hospital(n.upper(), n, tmp_path / f"{n}.csv") for n in ("a", "b", "c")),
        fp,
    )
    net = LocalnetConfig(
        chain_url="http://127.0.0.1:1",
        contract="0x" + "11" * 20,
        chain_id=31337,
        anvil_pid=0,
        anvil_port=1,
        admin_address="0x" + "22" * 20,
        admin_keystore=str(tmp_path / "admin.json"),
        password_file=str(tmp_path / "password"),
        task_file=str(task.task_file),
        peers=[
            PeerEntry(h.name, "0x" + "33" * 20, "Qm", str(tmp_path / h.name / "key.json"),
                      "/ip4/127.0.0.1/tcp/4001", site=h.site, data=str(h.data))
            for h in task.hospitals
        ],
    )  # fmt: skip
    paths = write_peer_configs(net, tmp_path, rounds=2)
    configs = [PeerConfig.load(p) for p in paths]
    assert [c.task_file for c in configs] == [task.task_file] * 3
    assert [c.data for c in configs] == [h.data for h in task.hospitals]
    assert [c.site for c in configs] == ["a", "b", "c"]
    assert all(c.rounds == 2 for c in configs)
    # A network of old (no task file): the built-in task at the heart sites, as before.
    legacy = LocalnetConfig(**{**net.__dict__, "task_file": ""})
    old = [PeerConfig.load(p) for p in write_peer_configs(legacy, tmp_path / "old")]
    assert [c.task_file for c in old] == [None] * 3
    assert [c.site for c in old] == list(network.HEART_SITES[:3])


def test_eight_heart_hospitals_get_eight_folders() -> None:
    """Fault: two hospitals sharing one folder. The heart study at 8 peers reuses each site's
    data as "... 2": "Hungarian Institute of Cardiology, Budapest 2" used to lose its "2" to the
    40-character folder-name cut, and `localnet up --peers 8` refused to start."""
    task = network.local_task(peers=8)
    folders = [network.slug(h.name) for h in task.hospitals]
    assert len(set(folders)) == 8
    assert all(len(f) <= 40 for f in folders)
    assert network.slug("Hungarian Institute of Cardiology, Budapest 2").endswith("-2")
    # names that fit are unchanged (existing local networks keep their folders)
    assert network.slug("Cleveland Clinic Foundation") == "cleveland-clinic-foundation"
    assert network.slug("Hungarian Institute of Cardiology, Budapest") == (
        "hungarian-institute-of-cardiology-budape"
    )
