"""The audit report: one self-contained HTML page a person reads, and the same data as JSON.

Pure: ``build_report`` turns a history and its findings into plain JSON-able data (what
``swarm audit report --json`` prints); ``render_html`` turns that data into one HTML file with
inline CSS and SVG, no script and no external resource. A Content-Security-Policy in the page
forbids both, so the page stays inert even if a value slipped through unescaped.

Member names, PeerIDs and multiaddrs come from the ledger, where any admin (or, for addresses,
any member) wrote them: they are untrusted input, and every value goes through ``html.escape``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import html
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from swarm.audit.history import ConsortiumHistory, RoundHistory, round_summary
from swarm.audit.timeline import describe
from swarm.audit.verify import Finding, count_by_severity
from swarm.hashing import Tag, tagged_hash
from swarm.ledger.types import RoundInfo

SCHEMA = "swarm-audit-report/1"

# Marks of the participation grid, in the order a cell shows them.
MARKS = {
    "merge-peer": ("M", "merge peer"),
    "key-steward": ("S", "key steward"),
    "replaced": ("R", "replaced in a role after missing its deadline"),
    "joined": ("J", "joined"),
    "committed": ("C", "committed an update"),
    "contributed": ("A", "in the aggregate"),
    "left-out": ("L", "committed, but left out of the aggregate"),
    "missed": ("!", "joined but did not commit in the final attempt (a missed commit)"),
    "sat-out": ("Z", "sat the round out after missing too many commits in a row"),
    "left": ("X", "removed from the consortium while the round ran"),
    "acked": ("✓", "acknowledged the finalized model"),
    "dissent": ("✗", "acknowledged a different model"),
}


# --- the data ------------------------------------------------------------------------------


def build_report(
    history: ConsortiumHistory,
    findings: Sequence[Finding],
    *,
    contract: str,
    chain_url: str,
    generated_at: int,
    block_number: int | None = None,
    current: RoundInfo | None = None,
    known_tasks: Iterable[str] | None = None,
    consortium: str | None = None,
) -> dict[str, Any]:
    """Everything the report shows, as JSON-able values (hashes as 0x-hex strings).

    ``known_tasks`` are task names whose hash (``taskId`` is sha256 of the name) the report
    shows as the name; default: the tasks this version of swarm has."""
    names = {a: m.name for a, m in history.members.items()}
    rounds = list(history.rounds.values())
    accounts = _accounts(history)
    participation = [
        {
            "account": a,
            "rounds": [{"round": r.round_id, "marks": _marks(r, a, history)} for r in rounds],
        }
        for a in accounts
    ]
    metrics = [{"round": r.round_id, **_plain(m)} for r in rounds for m in r.metrics]
    params = _params(history)
    recorded = {p["values"].get("taskId") for p in params}
    task_names = {k: v for k, v in _task_names(known_tasks).items() if k in recorded}
    task_id = params[-1]["values"].get("taskId") if params else None
    finalized = [r for r in rounds if r.final_model is not None]
    return {
        "schema": SCHEMA,
        "contract": contract,
        "consortium": consortium,
        "chain_url": chain_url,
        "generated_at": generated_at,
        "block_number": block_number,
        "names": names,
        "task_names": task_names,
        "summary": {
            "members": len(history.members),
            "active_members": sum(1 for m in history.members.values() if m.active),
            "rounds": len(rounds),
            "finalized": len(finalized),
            "lapsed": sum(1 for r in rounds if r.lapse_reason is not None),
            "replacements": sum(len(r.replacements) for r in rounds),
            "missed_commits": sum(len(r.missed) for r in rounds),
            "sit_outs": sum(len(r.sit_outs) for r in rounds),
            "findings": count_by_severity(findings),
            "task": task_names.get(task_id, task_id) if isinstance(task_id, str) else None,
            "task_id": task_id,
            "first_opened_at": rounds[0].opened_at if rounds else None,
            "last_opened_at": rounds[-1].opened_at if rounds else None,
            "latest_model": (
                {"round": finalized[-1].round_id, "hash": _plain(finalized[-1].final_model)}
                if finalized
                else None
            ),
        },
        "hospitals": _hospitals(history, accounts, participation, metrics),
        "members": [
            {
                "address": m.address,
                "name": m.name,
                "peer_id": m.peer_id,
                "multiaddrs": list(m.multiaddrs),
                "added_at": m.added_at,
                "added_by": m.added_by,
                "removed_at": m.removed_at,
                "removed_by": m.removed_by,
                "active": m.active,
                "admin": history.admins.get(m.address, False),
                "encryption_key": _plain(m.encryption_key),
                "key_rotations": [{"timestamp": t, "key": _plain(k)} for t, k in m.key_rotations],
                "missed_commits": [{"round": r, "in_a_row": n} for r, n in m.missed_commits],
                "sit_outs": [{"from": f, "until": u} for f, u in m.sit_outs],
            }
            for m in history.members.values()
        ],
        "admins": [
            {"address": a, "name": names.get(a), "admin": held}
            for a, held in history.admins.items()
        ],
        "owner": history.owner,
        "admin_changes": [
            {
                "account": c.account,
                "role": c.role,
                "added": c.added,
                "by": c.by,
                "timestamp": c.timestamp,
            }
            for c in history.admin_log
        ],
        "params": params,
        "rounds": [round_summary(r) for r in rounds],
        "participation": participation,
        "metrics": metrics,
        "timeline": [
            {
                "block": e.block_number,
                "timestamp": e.timestamp,
                "round": e.args.get("round") if isinstance(e.args.get("round"), int) else None,
                "event": e.name,
                "text": describe(e, names),
                "tx": e.tx_hash,
            }
            for e in history.events
        ],
        "findings": [f.as_dict() for f in findings],
        "current_round": _current(history, current),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


#: the tasks swarm ships (swarm.training.registry; a test keeps the two in step): named here so
#: that an audit does not import torch to read a task's name
BUILTIN_TASKS = (
    "heart-disease-uci/logreg",
    "heart-disease-uci/mlp",
    "heart-disease-uci/mlp+site-scaled",
)


#: seeds tried when a ``taskId`` is read back as a task's name and seed
TASK_SEEDS = range(100)


def tagged_task_id(name: str, seed: int) -> bytes:
    """swarm.training.task_id.task_id, without importing torch (a test keeps them equal)."""
    return tagged_hash(Tag.TASK, name.encode() + b"\0" + str(seed).encode())


def _task_names(known: Iterable[str] | None) -> dict[str, str]:
    """How a ledger's ``taskId`` reads as a task: ``{"0x…": "name (seed N)"}`` for the
    tagged id of every known name and seed in ``TASK_SEEDS``, and ``{"0x…": "name"}`` for a
    plain sha256 of the name (how early consortia recorded it). By default the built-in
    tasks, and any registered in this process."""
    if known is None:
        registry = sys.modules.get("swarm.training.registry")
        known = (*BUILTIN_TASKS, *(registry.task_names() if registry is not None else ()))
    names: dict[str, str] = {}
    for name in dict.fromkeys(known):
        # legacy, display only: how the earliest ledgers recorded a task (an untagged hash)
        names["0x" + hashlib.sha256(name.encode()).hexdigest()] = name
        for seed in TASK_SEEDS:
            names["0x" + tagged_task_id(name, seed).hex()] = f"{name} (seed {seed})"
    return names


#: the per-hospital counts of the summary, by the participation mark they count
_TOTALS = ("joined", "contributed", "left-out", "missed", "sat-out", "merge-peer",
           "key-steward", "replaced", "acked", "dissent")  # fmt: skip


def _hospitals(
    history: ConsortiumHistory,
    accounts: Sequence[str],
    participation: Sequence[Mapping[str, Any]],
    metrics: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Per account, over the whole history: how often it did what, its last round, and the
    newest metrics it reported."""
    newest: dict[str, Mapping[str, Any]] = {}
    for reported in metrics:
        newest[reported["account"]] = reported
    out = []
    for account, row in zip(accounts, participation, strict=True):
        counts = dict.fromkeys(_TOTALS, 0)
        last = None
        for cell in row["rounds"]:
            for mark in cell["marks"]:
                if mark in counts:
                    counts[mark] += 1
            if cell["marks"]:
                last = cell["round"]
        member = history.members.get(account)
        m = newest.get(account)
        out.append(
            {
                "account": account,
                "active": bool(member and member.active),
                "counts": counts,
                "last_round": last,
                "latest_metrics": (
                    {"round": m["round"], "accuracy": m["accuracy"], "auc": m["auc"]} if m else None
                ),
            }
        )
    return out


