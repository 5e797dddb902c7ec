"""docs/admin-guide.md, "Windows that follow the model", is tested: its ResNet-18 task file is
the one the commands run with, and each ``$ swarm admin`` line of its console block runs on anvil
and prints the lines the guide shows under it (``…`` matches anything; stdout and stderr
together). Every ``swarm admin`` option the guide's table and examples name exists."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from cli.app import app, run
from localnet import network

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "admin-guide.md"
SECTION = "## Windows that follow the model"


def section() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end > 0 else len(text)]


def block(kind: str) -> str:
    (body,) = re.findall(rf"^```{kind}\n(.*?)^```$", section(), flags=re.M | re.S)
    return body


def commands() -> list[tuple[str, list[str]]]:
    """(command line, the output lines shown under it) of the section's console block."""
    out: list[tuple[str, list[str]]] = []
    for raw in block("console").splitlines():
        if raw.startswith("$ "):
            out.append((raw[2:], []))
        else:
            out[-1][1].append(raw.rstrip())
    return out


def matches(expected: str, actual_lines: list[str]) -> bool:
    if expected.strip() == "…":
        return True
    pattern = ".*".join(re.escape(part) for part in expected.split("…"))
    return any(re.fullmatch(pattern, line.rstrip()) for line in actual_lines)


@pytest.fixture
def net(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[network.LocalnetConfig]:
    config = network.up(tmp_path / "net", peers=2)
    monkeypatch.setenv("SWARM_PASSWORD", config.password())
    try:
        yield config
    finally:
        network.down(tmp_path / "net")


@pytest.mark.anvil
def test_the_windows_example_runs_and_prints_what_the_guide_shows(
    net: network.LocalnetConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fault: the guide's ResNet-18 example shows windows, parameter counts or a refusal that
    `swarm admin deploy` does not print (the sizing changed and the guide did not)."""
    task = tmp_path / "scans.toml"
    task.write_text(block("toml"))
    shown = commands()
    assert [line.split()[:3] for line, _ in shown] == [["swarm", "admin", "deploy"]] * len(shown)
    for line, expected in shown:
        argv = [
            {"admin.json": net.admin_keystore, "scans.toml": str(task)}.get(a, a)
            for a in shlex.split(line)
        ]
        code = run([*argv[1:], "--chain-url", net.chain_url])
        out, err = capsys.readouterr()
        actual = (out + err).splitlines()
        assert code == (2 if any(e.startswith("error: ") for e in expected) else 0), err
        for want in expected:
            assert matches(want, actual), f"{line}:\n  shown: {want}\n  printed:\n" + "\n".join(
                actual
            )


def test_every_admin_option_the_guide_names_exists() -> None:
    """Fault: the guide documents an option of `swarm admin` that is not there (renamed, or
    never added), e.g. --link-mb-s."""
    text = GUIDE.read_text(encoding="utf-8")
    admin = typer.main.get_command(app).commands["admin"]  # type: ignore[attr-defined]
    known = {
        opt
        for command in admin.commands.values()
        for param in command.params
        for opt in (*param.opts, *param.secondary_opts)
    }
    table = set(re.findall(r"^\| `(--[a-z-]+)", text, flags=re.M))
    used = set(re.findall(r"swarm admin [a-z-]+ [^\n]*", text))
    named = table | {o for line in used for o in re.findall(r"(--[a-z][a-z-]+)", line)}
    # the table's --metrics/--no-metrics row is one option with two names
    assert {"--link-mb-s", "--train-s", "--hospitals", "--force-windows"} <= named
    assert named - known == set()
