"""The audit report: its data, its escaping of untrusted names, and the page in a real browser."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from swarm.audit import build_history
from swarm.audit.report import (
    BUILTIN_TASKS,
    build_report,
    downsample,
    nice_ticks,
    render_html,
    tagged_task_id,
)
from swarm.audit.source import read_ledger
from swarm.audit.verify import verify
from swarm.ledger.types import LapseReason
from tests.audit.driven import FINALIZED, HOSTILE_NAME, METRICS, driven
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
        consortium=snap.consortium,
    )


def test_member_names_are_escaped() -> None:
    """Hostile member names (a script tag; a value that closes an attribute) come out as text:
    the page holds no script and no image element, anywhere."""
    log = EventLog()
    log.deploy(members=[])
    log.add_member(H[0], SCRIPT_NAME)
    log.add_member(H[1], ATTRIBUTE_NAME)
    log.add_member(H[2], "Hospital 2")
    log.clean_round(1, INITIAL_MODEL, h("m1"), joined=H[:3])
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
    """The JSON data of both contracts' history: every round, who did what in it (the
    stalling member's missed commits and sit-out, the member removed mid-round), the
    metrics, parameter versions, role changes and the findings."""
    d = driven()
    data = driven_report()
    json.dumps(data)  # plain values only
    assert data["consortium"] == d.ledger.consortium_address
    assert [r["round"] for r in data["rounds"]] == list(range(1, 8))
    summary = data["summary"]
    assert {k: summary[k] for k in ("members", "active_members", "rounds", "finalized")} == {
        "members": 5,
        "active_members": 4,
        "rounds": 7,
        "finalized": len(FINALIZED),
    }
    assert summary["lapsed"] == 1 and summary["replacements"] == 1
    assert summary["missed_commits"] == 2 and summary["sit_outs"] == 1
    assert summary["findings"] == {"error": 0, "warning": 4, "info": 4}
    assert summary["latest_model"]["round"] == 6
    hospitals = {x["account"]: x for x in data["hospitals"]}
    assert hospitals[d.dissenter]["counts"]["dissent"] == 1
    assert hospitals[d.left_out]["counts"]["left-out"] == 1
    assert hospitals[d.staller]["counts"]["missed"] == 2
    assert hospitals[d.staller]["counts"]["sat-out"] == 1
    assert hospitals[d.hostile]["last_round"] == 3 and not hospitals[d.hostile]["active"]
    marks = {
        row["account"]: {c["round"]: c["marks"] for c in row["rounds"]}
        for row in data["participation"]
    }
    assert "dissent" in marks[d.dissenter][1]
    assert "replaced" in marks[d.replaced_merge_peer][2]
    assert "left-out" in marks[d.left_out][4] and "contributed" not in marks[d.left_out][4]
    assert "missed" in marks[d.staller][5] and "contributed" not in marks[d.staller][5]
    assert marks[d.staller][7] == ["sat-out"]
    assert marks[d.hostile] == {r: ["joined", "left"] if r == 3 else [] for r in range(1, 8)}
    staller = next(m for m in data["members"] if m["address"] == d.staller)
    assert staller["missed_commits"] == [{"round": 5, "in_a_row": 1}, {"round": 6, "in_a_row": 2}]
    assert staller["sit_outs"] == [{"from": 7, "until": 7}]
    assert len(data["metrics"]) == sum(len(v) for v in METRICS.values())
    assert data["current_round"]["round"] == 7 and data["current_round"]["derived"]
    assert data["current_round"]["state"] == "JOINING"
    assert [p["changed"] for p in data["params"]] == [[], ["joinWindow"]]
    assert [p["version"] for p in data["params"]] == [0, 1]
    assert data["owner"] == d.admin
    assert {(c["role"], c["account"]) for c in data["admin_changes"]} == {
        ("owner", d.admin),
        ("admin", d.admin),
        ("admin", d.hospitals[0]),
    }


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
    for rid in range(1, 8):
        assert f'id="row-round-{rid}"' in dom.stdout
        assert f'id="round-{rid}"' in dom.stdout
    assert dom.stdout.count('class="sev-') == 8  # the eight findings
    assert "sits out" in dom.stdout and "missed commit" in dom.stdout
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


# --- a long history: 1,000 rounds -------------------------------------------------------------

TASK = "heart-disease-uci/logreg"
LONG_NAMES = [
    "Cleveland Clinic Foundation",
    "Hungarian Institute of Cardiology, Budapest",
    "University Hospitals Zurich and Basel",
    "VA Long Beach",
]


def long_history(rounds: int) -> EventLog:
    """``rounds`` rounds of four hospitals that report metrics every round; every 97th round
    lapses (only one hospital joins). Built from events, as the contract emits them."""
    log = EventLog()
    log.deploy(members=[], taskId=tagged_task_id(TASK, 0))
    for account, name in zip(H[:4], LONG_NAMES, strict=True):
        log.add_member(account, name)
    base = INITIAL_MODEL
    for rid in range(1, rounds + 1):
        if rid % 97 == 0:
            log.open(rid, base, by=H[0])
            log.join(rid, H[0])
            log.wait(200)
            log.lapse(rid, LapseReason.TOO_FEW_JOINED)
            continue
        model = h(f"model-{rid}")
        log.clean_round(rid, base, model)
        for j, account in enumerate(H[:4]):
            accuracy = 0.6 + 0.25 * rid / (rid + 50) + 0.02 * j
            log.emit(
                "MetricsReported", round=rid, account=account, modelHash=model, testSamples=60,
                accuracyPpm=int(accuracy * 1e6), aucPpm=int((accuracy + 0.05) * 1e6),
                lossPpm=int((1 - accuracy) * 1e6),
            )  # fmt: skip
        base = model
        log.wait(30)
    return log


def long_report(rounds: int) -> dict[str, Any]:
    history = build_history(long_history(rounds).events)
    return build_report(
        history, verify(history), contract="0x" + "cc" * 20, chain_url="x", generated_at=0
    )


#: what a report of 1,000 rounds may weigh (measured: 1.11 MB; before it was summarised and
#: paginated, 14.1 MB, most of it the timeline of every round)
MAX_REPORT_BYTES_1000 = 1_500_000


def test_report_of_1000_rounds_is_small_and_summarised(tmp_path: Path) -> None:
    """A history of 1,000 rounds (the fault: a page that grew with every round's events, grid
    cells and chart labels, 14.1 MB): a summary comes first, the page stays under 1.5 MB, the
    charts are drawn from at most CHART_POINTS points each with at most ten round labels, the
    grid shows the newest rounds (a strip shows all), older rounds sit in closed blocks and
    only rounds with findings or among the newest get a timeline. The task reads as its name."""
    data = long_report(1000)
    page = render_html(data)
    size = len(page.encode())
    assert size < MAX_REPORT_BYTES_1000, f"{size} bytes"
    sections = re.findall(r'<section id="([^"]+)">', page)
    assert sections[:2] == ["summary", "findings"]
    assert data["summary"]["task"] == f"{TASK} (seed 0)"
    assert f'<code title="0x{tagged_task_id(TASK, 0).hex()}">{TASK} (seed 0)</code>' in page
    # every round still has its row (in the table or in an older block); ten lapsed rounds,
    # the newest 20 and nothing else have a timeline
    assert all(f'id="row-round-{rid}"' in page for rid in (1, 500, 1000))
    assert page.count('<details class="block">') == 10  # rounds 1-950, 100 at a time
    timelines = re.findall(r'<details class="round" id="round-(\d+)"', page)
    assert len(timelines) == 10 + 20
    assert 'href="#round-97"' in page and 'href="#row-round-5"' in page
    # the charts: full-width SVG, few labels, a bounded number of points
    for chart in re.findall(r'<svg class="chart".*?</svg>', page):
        assert 'width="' not in chart.split(">", 1)[0]  # sized by CSS: the page's width
        polylines = re.findall(r'<polyline points="([^"]+)"', chart)
        assert len(polylines) == 4
        assert all(len(p.split()) <= 250 for p in polylines)
        labels = re.findall(r'text-anchor="middle">(\d+)</text>', chart)
        assert 5 <= len(labels) <= 11
    grid_head = page.split('<table class="grid" id="participation">')[1].split("</thead>")[0]
    assert grid_head.count("<th>") == 1 + 30
    # In a browser: it loads without a console message; a screenshot renders.
    path = tmp_path / "report-1000.html"
    path.write_text(page, encoding="utf-8")
    dom = _run_chromium(tmp_path, "--dump-dom", path.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert [line for line in dom.stderr.splitlines() if ":CONSOLE" in line] == []
    shot = tmp_path / "report-1000.png"
    result = _run_chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1280,3000", path.as_uri()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hostile_names_are_escaped_in_the_summary_and_strip() -> None:
    """Past 30 rounds the participation strip and the summary's hospital table show member
    names too (the fault would be a name that is markup there): escaped like everywhere."""
    log = long_history(40)
    log.add_member(H[4], SCRIPT_NAME)
    log.add_member(H[5], ATTRIBUTE_NAME)
    history = build_history(log.events)
    page = render_html(
        build_report(history, verify(history), contract="0x" + "cc" * 20, chain_url="x",
                     generated_at=0)
    )  # fmt: skip
    assert '<svg class="strip"' in page
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # summary, strip, grid


def test_report_size_grows_slowly_with_rounds() -> None:
    """Twice the rounds must not mean twice the page (the fault: a page linear in events,
    about 14 kB per round); past the newest rounds each round costs one table row."""
    small, large = (len(render_html(long_report(n)).encode()) for n in (500, 1000))
    assert (large - small) / 500 < 1_000  # bytes per added round


def test_chart_axes_and_downsampling() -> None:
    """Axis labels are round numbers, at most the number asked for (the fault: one label per
    round, 1,000 overlapping labels); a long series becomes the means of equal spans."""
    assert nice_ticks(1, 1000, 11) == [100.0 * k for k in range(1, 11)]
    assert nice_ticks(0.6, 0.9, 8) == pytest.approx([0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9])
    assert nice_ticks(3, 3) == [3]
    points = [(x, float(x % 2)) for x in range(1, 1001)]
    line = downsample(points, 1, 1000, 250)
    assert len(line) == 250 and all(y == pytest.approx(0.5) for _, y in line)
    assert downsample(points[:10], 1, 10, 250) == [(float(x), y) for x, y in points[:10]]


def test_builtin_task_names_are_the_registry_s() -> None:
    """The report names tasks without importing torch: its list must be the registry's
    (the fault: a task added to the registry that an audit report shows as a bare hash)."""
    from swarm.training.registry import task_names

    assert set(BUILTIN_TASKS) == set(task_names())


def test_task_ids_read_as_names() -> None:
    """A ``taskId`` reads as the task's name and seed, computed as the deployment computes it
    (the fault: the summary and parameters showed a bare hash); an unknown id stays a hash,
    and only the ids the history records are in the data."""
    task_id = pytest.importorskip("swarm.training.task_id")
    assert tagged_task_id(TASK, 7) == task_id.task_id(TASK, 7)
    for recorded, shown in [
        (task_id.task_id(TASK, 3), f"{TASK} (seed 3)"),
        (hashlib.sha256(TASK.encode()).digest(), TASK),
        (h("some other task"), "0x" + h("some other task").hex()),
    ]:
        log = EventLog()
        log.deploy(members=[], taskId=recorded)
        history = build_history(log.events)
        data = build_report(history, [], contract="0x" + "cc" * 20, chain_url="x", generated_at=0)
        assert data["summary"]["task"] == shown
        assert len(data["task_names"]) == (0 if shown.startswith("0x") else 1)