def _accounts(history: ConsortiumHistory) -> list[str]:
    """Members in order of admission, then any other account that took part in a round."""
    seen = list(history.members)
    for r in history.rounds.values():
        for a in [*r.joined, *r.contributors, *r.acks]:
            if a not in seen:
                seen.append(a)
    return seen


def _params(history: ConsortiumHistory) -> list[dict[str, Any]]:
    out = []
    previous: dict[str, Any] = {}
    for p in history.params:
        plain = _plain(p.values)
        changed = [k for k in plain if previous and previous.get(k) != plain[k]]
        out.append(
            {
                "version": p.version,
                "timestamp": p.timestamp,
                "by": p.by,
                "values": plain,
                "changed": changed,
            }
        )
        previous = plain
    return out


def _marks(r: RoundHistory, account: str, history: ConsortiumHistory) -> list[str]:
    marks = []
    member = history.members.get(account)
    if member is not None and any(f <= r.round_id <= u for f, u in member.sit_outs):
        marks.append("sat-out")
    if account == r.merge_peer:
        marks.append("merge-peer")
    if account == r.key_steward:
        marks.append("key-steward")
    if any(x.previous == account for x in r.replacements):
        marks.append("replaced")
    if account in r.joined:
        marks.append("joined")
    attempt = r.aggregate_attempt if r.aggregate_attempt is not None else r.attempt
    committed = any(c.account == account for c in r.commits_of_attempt(attempt))
    if committed:
        marks.append("committed")
    if account in r.contributors:
        marks.append("contributed")
    elif committed and r.aggregate_hash is not None:
        marks.append("left-out")
    if any(a == account for a, _ in r.missed):
        marks.append("missed")
    if account in r.left:
        marks.append("left")
    if account in r.acks:
        agrees = r.final_model is None or r.acks[account] == r.final_model
        marks.append("acked" if agrees else "dissent")
    return marks


def _current(history: ConsortiumHistory, info: RoundInfo | None) -> dict[str, Any] | None:
    """The newest round as the contract derives it now, when its events do not end it yet."""
    if info is None:
        return None
    r = history.rounds.get(info.round_id)
    if r is not None and (r.final_model is not None or r.lapse_reason is not None):
        return None
    return {
        "round": info.round_id,
        "derived": True,
        "state": info.state.name,
        "lapse_reason": None if info.lapse_reason.value == 0 else info.lapse_reason.name,
        "attempt": info.attempt,
        "participants": list(info.participants),
        "merge_peer": info.merge_peer,
        "key_steward": info.key_steward,
        "deadlines": {
            "join": info.join_deadline,
            "key": info.key_deadline,
            "commit": info.commit_deadline,
            "merge": info.merge_deadline,
            "ack": info.ack_deadline,
        },
    }


# --- the page ------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _when(ts: int | None) -> str:
    if not ts:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _t(ts: int | None) -> str:
    return f'<span class="t">{_e(_when(ts))}</span>'


def _hash(value: str | None, n: int = 10) -> str:
    if not value:
        return '<span class="dim">-</span>'
    shown = value if len(value) <= n + 4 else value[: n + 2] + "…"
    return f'<code title="{_e(value)}">{_e(shown)}</code>'


#: How much of a long history the page shows in full; the rest is summarised (and in --json).
ROUNDS_SHOWN = 50  # newest rounds in the rounds table; older ones in closed blocks of:
ROUNDS_BLOCK = 100
GRID_ROUNDS = 30  # newest rounds in the participation grid (the strip shows every round)
DETAILED_ROUNDS = 20  # newest rounds whose timeline is shown, beside those with findings
MAX_DETAILED = 150  # at most this many round timelines (errors first, then warnings, notes)
METRICS_ROUNDS = 50  # newest rounds in the table of reported metrics
MAX_NOTES = 100  # notes (info findings) listed; errors and warnings always are
CHART_POINTS = 250  # a chart's line has at most this many points (means of round buckets)

_SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}


