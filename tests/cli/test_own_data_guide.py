"""docs/own-data.md ("Train on your own data") is tested: what it shows is what swarm does.

- every ``$ swarm task ...`` and ``$ python ...`` line of its ```console blocks is run (paths the
  guide uses for a hospital's files replaced by the bundled examples' or generated ones), and
  the output lines the guide prints under it are found in the real output (``…`` matches
  anything); the test runs exactly those commands, no fewer and no more;
- every other ``$ swarm ...`` line names a command that exists, with options it has;
- every task file in a ```toml block loads and builds its model; the csv and plugin ones are
  the bundled examples' (their task tables and settings are the real files');
- the peer-config block is a valid peer config's ``[task]`` and ``[training]``;
- the error messages the guide lists for a bad task file are the ones swarm prints.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from cli.app import app, run
from swarm.training.taskfile import TaskFile, check_site, open_task

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "own-data.md"
HEART = ROOT / "examples" / "heart"
PLUGIN = ROOT / "examples" / "plugin-task"

#: the commands this test runs, as the guide writes them (continuations joined)
RUN = {
    "swarm task info examples/heart/task.toml",
    "swarm task check /etc/swarm/task.toml --data /srv/swarm/cleveland.csv --site Cleveland",
    "python examples/plugin-task/make_data.py --out /tmp/ecg",
    "swarm task info examples/plugin-task/task.toml",
    "swarm task check examples/plugin-task/task.toml --data /tmp/ecg/north.npz",
}


@dataclass(frozen=True)
class Command:
    """One ``$`` line of a console block and the output lines the guide shows under it."""

    line: str
    output: tuple[str, ...]

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.line)


def blocks(kind: str) -> list[str]:
    """The bodies of the guide's fenced blocks of language ``kind``."""
    text = GUIDE.read_text(encoding="utf-8")
    return re.findall(rf"^```{kind}\n(.*?)^```$", text, flags=re.M | re.S)


def console_commands() -> list[Command]:
    commands: list[Command] = []
    for body in blocks("console"):
        line: str | None = None
        output: list[str] = []
        pending = ""
        for raw in body.splitlines():
            if pending or raw.startswith("$ "):
                text = pending + (raw[2:] if raw.startswith("$ ") and not pending else raw)
                if text.endswith("\\"):
                    pending = text[:-1].rstrip() + " "
                    continue
                pending = ""
                if line is not None:
                    commands.append(Command(line, tuple(output)))
                line, output = " ".join(text.split()), []
            elif line is not None:
                output.append(raw.rstrip())
        if line is not None:
            commands.append(Command(line, tuple(output)))
    return commands


def matches(expected: str, actual_lines: list[str]) -> bool:
    """Whether a line the guide shows is one of the real ones (``…`` matches any text)."""
    if expected.strip() == "…":
        return True
    pattern = ".*".join(re.escape(part) for part in expected.split("…"))
    return any(re.fullmatch(pattern, line.rstrip()) for line in actual_lines)


