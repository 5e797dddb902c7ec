"""The audit report: its data, its escaping of untrusted names, and the page in a real browser."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from swarm.audit import build_history
from swarm.audit.report import build_report, render_html
from swarm.audit.source import read_ledger
from swarm.audit.verify import verify
from tests.audit.driven import HOSTILE_NAME, METRICS, driven
from tests.audit.events import INITIAL_MODEL, EventLog, H
from tests.conftest import h

SCRIPT_NAME = "<script>alert(1)</script>"
ATTRIBUTE_NAME = '"><img src=x onerror=alert(1)>'


def driven_report() -> dict[str, Any]:
    d = driven()
    snap = read_ledger(d.ledger)
    findings = verify(snap.history, chain=snap.facts, current=snap.current)
    return build_report(
        snap.history,
        findings,
        contract=snap.contract,
        chain_url=snap.chain_url,
        generated_at=1_800_000_000,
        block_number=snap.block_number,
        current=snap.current,
    )


def test_member_names_are_escaped() -> None:
    """Hostile member names (a script tag; a value that closes an attribute) come out as text:
    the page holds no script and no image element, anywhere."""
    log = EventLog()
    log.deploy(members=[])
    log.add_member(H[0], SCRIPT_NAME)
    log.add_member(H[1], ATTRIBUTE_NAME)
    log.clean_round(1, INITIAL_MODEL, h("m1"), joined=H[:2])
    history = build_history(log.events)
    page = render_html(
        build_report(
            history, verify(history), contract="0x" + "cc" * 20, chain_url="x", generated_at=0
        )
    )
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    # Nothing may load or run, even if a value slipped through.
    assert "default-src 'none'" in page


def test_report_data_of_the_driven_history() -> None:
    """The JSON data: every round, who did what in it, the metrics, and the findings."""
    d = driven()
    data = driven_report()
    json.dumps(data)  # plain values only
    assert [r["round"] for r in data["rounds"]] == [1, 2, 3, 4, 5]
    assert data["summary"] == {
        "members": 5,
        "active_members": 4,
        "rounds": 5,
        "finalized": 3,
        "lapsed": 1,
        "findings": {"error": 0, "warning": 2, "info": 2},
    }
    marks = {
        row["account"]: {c["round"]: c["marks"] for c in row["rounds"]}
        for row in data["participation"]
    }
    assert "dissent" in marks[d.dissenter][1]
    assert "replaced" in marks[d.replaced_merge_peer][2]
    assert "left-out" in marks[d.left_out][4] and "contributed" not in marks[d.left_out][4]
    assert marks[d.hostile] == {r: [] for r in range(1, 6)}
    assert len(data["metrics"]) == sum(len(v) for v in METRICS.values())
    assert data["current_round"]["round"] == 5 and data["current_round"]["derived"]
    assert data["current_round"]["state"] == "JOINING"
    assert [p["changed"] for p in data["params"]] == [[], ["joinWindow"]]
    assert {c["account"] for c in data["admin_changes"]} == {d.admin, d.hospitals[0]}


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "chromium is not installed: the report's browser test needs it. "
            "Run scripts/setup.sh as root (it installs Debian's chromium), "
            "or: apt-get install -y chromium"
        )
    return found


def _run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        # Console messages (script errors, CSP violations, failed loads) go to stderr.
        "--enable-logging=stderr", "--v=0",
    ]  # fmt: skip
    return subprocess.run(
        [_chromium(), *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_report_renders_in_a_browser(tmp_path: Path) -> None:
    """Debian's chromium loads the report with no console message (no script error, nothing
    blocked, nothing fetched); the DOM shows every round's row, the findings and the hostile
    member name as text; a screenshot renders."""
    page = tmp_path / "report.html"
    page.write_text(render_html(driven_report()), encoding="utf-8")

    dom = _run_chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    for rid in range(1, 6):
        assert f'id="row-round-{rid}"' in dom.stdout
        assert f'id="round-{rid}"' in dom.stdout
    assert dom.stdout.count('class="sev-') == 4  # the four findings
    assert 'id="participation"' in dom.stdout and "<svg" in dom.stdout
    assert "<script" not in dom.stdout
    assert "&lt;script&gt;alert(1)&lt;/script&gt;[/]" in dom.stdout
    assert HOSTILE_NAME not in dom.stdout

    shot = tmp_path / "report.png"
    result = _run_chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