class _Page:
    """Renders one report; knows the member names, so accounts read as people."""

    def __init__(self, report: Mapping[str, Any]) -> None:
        self.r = report
        self.names: Mapping[str, str] = report["names"]
        self.task_names: Mapping[str, str] = report.get("task_names") or {}
        self.findings_by_round: dict[int, list[Mapping[str, Any]]] = {}
        for f in report["findings"]:
            if f["round"] is not None:
                self.findings_by_round.setdefault(f["round"], []).append(f)
        self.detailed = self._detailed_rounds()

    def _detailed_rounds(self) -> set[int]:
        """The rounds whose timeline the page shows: those with findings (errors first), the
        newest ones and the one in progress."""
        ids = [x["round"] for x in self.r["rounds"]]
        ranked = sorted(
            self.findings_by_round,
            key=lambda rid: (
                min(_SEVERITY_RANK.get(f["severity"], 3) for f in self.findings_by_round[rid]),
                -rid,
            ),
        )
        chosen = set(ranked[:MAX_DETAILED]) | set(ids[-DETAILED_ROUNDS:])
        current = (self.r.get("current_round") or {}).get("round")
        if current is not None:
            chosen.add(current)
        return chosen & set(ids)

    def who(self, address: str | None) -> str:
        if not address:
            return '<span class="dim">-</span>'
        short = address[:6] + "…" + address[-4:]
        name = self.names.get(address)
        label = f"{_e(name)} " if name is not None else ""
        return f'<span class="who" title="{_e(address)}">{label}<code>{_e(short)}</code></span>'

    def name(self, address: str | None) -> str:
        """An account in few characters: its name (the address on hover), or a short address."""
        if not address:
            return '<span class="dim">-</span>'
        name = self.names.get(address)
        if name is None:
            return f'<code title="{_e(address)}">{_e(address[:6] + "…" + address[-4:])}</code>'
        return f'<span class="who" title="{_e(address)}">{_e(name)}</span>'

    def page(self) -> str:
        r = self.r
        title = f"Swarm audit report: {r['contract']}"
        body = "\n".join(
            [
                self.header(),
                self.summary(),
                self.findings(),
                self.metrics(),
                self.participation(),
                self.rounds(),
                self.consortium(),
                self.timeline(),
                "<footer>Made by <code>swarm audit report</code> from the contract's events. "
                "The ledger holds hashes, sample counts and roles: never data, never weights. "
                "docs/auditor-guide.md explains every finding; <code>--json</code> writes all "
                "of the data, including what a long history's page only summarises.</footer>",
            ]
        )
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta http-equiv="Content-Security-Policy" '
            "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
            f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
        )

    # --- sections --------------------------------------------------------------------------

    def header(self) -> str:
        r, s = self.r, self.r["summary"]
        counts = s["findings"]
        verdict = "error" if counts["error"] else "warning" if counts["warning"] else "ok"
        text = (
            f"{counts['error']} error{'s' * (counts['error'] != 1)}, "
            f"{counts['warning']} warning{'s' * (counts['warning'] != 1)}, "
            f"{counts['info']} note{'s' * (counts['info'] != 1)}"
        )
        headline = {
            "error": "The history breaks the protocol's rules",
            "warning": "The history follows the rules; some events need a look",
            "ok": "The history follows the protocol's rules",
        }[verdict]
        block = f", block {r['block_number']}" if r.get("block_number") is not None else ""
        return (
            "<header>\n<h1>Swarm audit report</h1>\n"
            '<dl class="meta">'
            f"<dt>Ledger</dt><dd><code>{_e(r['contract'])}</code></dd>"
            + (
                f"<dt>Consortium</dt><dd><code>{_e(r['consortium'])}</code></dd>"
                if r.get("consortium")
                else ""
            )
            + f"<dt>Chain</dt><dd><code>{_e(r['chain_url'])}</code>{_e(block)}</dd>"
            f"<dt>Generated</dt><dd>{_t(r['generated_at'])}</dd>"
            "</dl>\n"
            f'<div class="verdict {verdict}"><strong>{_e(headline)}</strong>'
            f"<span>{_e(text)}</span></div>\n"
            '<ul class="stats">'
            f"<li><b>{s['members']}</b> members ({s['active_members']} active)</li>"
            f"<li><b>{s['rounds']}</b> rounds</li>"
            f"<li><b>{s['finalized']}</b> finalized</li>"
            f"<li><b>{s['lapsed']}</b> lapsed</li>"
            "</ul>\n</header>"
        )

    def summary(self) -> str:
        s = self.r["summary"]
        task = s.get("task")
        task_html = (
            f'<code title="{_e(s.get("task_id"))}">{_e(task)}</code>'
            if task and task != s.get("task_id")
            else _hash(task, 18)
            + (' <span class="dim">(not a task this version knows)</span>' if task else "")
        )
        latest = s.get("latest_model")
        facts = [
            ("Task", task_html),
            (
                "Rounds",
                f"{s['rounds']} ({s['finalized']} finalized, {s['lapsed']} lapsed, "
                f"{s.get('replacements', 0)} role replacements, "
                f"{s.get('missed_commits', 0)} missed commits, {s.get('sit_outs', 0)} sit-outs)",
            ),
            (
                "Period",
                f"{_t(s.get('first_opened_at'))} to {_t(s.get('last_opened_at'))} (rounds opened)",
            ),
            (
                "Latest model",
                f"round {self.round_link(latest['round'])}: {_hash(latest['hash'], 66)}"
                if latest
                else '<span class="dim">none finalized yet</span>',
            ),
        ]
        dl = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts)
        rows = []
        for h in self.r.get("hospitals", []):
            c = h["counts"]
            m = h["latest_metrics"]
            status = (
                '<span class="outcome finalized">active</span>'
                if h["active"]
                else '<span class="outcome lapsed">removed</span>'
                if h["account"] in self.names
                else '<span class="dim">not a member</span>'
            )
            rows.append(
                f"<tr><td>{self.name(h['account'])}</td><td>{status}</td>"
                + "".join(f"<td class=num>{_e(c[k])}</td>" for k in _TOTALS)
                + f"<td class=num>{self.round_link(h['last_round'])}</td>"
                + (
                    f"<td class=num>{m['accuracy']:.3f}</td><td class=num>{m['auc']:.3f}</td>"
                    f"<td class=num>{self.round_link(m['round'])}</td>"
                    if m
                    else '<td class="num dim">-</td>' * 3
                )
                + "</tr>"
            )
        head = ["hospital", "status", "joined", "in aggr.", "left out", "missed commit",
                "sat out", "merge peer", "key stew.", "replaced", "acked", "dissent",
                "last round", "accuracy", "AUC", "of round"]  # fmt: skip
        table = _table(head, rows, "hospitals")
        body = (
            f'<dl class="meta">{dl}</dl>'
            "<h3>Hospitals over all rounds</h3><p>How many rounds each hospital joined, was in "
            "the aggregate, was left out of it, joined without committing (a missed commit), "
            "sat out after missing too many in a row, held a role, was replaced in one, "
            "acknowledged the finalized model or a different one; its newest self-reported "
            "metrics.</p>" + table
        )
        return _section("summary", "Summary", body)

    def findings(self) -> str:
        findings = self.r["findings"]
        if not findings:
            return _section("findings", "Findings", "<p>No findings: nothing to report.</p>")
        serious = [f for f in findings if f["severity"] != "info"]
        notes = [f for f in findings if f["severity"] == "info"]
        shown = serious + notes[-MAX_NOTES:]
        rows = [
            f'<tr class="sev-{_e(f["severity"])}">'
            f'<td><span class="badge {_e(f["severity"])}">{_e(f["severity"])}</span></td>'
            f"<td><code class=kind>{_e(f['kind'])}</code></td>"
            f"<td>{self.round_link(f['round'])}</td>"
            f"<td>{self.who(f['account'])}</td>"
            f"<td>{_e(f['message'])}</td></tr>"
            for f in shown
        ]
        table = _table(["severity", "kind", "round", "account", "what"], rows, "findings")
        left = len(notes) - MAX_NOTES
        if left > 0:
            kinds: dict[str, int] = {}
            for f in notes[:left]:
                kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
            table += (
                f"<p class=dim>and {left} older notes not listed: "
                + ", ".join(f"{n} <code>{_e(k)}</code>" for k, n in kinds.items())
                + " (<code>swarm audit verify</code> lists every one).</p>"
            )
        return _section("findings", "Findings", table)

    def round_link(self, round_id: int | None) -> str:
        if round_id is None:
            return '<span class="dim">-</span>'
        target = "round" if round_id in self.detailed else "row-round"
        return f'<a href="#{target}-{_e(round_id)}">{_e(round_id)}</a>'

    def round_row(self, x: Mapping[str, Any]) -> str:
        outcome = x["outcome"]
        cls = outcome.split(" ")[0]
        replaced = ", ".join(
            f"{_e(p['role'])}: {self.name(p['previous'])} → {self.name(p['next'])}"
            for p in x["replacements"]
        )
        agg = x["aggregate"]
        return (
            f'<tr class="round-row" id="row-round-{_e(x["round"])}">'
            f"<td>{self.round_link(x['round'])}</td>"
            f"<td>{_t(x['opened_at'])}</td>"
            f"<td>{_hash(x['base_model'])}</td>"
            f"<td class=num>{len(x['joined'])}</td>"
            f"<td>{self.name(x['merge_peers'][-1] if x['merge_peers'] else None)}</td>"
            f"<td>{self.name(x['key_stewards'][-1] if x['key_stewards'] else None)}</td>"
            f"<td>{replaced or '<span class=dim>-</span>'}</td>"
            f"<td class=num>{len(agg['contributors']) if agg else '-'}</td>"
            f"<td class=num>{_e(agg['total_samples']) if agg else '-'}</td>"
            f'<td><span class="outcome {_e(cls)}">{_e(outcome)}</span></td>'
            f"<td>{_hash(x['final_model'])}</td></tr>"
        )

    def rounds(self) -> str:
        rounds = self.r["rounds"]
        current = self.current()
        if not rounds:
            return _section("rounds", "Rounds", "<p>No round has been opened yet.</p>" + current)
        head = ["round", "opened", "base model", "joined", "merge peer", "key steward",
                "replacements", "contributors", "samples", "outcome", "model"]  # fmt: skip
        newest = rounds[-ROUNDS_SHOWN:]
        older = rounds[: len(rounds) - len(newest)]
        intro = ""
        if older:
            intro = (
                f"<p>The newest {len(newest)} of {len(rounds)} rounds, newest last; the older "
                f"ones below in blocks of {ROUNDS_BLOCK}.</p>"
            )
        body = intro + _table(head, [self.round_row(x) for x in newest], "rounds") + current
        blocks = []
        for i in range(0, len(older), ROUNDS_BLOCK):
            block = older[i : i + ROUNDS_BLOCK]
            outcomes: dict[str, int] = {}
            for x in block:
                word = x["outcome"].split(" ")[0]
                outcomes[word] = outcomes.get(word, 0) + 1
            counts = ", ".join(f"{n} {_e(k)}" for k, n in outcomes.items())
            blocks.append(
                f'<details class="block"><summary>Rounds {block[0]["round"]} to '
                f"{block[-1]['round']} ({counts})</summary>"
                + _table(head, [self.round_row(x) for x in block])
                + "</details>"
            )
        return _section("rounds", "Rounds", body + "".join(blocks))

    def current(self) -> str:
        c = self.r.get("current_round")
        if not c:
            return ""
        deadlines = ", ".join(f"{_e(k)} {_t(v)}" for k, v in c["deadlines"].items() if v)
        lapse = f" ({_e(c['lapse_reason'].lower().replace('_', ' '))})" if c["lapse_reason"] else ""
        return (
            '<div class="derived"><b>Derived, not an event:</b> round '
            f"{_e(c['round'])} is <b>{_e(c['state'].lower())}</b>{lapse} by the contract's view "
            f"now (attempt {_e(c['attempt'])}, {len(c['participants'])} joined"
            f"{'; deadlines: ' + deadlines if deadlines else ''}). A lapse is recorded as an "
            "event only when the next round opens.</div>"
        )

    def participation(self) -> str:
        all_rounds = [x["round"] for x in self.r["rounds"]]
        if not all_rounds:
            return ""
        shown = all_rounds[-GRID_ROUNDS:]
        first = len(all_rounds) - len(shown)
        head = "".join(f"<th>{self.round_link(rid)}</th>" for rid in shown)
        rows = []
        for row in self.r["participation"]:
            cells = []
            for cell in row["rounds"][first:]:
                marks = cell["marks"]
                shown_marks = "".join(
                    f'<span class="mk mk-{_e(m)}">{_e(MARKS[m][0])}</span>' for m in marks
                )
                what = "; ".join(MARKS[m][1] for m in marks) or "did not take part"
                cells.append(
                    f'<td class="cell {_state(marks)}" title="round {_e(cell["round"])}: '
                    f'{_e(what)}">{shown_marks or "·"}</td>'
                )
            rows.append(
                f"<tr><th class=rowhead>{self.who(row['account'])}</th>{''.join(cells)}</tr>"
            )
        legend = " ".join(
            f'<span class="mk mk-{_e(k)}">{_e(sym)}</span> {_e(text)}'
            for k, (sym, text) in MARKS.items()
        )
        intro = ""
        if first:
            intro = (
                "<p>Every round, one column each (green: in the aggregate; amber: committed "
                "but left out; red: joined but missed its commit; blue: joined only; violet: "
                "sat out; grey: did not take part):</p>"
                + _participation_strip(self.r["participation"], all_rounds, self.names)
                + f"<p>The newest {len(shown)} rounds in detail:</p>"
            )
        body = (
            intro + f'<div class="scroll"><table class="grid" id="participation"><thead><tr>'
            f"<th>hospital \\ round</th>{head}</tr></thead><tbody>{''.join(rows)}"
            f"</tbody></table></div><p class=legend>{legend}</p>"
        )
        return _section("participation", "Participation", body)

    def metrics(self) -> str:
        metrics = self.r["metrics"]
        if not metrics:
            return _section("metrics", "Metrics", "<p>No hospital reported test metrics.</p>")
        accounts = list(dict.fromkeys(m["account"] for m in metrics))
        by_account: dict[str, list[Mapping[str, Any]]] = {a: [] for a in accounts}
        for m in metrics:
            by_account[m["account"]].append(m)
        charts = "".join(
            _line_chart(
                title,
                {
                    self.names.get(a, a): [(m["round"], m[key]) for m in by_account[a]]
                    for a in accounts
                },
            )
            for key, title in (("accuracy", "Accuracy"), ("auc", "AUC"))
        )
        rounds_with = list(dict.fromkeys(m["round"] for m in metrics))
        recent = set(rounds_with[-METRICS_ROUNDS:])
        listed = [m for m in metrics if m["round"] in recent]
        rows = [
            f"<tr><td>{self.round_link(m['round'])}</td><td>{self.name(m['account'])}</td>"
            f"<td class=num>{m['accuracy']:.3f}</td><td class=num>{m['auc']:.3f}</td>"
            f"<td class=num>{m['loss']:.3f}</td><td class=num>{_e(m['test_samples'])}</td>"
            f"<td>{_hash(m['model_hash'])}</td></tr>"
            for m in listed
        ]
        table = _table(
            ["round", "hospital", "accuracy", "AUC", "loss", "test samples", "model"],
            rows,
            "metrics-table",
        )
        what = (
            "All reported values"
            if len(listed) == len(metrics)
            else f"The values of the newest {len(recent)} rounds ({len(listed)} of "
            f"{len(metrics)}; <code>--json</code> has all)"
        )
        body = (
            "<p>Each hospital's test metrics of each finalized model on its own data, as it "
            "reported them (self-reported: the ledger cannot check them).</p>"
            f'<div class="charts">{charts}</div><details><summary>{what}</summary>'
            f"{table}</details>"
        )
        return _section("metrics", "Metrics", body)

    def consortium(self) -> str:
        members = [
            f"<tr><td>{_e(m['name'])}{' <span class=tag>admin</span>' if m['admin'] else ''}"
            f"</td><td><code>{_e(m['address'])}</code><br>{_hash(m['peer_id'], 24)}"
            f"<br>encryption key {_hash(m.get('encryption_key'), 18)}"
            f"{self.rotations(m)}</td>"
            f"<td>{'<br>'.join(f'<code>{_e(a)}</code>' for a in m['multiaddrs']) or '-'}</td>"
            f"<td>{_t(m['added_at'])}<br>by {self.who(m['added_by'])}</td>"
            f"<td>{self.status(m)}</td></tr>"
            for m in self.r["members"]
        ]
        admins = [
            f"<tr><td>{_t(c['timestamp'])}</td>"
            f"<td>{_e(c.get('role', 'admin'))} {'granted' if c['added'] else 'revoked'}</td>"
            f"<td>{self.who(c['account'])}</td><td>{self.who(c['by'])}</td></tr>"
            for c in self.r["admin_changes"]
        ]
        params = []
        for p in self.r["params"]:
            values = "".join(
                f'<li class="{"changed" if k in p["changed"] else ""}"><code>{_e(k)}</code> '
                f"{self.param_value(k, v)}</li>"
                for k, v in p["values"].items()
            )
            params.append(
                f"<tr><td class=num>{_e(p.get('version'))}</td>"
                f"<td>{_t(p['timestamp'])}</td><td>{self.who(p['by'])}</td>"
                f'<td><ul class="params">{values}</ul></td></tr>'
            )
        body = (
            "<h3>Members</h3>"
            + _table(
                ["name", "address and PeerID", "listens on", "admitted", "status"],
                members,
                "members",
            )
            + "<h3>Roles</h3><p>The owner (OpenZeppelin's DEFAULT_ADMIN_ROLE) grants and "
            "revokes the admin role and hands itself over in two steps; admins admit and "
            "remove members and set parameters.</p>"
            + _table(["when", "role", "account", "by"], admins, "admins")
            + "<h3>Parameters</h3><p>Every change; changed values are highlighted.</p>"
            + _table(["version", "when", "by", "parameters"], params, "params")
        )
        return _section("consortium", "Consortium", body)

    def param_value(self, key: str, value: Any) -> str:
        if key == "taskId" and value in self.task_names:
            return f'<code title="{_e(value)}">{_e(self.task_names[value])}</code>'
        if isinstance(value, str) and value.startswith("0x"):
            return _hash(value, 10)
        return _e(value)

    def rotations(self, m: Mapping[str, Any]) -> str:
        rotated = m.get("key_rotations") or []
        return f" (rotated {len(rotated)} times)" if rotated else ""

    def status(self, m: Mapping[str, Any]) -> str:
        if m["active"]:
            return '<span class="outcome finalized">active</span>'
        return (
            f'<span class="outcome lapsed">removed</span> {_t(m["removed_at"])}<br>'
            f"by {self.who(m['removed_by'])}"
        )

    def timeline(self) -> str:
        events_by_round: dict[int | None, list[Mapping[str, Any]]] = {}
        for e in self.r["timeline"]:
            events_by_round.setdefault(e["round"], []).append(e)
        parts = []
        for x in self.r["rounds"]:
            rid = x["round"]
            if rid not in self.detailed:
                continue
            notable = any(f["severity"] != "info" for f in self.findings_by_round.get(rid, []))
            is_current = (self.r.get("current_round") or {}).get("round") == rid
            is_open = " open" if notable or is_current else ""
            parts.append(
                f'<details class="round" id="round-{_e(rid)}"{is_open}>'
                f"<summary>Round {_e(rid)}: {_e(x['outcome'])}</summary>"
                f"{self.round_detail(x)}"
                + _table(
                    ["time", "block", "event"],
                    [
                        f"<tr><td>{_t(e['timestamp'])}</td><td class=num>{_e(e['block'])}"
                        f"</td><td>{_e(e['text'])}</td></tr>"
                        for e in events_by_round.get(rid, [])
                    ],
                    f"events-{rid}",
                )
                + "</details>"
            )
        others = [
            f"<tr><td>{_t(e['timestamp'])}</td><td class=num>{_e(e['block'])}</td>"
            f"<td>{_e(e['text'])}</td></tr>"
            for e in events_by_round.get(None, [])
        ]
        left = len(self.r["rounds"]) - len(parts)
        skipped = (
            f"<p>{left} more rounds had no finding; their facts are in the rounds table, "
            "their events in <code>swarm audit round N</code>.</p>"
            if left
            else ""
        )
        body = (
            "<p>Each round's facts, then its events in chain order: every round with a "
            f"finding and the newest {DETAILED_ROUNDS}. Rounds with warnings or errors start "
            "open.</p>"
            + "".join(parts)
            + skipped
            + '<details class="round" id="consortium-events"><summary>Membership, admin and '
            f"parameter events ({len(others)})</summary>"
            + _table(["time", "block", "event"], others, "consortium-events-table")
            + "</details>"
        )
        return _section("timeline", "Timeline", body)

    def round_detail(self, x: Mapping[str, Any]) -> str:
        roles = {0: " — merge peer", 1: " — key steward"}
        order = "".join(
            f"<li>{self.who(a)}{roles.get(i, '')}</li>" for i, a in enumerate(x["order"])
        )
        facts = [
            ("opened", f"{_t(x['opened_at'])} by {self.who(x['opened_by'])}"),
            ("base model", _hash(x["base_model"], 66)),
            ("min. peers", _e(x["min_peers"])),
            ("joined", ", ".join(self.who(a) for a in x["joined"]) or "-"),
        ]
        if x.get("draw_block") is not None:
            facts.append(
                (
                    "role draw",
                    f"hash of block {_e(x['draw_block'])}; seed {_hash(x.get('seed'), 18)}",
                )
            )
        if order:
            facts.append(("role order", f"<ol>{order}</ol>"))
        for p in x["replacements"]:
            facts.append(
                (
                    f"{p['role']} replaced",
                    f"{self.who(p['previous'])} → {self.who(p['next'])} "
                    f"(attempt {_e(p['attempt'])}, {_t(p['timestamp'])}, called by "
                    f"{self.who(p['by'])})",
                )
            )
        for k in x["round_keys"]:
            facts.append(
                (f"round key, attempt {k['attempt']}",
                 f"{_hash(k['key_hash'], 66)} by {self.who(k['steward'])}")
            )  # fmt: skip
        agg = x["aggregate"]
        if agg:
            facts.append(
                (
                    "aggregate",
                    f"{_hash(agg['hash'], 66)} by {self.who(agg['merge_peer'])}, attempt "
                    f"{_e(agg['attempt'])}: {len(agg['contributors'])} contributors, "
                    f"{_e(agg['total_samples'])} samples",
                )
            )
        for m in x.get("missed_commits", []):
            facts.append(
                ("missed commit", f"{self.who(m['account'])} ({_e(m['in_a_row'])} in a row)")
            )
        for o in x.get("sit_outs", []):
            facts.append(
                (
                    "sits out",
                    f"{self.who(o['account'])}: rounds {_e(o['from'])} to {_e(o['until'])}",
                )
            )
        for a in x.get("left", []):
            facts.append(("left the round", f"{self.who(a)} (removed from the consortium)"))
        if x["final_model"]:
            facts.append(("finalized model", _hash(x["final_model"], 66)))
        if x["lapse_reason"]:
            facts.append(("lapsed", _e(x["lapse_reason"].lower().replace("_", " "))))
        dl = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts)
        contributors = set(agg["contributors"]) if agg else set()
        commits = [
            f"<tr><td class=num>{_e(c['attempt'])}</td><td>{self.who(c['account'])}</td>"
            f"<td>{_hash(c['update_hash'], 18)}</td><td class=num>{_e(c['sample_count'])}</td>"
            f"<td>{_t(c['timestamp'])}</td>"
            f"<td>{self.commit_fate(c, agg, contributors)}</td></tr>"
            for c in x["commits"]
        ]
        acks = [
            f"<tr><td>{self.who(a)}</td><td>{_hash(h, 18)}</td><td>"
            + (
                '<span class="outcome finalized">agrees</span>'
                if x["final_model"] and h == x["final_model"]
                else '<span class="outcome lapsed">differs</span>'
                if x["final_model"]
                else "-"
            )
            + "</td></tr>"
            for a, h in x["acks"].items()
        ]
        out = f'<dl class="facts">{dl}</dl>'
        if commits:
            out += "<h4>Commitments</h4>" + _table(
                ["attempt", "hospital", "update hash", "samples", "when", "aggregate"], commits
            )
        if acks:
            out += "<h4>Acknowledgements</h4>" + _table(["hospital", "model", "vs. final"], acks)
        return out

    def commit_fate(
        self, c: Mapping[str, Any], agg: Mapping[str, Any] | None, contributors: set[str]
    ) -> str:
        if not agg:
            return "-"
        if c["attempt"] != agg["attempt"]:
            return '<span class="dim">earlier attempt</span>'
        if c["account"] in contributors:
            return '<span class="outcome finalized">included</span>'
        return '<span class="outcome progress">left out</span>'