@pytest.fixture(autouse=True)
def _import_state() -> Iterator[None]:
    """The plugin example's ``path`` goes on sys.path when its task file is opened (as in a
    peer): undo it after the test."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name.startswith("swarm_example_task"):
            del sys.modules[name]


def test_the_guide_shows_exactly_the_commands_this_test_runs() -> None:
    """Fault: the guide gained a `swarm task` or `python` command nobody runs, or lost one
    this test runs (RUN is the list the next test executes)."""
    shown = {c.line for c in console_commands() if c.line.startswith(("swarm task ", "python "))}
    assert shown == RUN


def test_the_guides_commands_run_and_print_what_it_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fault: a `swarm task` command of the guide fails on the bundled examples, or prints
    something else than the guide shows (a renamed label, another row count, a wrong site)."""
    ecg = tmp_path / "ecg"
    to_real = {
        "/etc/swarm/task.toml": str(HEART / "task.toml"),
        "/srv/swarm/cleveland.csv": str(HEART / "data" / "cleveland.csv"),
        "/tmp/ecg": str(ecg),
    }
    ran = set()
    for command in console_commands():
        if command.line not in RUN:
            continue
        argv = [_replace(arg, to_real) for arg in command.argv]
        if argv[0] == "python":
            done = subprocess.run(
                [sys.executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, done.stderr
            out = done.stdout
        else:
            code = run(argv[1:])
            out, err = capsys.readouterr()
            assert code == 0, f"{command.line}: {err}"
        back = {v: k for k, v in to_real.items() if k in command.line}  # the guide's paths
        lines = [_replace(line, back) for line in out.splitlines()]
        for expected in command.output:
            assert matches(expected, lines), f"{command.line}: {expected!r} not in\n{out}"
        ran.add(command.line)
    assert ran == RUN


def _replace(text: str, mapping: dict[str, str]) -> str:
    for old, new in sorted(mapping.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(old, new)
    return text


def _command(argv: list[str]) -> Any:
    """The command ``swarm argv...`` names (the words before the first option). typer's own
    click: a group has ``commands``, a command ``params`` with their ``opts``."""
    command: Any = typer.main.get_command(app)
    for word in argv:
        commands = getattr(command, "commands", None)
        if word.startswith("-") or commands is None:
            break
        assert word in commands, f"swarm has no command {word!r} here: {' '.join(argv)}"
        command = commands[word]
    return command


def test_every_other_swarm_command_exists_with_its_options() -> None:
    """Fault: the guide shows a command or an option that swarm does not have (renamed,
    removed, or not added yet: `admin deploy --task-file`, `localnet up --data`)."""
    checked = 0
    for command in console_commands():
        argv = command.argv
        if argv[0] != "swarm" or command.line in RUN:
            continue
        target = _command(argv[1:])
        assert getattr(target, "commands", None) is None, f"{command.line}: names a group"
        known = {opt for param in target.params for opt in (*param.opts, *param.secondary_opts)}
        used = {arg.split("=")[0] for arg in argv if arg.startswith("-")}
        assert used <= known, f"{command.line}: unknown option(s) {sorted(used - known)}"
        checked += 1
    assert checked >= 6  # admin deploy, peer init, peer run, localnet up (x2), status, down


def _task_blocks() -> list[dict[str, Any]]:
    """The guide's task files (a peer config has a [task] table too, without a kind)."""
    return [doc for doc in map(tomllib.loads, blocks("toml")) if "kind" in doc.get("task", {})]


def _load(doc_text: str, folder: Path) -> TaskFile:
    path = folder / "task.toml"
    path.write_text(doc_text)
    return TaskFile.load(path)


def test_the_guides_task_files_load_and_build_their_models(tmp_path: Path) -> None:
    """Fault: a task file the guide shows as a full example is refused by swarm, or its model
    does not build (a key renamed, a value out of range)."""
    texts = [t for t in blocks("toml") if "kind" in tomllib.loads(t).get("task", {})]
    kinds = []
    for i, text in enumerate(texts):
        folder = PLUGIN if tomllib.loads(text)["task"]["kind"] == "plugin" else tmp_path / str(i)
        if folder != PLUGIN:
            folder.mkdir()
            spec = _load(text, folder)
        else:  # its [plugin] path "." is the example's folder: parse it there, write nothing
            spec = TaskFile.parse(text, PLUGIN / "task.toml")
        task = open_task(spec, None)
        assert task.name == spec.name
        assert sum(p.numel() for p in task.build_model(spec.seed).parameters()) > 0
        kinds.append(spec.kind)
    assert sorted(kinds) == ["csv", "image-folder", "plugin"]


def test_the_csv_and_plugin_examples_are_the_bundled_files() -> None:
    """Fault: the guide's csv or plugin example drifted from examples/heart/task.toml or
    examples/plugin-task/task.toml (another name, seed, training, server optimizer, options)."""
    by_kind = {doc["task"]["kind"]: doc for doc in _task_blocks()}
    heart = tomllib.loads((HEART / "task.toml").read_text())
    shown = by_kind["csv"]
    for table in ("task", "model", "training", "server", "personalization"):
        assert shown.get(table) == heart.get(table), table
    real_features = {f["column"]: f for f in heart["data"]["features"]}
    for feature in shown["data"]["features"]:  # the guide shows a few of them, unchanged
        assert feature == real_features[feature["column"]]
    assert {k: v for k, v in shown["data"].items() if k != "features"} == {
        k: v for k, v in heart["data"].items() if k != "features"
    }
    assert by_kind["plugin"] == tomllib.loads((PLUGIN / "task.toml").read_text())
    pinned = [tomllib.loads(t) for t in blocks("toml") if "entry_point" in t]
    assert pinned and pinned[0]["plugin"]["options"] == by_kind["plugin"]["plugin"]["options"]
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    assert pinned[0]["plugin"]["distribution"] == project["name"]
    assert pinned[0]["plugin"]["version"] == project["version"]
    assert pinned[0]["plugin"]["entry_point"] in project["entry-points"]["swarm.tasks"]


def test_the_image_example_reads_an_image_folder(tmp_path: Path) -> None:
    """Fault: the guide's image-folder task file cannot read a folder laid out as the guide
    says (one subfolder per class, PNGs of any size, grayscale)."""
    from PIL import Image

    (text,) = [t for t in blocks("toml") if 'kind = "image-folder"' in t]
    spec = _load(text, tmp_path)
    xray = tmp_path / "xray"
    for c, name in enumerate(spec.data["classes"]):
        (xray / name).mkdir(parents=True)
        for i in range(5):
            Image.new("L", (40 + i, 30), color=40 * c + 10 * i).save(xray / name / f"{i}.png")
    report = check_site(spec, xray)
    assert report.ok, report.problems
    assert report.rows == 10


def test_the_peer_config_block_is_a_valid_task_section(tmp_path: Path) -> None:
    """Fault: the guide's peer config ([task] file/data/site, [training] device) is not what
    swarm.config reads."""
    from swarm.config import PeerConfig

    (text,) = [t for t in blocks("toml") if "file = " in t and "device" in t]
    raw = tomllib.loads(text)
    raw.update(
        identity={"keystore": "hospital.json"},
        ledger={"chain_url": "http://127.0.0.1:8545", "contract": "0x" + "11" * 20},
    )
    config = PeerConfig.from_dict(raw, base=tmp_path)
    assert config.task_file == Path("/etc/swarm/task.toml")
    assert config.data == Path("/srv/swarm/cleveland.csv") and config.site == "Cleveland"
    assert config.training.given() == {"device": "auto"}


@pytest.mark.parametrize(
    ("fault", "body"),
    [
        ("misspelt table", '[task]\nname = "t"\nkind = "csv"\n[trainig]\nlr = 0.1\n'),
        ("negative lr", '[task]\nname = "t"\nkind = "csv"\n[training]\nlr = -1.0\n'),
        (
            "unknown server optimizer",
            '[task]\nname = "t"\nkind = "csv"\n[server]\noptimizer = "adam"\n',
        ),
    ],
)
def test_the_guides_task_file_errors_are_swarms(
    fault: str, body: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fault: the error the guide's table shows for a bad task file (a misspelt table, a value
    out of range, an unknown server optimizer) is not the line swarm prints."""
    path = tmp_path / "task.toml"
    path.write_text(body)
    assert run(["task", "info", str(path)]) == 2, fault
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    shown = re.findall(r"^\| `(error: task\.toml: [^`]*)`", GUIDE.read_text(), flags=re.M)
    assert any(matches(line, [err]) for line in shown), f"{fault}: {err!r} not in the guide"