def render_html(report: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page."""
    return _Page(report).page()


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{_e(anchor)}">\n<h2>{_e(title)}</h2>\n{body}\n</section>'


def _table(head: Sequence[str], rows: Sequence[str], table_id: str | None = None) -> str:
    ident = f' id="{_e(table_id)}"' if table_id else ""
    cols = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(rows) or f'<tr><td colspan="{len(head)}" class="dim">none</td></tr>'
    return (
        f'<div class="scroll"><table{ident}><thead><tr>{cols}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


# --- the charts ----------------------------------------------------------------------------

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
            "#e377c2", "#7f7f7f", "#bcbd22"]  # fmt: skip

#: a chart's drawing size (it is scaled to the page's width) and its margins
_WIDTH, _HEIGHT = 1180, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 20, 32, 40


def _state(marks: Sequence[str]) -> str:
    """A participation cell's colour class."""
    return (
        "contributed" if "contributed" in marks
        else "left-out" if "left-out" in marks
        else "missed" if "missed" in marks
        else "joined" if "joined" in marks
        else "sat-out" if "sat-out" in marks
        else "absent"
    )  # fmt: skip


def nice_ticks(lo: float, hi: float, most: int = 10) -> list[float]:
    """At most ``most`` round values (1, 2 or 5 times a power of ten apart) in [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, most - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(k * power for k in (1, 2, 5, 10) if k * power >= raw - 1e-12)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def downsample(
    points: Sequence[tuple[int, float]], lo: int, hi: int, buckets: int
) -> list[tuple[float, float]]:
    """``points`` as the mean of each of ``buckets`` equal spans of rounds in [lo, hi] (at
    the mean round of the points in it), or unchanged if there are no more than that."""
    if len(points) <= buckets:
        return [(float(x), y) for x, y in sorted(points)]
    width = (hi - lo + 1) / buckets
    sums: dict[int, list[float]] = {}
    for x, y in points:
        acc = sums.setdefault(min(buckets - 1, int((x - lo) / width)), [0.0, 0.0, 0.0])
        acc[0] += x
        acc[1] += y
        acc[2] += 1
    return [(sx / n, sy / n) for _, (sx, sy, n) in sorted(sums.items())]


def _line_chart(title: str, series: Mapping[str, Sequence[tuple[int, float]]]) -> str:
    """An inline SVG line chart, as wide as the page: one line per hospital, rounds on x (by
    number, so lapsed rounds are gaps), the metric on y. A long history is drawn as the mean of
    spans of rounds (at most ``CHART_POINTS`` per line); the axes get at most ten labels."""
    xs = sorted({x for points in series.values() for x, _ in points})
    ys = [y for points in series.values() for _, y in points]
    if not xs:
        return ""
    # Whole tenths around the values, within [0, 1]: metrics are fractions.
    lo = max(0.0, math.floor(min(ys) * 10 + 1e-9) / 10)
    hi = min(1.0, math.ceil(max(ys) * 10 - 1e-9) / 10)
    if hi - lo < 0.1:
        lo, hi = max(0.0, hi - 0.1), max(hi, 0.1)
    x0, x1 = xs[0], xs[-1]
    plot_w = _WIDTH - _LEFT - _RIGHT

    def px(x: float) -> float:
        if x1 == x0:
            return _LEFT + plot_w / 2
        return _LEFT + (x - x0) * plot_w / (x1 - x0)

    def py(y: float) -> float:
        return _TOP + (hi - y) * (_HEIGHT - _TOP - _BOTTOM) / (hi - lo)

    averaged = len(xs) > CHART_POINTS
    span = math.ceil((x1 - x0 + 1) / CHART_POINTS) if averaged else 1
    subtitle = f" (mean of every {span} rounds)" if averaged else ""
    parts = [
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
        f'aria-label="{_e(title)} per round">',
        f'<text x="{_LEFT}" y="20" class="ctitle">{_e(title)} per round{_e(subtitle)}</text>',
    ]
    for y in nice_ticks(lo, hi, 8):
        parts.append(
            f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            'class="gridline"/>'
            f'<text x="{_LEFT - 8}" y="{py(y) + 4:.1f}" class="tick" text-anchor="end">'
            f"{y:.2f}</text>"
        )
    x_ticks = xs if len(xs) <= 12 else [t for t in nice_ticks(x0, x1, 11) if t == int(t)]
    for x in x_ticks:
        parts.append(
            f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{_HEIGHT - _BOTTOM}" '
            f'y2="{_HEIGHT - _BOTTOM + 5}" class="axis"/>'
            f'<text x="{px(x):.1f}" y="{_HEIGHT - _BOTTOM + 19}" class="tick" '
            f'text-anchor="middle">{int(x)}</text>'
        )
    parts.append(
        f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{_HEIGHT - _BOTTOM}" '
        f'y2="{_HEIGHT - _BOTTOM}" class="axis"/>'
        f'<text x="{_LEFT + plot_w / 2:.0f}" y="{_HEIGHT - 4}" class="tick" '
        'text-anchor="middle">round</text>'
    )
    legend = []
    for i, (label, points) in enumerate(series.items()):
        color = _PALETTE[i % len(_PALETTE)]
        line = downsample(points, x0, x1, CHART_POINTS)
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in line)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        if len(line) <= 60:  # dots (with the exact value on hover) while they stay apart
            for x, y in line:
                parts.append(
                    f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{color}">'
                    f"<title>{_e(label)}, round {x:g}: {y:.3f}</title></circle>"
                )
        legend.append(
            f'<li><span class="swatch" style="background:{color}"></span>{_e(label)}</li>'
        )
    parts.append("</svg>")
    return f'<figure>{"".join(parts)}<ul class="clegend">{"".join(legend)}</ul></figure>'


_STRIP_COLOURS = {"contributed": "#9fd8ae", "left-out": "#f3c66b", "missed": "#f0a39c",
                  "joined": "#a9c7ee", "sat-out": "#cfc3ea", "absent": "#eef0f3"}  # fmt: skip


def _participation_strip(
    participation: Sequence[Mapping[str, Any]], rounds: Sequence[int], names: Mapping[str, str]
) -> str:
    """Every round of every hospital as one thin coloured column, runs of equal cells drawn
    as one rectangle (small even for thousands of rounds), with round numbers below."""
    row_h, gap, left, right = 18, 4, 250, 20
    plot_w = _WIDTH - left - right
    n = len(rounds)
    height = len(participation) * (row_h + gap) + 30
    parts = [
        f'<svg class="strip" viewBox="0 0 {_WIDTH} {height}" role="img" '
        'shape-rendering="crispEdges" aria-label="participation in every round">'
    ]
    for i, row in enumerate(participation):
        y = i * (row_h + gap)
        label = names.get(row["account"]) or row["account"]
        shown = label if len(label) <= 34 else label[:33] + "…"
        parts.append(
            f'<text x="{left - 8}" y="{y + 13}" class="tick" text-anchor="end">{_e(shown)}'
            f"<title>{_e(label)} ({_e(row['account'])})</title></text>"
        )
        states = [_state(c["marks"]) for c in row["rounds"]]
        start = 0
        narrow: list[str] = []  # drawn last, at least 2 units wide: one odd round among 1,000 shows
        for j in range(1, n + 1):
            if j == n or states[j] != states[start]:
                x = left + start * plot_w / n
                w = (j - start) * plot_w / n
                rect = (
                    f'<rect x="{x:.2f}" y="{y}" width="{max(w, 2.0):.2f}" height="{row_h}" '
                    f'fill="{_STRIP_COLOURS[states[start]]}"/>'
                )
                (narrow if w < 2 else parts).append(rect)
                start = j
        parts.extend(narrow)
    base = len(participation) * (row_h + gap)
    for t in nice_ticks(rounds[0], rounds[-1], 11):
        k = bisect.bisect_left(rounds, t)  # the column of round t (or the next there is)
        if k < n and t == int(t):
            x = left + (k + 0.5) * plot_w / n
            parts.append(
                f'<text x="{x:.1f}" y="{base + 14}" class="tick" text-anchor="middle">'
                f"{int(t)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
:root { --fg:#1d2430; --dim:#6b7280; --line:#e3e6eb; --bg:#fff; --head:#f5f7fa;
  --ok:#1b7f3b; --okbg:#e6f4ea; --warn:#8a5a00; --warnbg:#fff4d6; --err:#b42318;
  --errbg:#fde8e7; --info:#1e5aa8; --infobg:#e8f0fb; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 8px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px;
  border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
h4 { font-size: 13px; margin: 14px 0 4px; color: var(--dim); text-transform: uppercase;
  letter-spacing: .04em; }
code { font: 12px/1.3 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
a { color: var(--info); text-decoration: none; } a:hover { text-decoration: underline; }
.dim { color: var(--dim); }
.t, code.kind { white-space: nowrap; }
dl.meta { display:grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0 0 14px; }
dl.meta dt { color: var(--dim); }
dl.meta dd { margin: 0; }
.verdict { display:flex; gap: 16px; align-items: baseline; padding: 12px 16px; border-radius: 8px;
  border: 1px solid; font-size: 15px; }
.verdict.ok { background: var(--okbg); border-color: #b7dfc2; color: var(--ok); }
.verdict.warning { background: var(--warnbg); border-color: #f1d58a; color: var(--warn); }
.verdict.error { background: var(--errbg); border-color: #f3b4ae; color: var(--err); }
ul.stats { display:flex; gap: 28px; list-style:none; padding:0; margin: 12px 0 0;
  color: var(--dim); }
ul.stats b { color: var(--fg); font-size: 18px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 10px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
thead th { background: var(--head); font-weight: 600; font-size: 12px; color: #3b4452;
  white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display:inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; }
.badge.error { background: var(--errbg); color: var(--err); }
.badge.warning { background: var(--warnbg); color: var(--warn); }
.badge.info { background: var(--infobg); color: var(--info); }
.tag { padding: 0 6px; border-radius: 8px; background: var(--head); color: var(--dim);
  font-size: 11px; }
.outcome { display:inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; }
.outcome.finalized { background: var(--okbg); color: var(--ok); }
.outcome.lapsed { background: var(--errbg); color: var(--err); }
.outcome.in, .outcome.progress { background: var(--warnbg); color: var(--warn); }
.who code { color: var(--dim); white-space: nowrap; }
.derived { margin: 8px 0; padding: 8px 12px; border-left: 4px solid var(--info);
  background: var(--infobg); }
table.grid { width: auto; }
table.grid td.cell { text-align: center; min-width: 74px; white-space: nowrap;
  border-left: 1px solid #fff; }
table.grid th.rowhead { font-weight: normal; white-space: nowrap; }
td.cell.contributed { background: var(--okbg); }
td.cell.left-out { background: var(--warnbg); }
td.cell.joined { background: var(--infobg); }
td.cell.missed { background: var(--errbg); }
td.cell.sat-out { background: #efeaf9; }
td.cell.absent { color: #c0c5cc; }
.mk { display:inline-block; min-width: 15px; margin: 0 1px; padding: 0 2px; border-radius: 3px;
  font: 600 11px/16px ui-monospace, Menlo, Consolas, monospace; text-align:center; }
.mk-merge-peer, .mk-key-steward { background: #1d2430; color: #fff; }
.mk-replaced { background: var(--err); color: #fff; }
.mk-left-out, .mk-dissent, .mk-missed, .mk-left { color: var(--err); }
.mk-sat-out { color: #5b3fa8; }
.mk-acked { color: var(--ok); }
p.legend { color: var(--dim); font-size: 12px; }
p.legend .mk { margin-left: 10px; }
.charts { display:flex; flex-direction: column; gap: 18px; }
figure { margin: 0; }
svg.chart, svg.strip { display: block; width: 100%; height: auto; }
svg.chart { background: #fcfcfd; border: 1px solid var(--line); border-radius: 6px; }
svg .gridline { stroke: #e6e8ec; stroke-width: 1; }
svg .axis { stroke: #9aa1ab; stroke-width: 1; }
svg .tick { font: 13px system-ui, sans-serif; fill: #4b5563; }
svg .ctitle { font: 600 15px system-ui, sans-serif; fill: #1d2430; }
details.block { margin: 6px 0; }
details.block > summary { cursor: pointer; color: var(--info); }
#hospitals thead th { white-space: normal; }
#hospitals td.num { width: 5.5em; }
ul.clegend { list-style:none; display:flex; flex-wrap: wrap; gap: 4px 16px; padding: 0;
  margin: 6px 0 0; font-size: 12px; }
.swatch { display:inline-block; width: 12px; height: 3px; margin: 0 6px 3px 0;
  vertical-align: middle; }
ul.params { list-style:none; margin:0; padding:0; columns: 2; font-size: 12px; }
ul.params li.changed { background: var(--warnbg); }
details.round { border: 1px solid var(--line); border-radius: 6px; margin: 8px 0; padding: 0 12px; }
details.round > summary { cursor: pointer; padding: 8px 0; font-weight: 600; }
dl.facts { display:grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 4px 0 8px; }
dl.facts dt { color: var(--dim); }
dl.facts dd { margin: 0; }
dl.facts ol { margin: 0; padding-left: 20px; }
footer { margin-top: 40px; color: var(--dim); font-size: 12px; }
@media print { details.round { break-inside: avoid; } .scroll { overflow: visible; } }
"""
