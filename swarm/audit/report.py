"""The audit report: one self-contained HTML page a person reads, and the same data as JSON.

Pure: ``build_report`` turns a history and its findings into plain JSON-able data (what
``swarm audit report --json`` prints); ``render_html`` turns that data into one HTML file with
inline CSS and SVG, no script and no external resource. A Content-Security-Policy in the page
forbids both, so the page stays inert even if a value slipped through unescaped.

Member names, PeerIDs and multiaddrs come from the ledger, where any admin (or, for addresses,
any member) wrote them: they are untrusted input, and every value goes through ``html.escape``.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from swarm.audit.history import ConsortiumHistory, RoundHistory, round_summary
from swarm.audit.timeline import describe
from swarm.audit.verify import Finding, count_by_severity
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
) -> dict[str, Any]:
    """Everything the report shows, as JSON-able values (hashes as 0x-hex strings)."""
    names = {a: m.name for a, m in history.members.items()}
    rounds = list(history.rounds.values())
    accounts = _accounts(history)
    return {
        "schema": SCHEMA,
        "contract": contract,
        "chain_url": chain_url,
        "generated_at": generated_at,
        "block_number": block_number,
        "names": names,
        "summary": {
            "members": len(history.members),
            "active_members": sum(1 for m in history.members.values() if m.active),
            "rounds": len(rounds),
            "finalized": sum(1 for r in rounds if r.final_model is not None),
            "lapsed": sum(1 for r in rounds if r.lapse_reason is not None),
            "findings": count_by_severity(findings),
        },
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
            }
            for m in history.members.values()
        ],
        "admins": [
            {"address": a, "name": names.get(a), "admin": held}
            for a, held in history.admins.items()
        ],
        "admin_changes": [
            {"account": c.account, "added": c.added, "by": c.by, "timestamp": c.timestamp}
            for c in history.admin_log
        ],
        "params": _params(history),
        "rounds": [round_summary(r) for r in rounds],
        "participation": [
            {"account": a, "rounds": [{"round": r.round_id, "marks": _marks(r, a)} for r in rounds]}
            for a in accounts
        ],
        "metrics": [{"round": r.round_id, **_plain(m)} for r in rounds for m in r.metrics],
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
    for timestamp, by, values in history.params:
        plain = _plain(values)
        changed = [k for k in plain if previous and previous.get(k) != plain[k]]
        out.append({"timestamp": timestamp, "by": by, "values": plain, "changed": changed})
        previous = plain
    return out


def _marks(r: RoundHistory, account: str) -> list[str]:
    marks = []
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


class _Page:
    """Renders one report; knows the member names, so accounts read as people."""

    def __init__(self, report: Mapping[str, Any]) -> None:
        self.r = report
        self.names: Mapping[str, str] = report["names"]

    def who(self, address: str | None) -> str:
        if not address:
            return '<span class="dim">-</span>'
        short = address[:6] + "…" + address[-4:]
        name = self.names.get(address)
        label = f"{_e(name)} " if name is not None else ""
        return f'<span class="who" title="{_e(address)}">{label}<code>{_e(short)}</code></span>'

    def page(self) -> str:
        r = self.r
        title = f"Swarm audit report: {r['contract']}"
        body = "\n".join(
            [
                self.header(),
                self.findings(),
                self.rounds(),
                self.participation(),
                self.metrics(),
                self.consortium(),
                self.timeline(),
                "<footer>Made by <code>swarm audit report</code> from the contract's events. "
                "The ledger holds hashes, sample counts and roles: never data, never weights. "
                "docs/auditor-guide.md explains every finding.</footer>",
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
            f"<dt>Contract</dt><dd><code>{_e(r['contract'])}</code></dd>"
            f"<dt>Chain</dt><dd><code>{_e(r['chain_url'])}</code>{_e(block)}</dd>"
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

    def findings(self) -> str:
        rows = [
            f'<tr class="sev-{_e(f["severity"])}">'
            f'<td><span class="badge {_e(f["severity"])}">{_e(f["severity"])}</span></td>'
            f"<td><code class=kind>{_e(f['kind'])}</code></td>"
            f"<td>{self.round_link(f['round'])}</td>"
            f"<td>{self.who(f['account'])}</td>"
            f"<td>{_e(f['message'])}</td></tr>"
            for f in self.r["findings"]
        ]
        if not rows:
            return _section("findings", "Findings", "<p>No findings: nothing to report.</p>")
        table = _table(["severity", "kind", "round", "account", "what"], rows, "findings")
        return _section("findings", "Findings", table)

    def round_link(self, round_id: int | None) -> str:
        if round_id is None:
            return '<span class="dim">-</span>'
        return f'<a href="#round-{_e(round_id)}">{_e(round_id)}</a>'

    def rounds(self) -> str:
        rows = []
        for x in self.r["rounds"]:
            outcome = x["outcome"]
            cls = outcome.split(" ")[0].replace(" ", "-")
            replaced = ", ".join(
                f"{_e(p['role'])}: {self.who(p['previous'])} → {self.who(p['next'])}"
                for p in x["replacements"]
            )
            agg = x["aggregate"]
            rows.append(
                f'<tr class="round-row" id="row-round-{_e(x["round"])}">'
                f"<td>{self.round_link(x['round'])}</td>"
                f"<td>{_t(x['opened_at'])}</td>"
                f"<td>{_hash(x['base_model'])}</td>"
                f"<td class=num>{len(x['joined'])}</td>"
                f"<td>{self.who(x['merge_peers'][-1] if x['merge_peers'] else None)}</td>"
                f"<td>{self.who(x['key_stewards'][-1] if x['key_stewards'] else None)}</td>"
                f"<td>{replaced or '<span class=dim>-</span>'}</td>"
                f"<td class=num>{len(agg['contributors']) if agg else '-'}</td>"
                f"<td class=num>{_e(agg['total_samples']) if agg else '-'}</td>"
                f'<td><span class="outcome {_e(cls)}">{_e(outcome)}</span></td>'
                f"<td>{_hash(x['final_model'])}</td></tr>"
            )
        current = self.current()
        if not rows:
            return _section("rounds", "Rounds", "<p>No round has been opened yet.</p>" + current)
        head = ["round", "opened", "base model", "joined", "merge peer", "key steward",
                "replacements", "contributors", "samples", "outcome", "model"]  # fmt: skip
        return _section("rounds", "Rounds", _table(head, rows, "rounds") + current)

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
        rounds = [x["round"] for x in self.r["rounds"]]
        if not rounds:
            return ""
        head = "".join(f"<th>{self.round_link(rid)}</th>" for rid in rounds)
        rows = []
        for row in self.r["participation"]:
            cells = []
            for cell in row["rounds"]:
                marks = cell["marks"]
                state = (
                    "contributed" if "contributed" in marks
                    else "left-out" if "left-out" in marks
                    else "joined" if "joined" in marks
                    else "absent"
                )  # fmt: skip
                shown = "".join(
                    f'<span class="mk mk-{_e(m)}">{_e(MARKS[m][0])}</span>' for m in marks
                )
                what = "; ".join(MARKS[m][1] for m in marks) or "did not take part"
                cells.append(
                    f'<td class="cell {state}" title="round {_e(cell["round"])}: {_e(what)}">'
                    f"{shown or '·'}</td>"
                )
            rows.append(
                f"<tr><th class=rowhead>{self.who(row['account'])}</th>{''.join(cells)}</tr>"
            )
        legend = " ".join(
            f'<span class="mk mk-{_e(k)}">{_e(sym)}</span> {_e(text)}'
            for k, (sym, text) in MARKS.items()
        )
        body = (
            f'<div class="scroll"><table class="grid" id="participation"><thead><tr>'
            f"<th>hospital \\ round</th>{head}</tr></thead><tbody>{''.join(rows)}"
            f"</tbody></table></div><p class=legend>{legend}</p>"
        )
        return _section("participation", "Participation", body)

    def metrics(self) -> str:
        metrics = self.r["metrics"]
        if not metrics:
            return _section("metrics", "Metrics", "<p>No hospital reported test metrics.</p>")
        accounts = list(dict.fromkeys(m["account"] for m in metrics))
        charts = "".join(
            _line_chart(
                title,
                {
                    self.names.get(a, a): [
                        (m["round"], m[key]) for m in metrics if m["account"] == a
                    ]
                    for a in accounts
                },
            )
            for key, title in (("accuracy", "Accuracy"), ("auc", "AUC"))
        )
        rows = [
            f"<tr><td>{self.round_link(m['round'])}</td><td>{self.who(m['account'])}</td>"
            f"<td class=num>{m['accuracy']:.3f}</td><td class=num>{m['auc']:.3f}</td>"
            f"<td class=num>{m['loss']:.3f}</td><td class=num>{_e(m['test_samples'])}</td>"
            f"<td>{_hash(m['model_hash'])}</td></tr>"
            for m in metrics
        ]
        table = _table(
            ["round", "hospital", "accuracy", "AUC", "loss", "test samples", "model"],
            rows,
            "metrics-table",
        )
        body = (
            "<p>Each hospital's test metrics of each finalized model on its own data, as it "
            "reported them (self-reported: the ledger cannot check them).</p>"
            f'<div class="charts">{charts}</div><details><summary>All reported values</summary>'
            f"{table}</details>"
        )
        return _section("metrics", "Metrics", body)

    def consortium(self) -> str:
        members = [
            f"<tr><td>{_e(m['name'])}{' <span class=tag>admin</span>' if m['admin'] else ''}"
            f"</td><td><code>{_e(m['address'])}</code><br>{_hash(m['peer_id'], 24)}</td>"
            f"<td>{'<br>'.join(f'<code>{_e(a)}</code>' for a in m['multiaddrs']) or '-'}</td>"
            f"<td>{_t(m['added_at'])}<br>by {self.who(m['added_by'])}</td>"
            f"<td>{self.status(m)}</td></tr>"
            for m in self.r["members"]
        ]
        admins = [
            f"<tr><td>{_t(c['timestamp'])}</td>"
            f"<td>{'granted' if c['added'] else 'revoked'}</td>"
            f"<td>{self.who(c['account'])}</td><td>{self.who(c['by'])}</td></tr>"
            for c in self.r["admin_changes"]
        ]
        params = []
        for p in self.r["params"]:
            values = "".join(
                f'<li class="{"changed" if k in p["changed"] else ""}"><code>{_e(k)}</code> '
                f"{_hash(v, 10) if isinstance(v, str) and v.startswith('0x') else _e(v)}</li>"
                for k, v in p["values"].items()
            )
            params.append(
                f"<tr><td>{_t(p['timestamp'])}</td><td>{self.who(p['by'])}</td>"
                f'<td><ul class="params">{values}</ul></td></tr>'
            )
        body = (
            "<h3>Members</h3>"
            + _table(
                ["name", "address and PeerID", "listens on", "admitted", "status"],
                members,
                "members",
            )
            + "<h3>Admins</h3>"
            + _table(["when", "role", "account", "by"], admins, "admins")
            + "<h3>Parameters</h3><p>Every change; changed values are highlighted.</p>"
            + _table(["when", "by", "parameters"], params, "params")
        )
        return _section("consortium", "Consortium", body)

    def status(self, m: Mapping[str, Any]) -> str:
        if m["active"]:
            return '<span class="outcome finalized">active</span>'
        return (
            f'<span class="outcome lapsed">removed</span> {_t(m["removed_at"])}<br>'
            f"by {self.who(m['removed_by'])}"
        )

    def timeline(self) -> str:
        findings_by_round: dict[int, list[Mapping[str, Any]]] = {}
        for f in self.r["findings"]:
            if f["round"] is not None:
                findings_by_round.setdefault(f["round"], []).append(f)
        parts = []
        for x in self.r["rounds"]:
            rid = x["round"]
            events = [e for e in self.r["timeline"] if e["round"] == rid]
            notable = any(f["severity"] != "info" for f in findings_by_round.get(rid, []))
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
                        for e in events
                    ],
                    f"events-{rid}",
                )
                + "</details>"
            )
        others = [
            f"<tr><td>{_t(e['timestamp'])}</td><td class=num>{_e(e['block'])}</td>"
            f"<td>{_e(e['text'])}</td></tr>"
            for e in self.r["timeline"]
            if e["round"] is None
        ]
        body = (
            "<p>Each round's facts, then its events in chain order. Rounds with warnings or "
            "errors start open.</p>"
            + "".join(parts)
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


def _line_chart(title: str, series: Mapping[str, Sequence[tuple[int, float]]]) -> str:
    """An inline SVG line chart: one line per hospital, rounds on x, the metric on y."""
    width, height = 560, 280
    left, right, top, bottom = 48, 16, 30, 36
    xs = sorted({x for points in series.values() for x, _ in points})
    ys = [y for points in series.values() for _, y in points]
    if not xs:
        return ""
    # Whole tenths around the values, within [0, 1]: metrics are fractions.
    lo = max(0.0, math.floor(min(ys) * 10 + 1e-9) / 10)
    hi = min(1.0, math.ceil(max(ys) * 10 - 1e-9) / 10)
    if hi - lo < 0.1:
        lo, hi = max(0.0, hi - 0.1), max(hi, 0.1)

    def px(x: int) -> float:
        # Spaced by round number, so a gap of lapsed rounds shows as a gap.
        if len(xs) == 1:
            return left + (width - left - right) / 2
        return left + (x - xs[0]) * (width - left - right) / (xs[-1] - xs[0])

    def py(y: float) -> float:
        return top + (hi - y) * (height - top - bottom) / (hi - lo)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{_e(title)} per round">',
        f'<text x="{left}" y="18" class="ctitle">{_e(title)} per round</text>',
    ]
    steps = round((hi - lo) / 0.1)
    for k in range(steps + 1):
        y = lo + k * 0.1
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            'class="gridline"/>'
            f'<text x="{left - 6}" y="{py(y) + 4:.1f}" class="tick" text-anchor="end">'
            f"{y:.1f}</text>"
        )
    for x in xs:
        parts.append(
            f'<text x="{px(x):.1f}" y="{height - bottom + 18}" class="tick" '
            f'text-anchor="middle">{_e(x)}</text>'
        )
    parts.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 4}" class="tick" '
        'text-anchor="middle">round</text>'
    )
    legend = []
    for i, (label, points) in enumerate(series.items()):
        color = _PALETTE[i % len(_PALETTE)]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(points))
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in points:
            parts.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{color}">'
                f"<title>{_e(label)}, round {_e(x)}: {y:.3f}</title></circle>"
            )
        legend.append(
            f'<li><span class="swatch" style="background:{color}"></span>{_e(label)}</li>'
        )
    parts.append("</svg>")
    return f'<figure>{"".join(parts)}<ul class="clegend">{"".join(legend)}</ul></figure>'


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
td.cell.absent { color: #c0c5cc; }
.mk { display:inline-block; min-width: 15px; margin: 0 1px; padding: 0 2px; border-radius: 3px;
  font: 600 11px/16px ui-monospace, Menlo, Consolas, monospace; text-align:center; }
.mk-merge-peer, .mk-key-steward { background: #1d2430; color: #fff; }
.mk-replaced { background: var(--err); color: #fff; }
.mk-left-out, .mk-dissent { color: var(--err); }
.mk-acked { color: var(--ok); }
p.legend { color: var(--dim); font-size: 12px; }
p.legend .mk { margin-left: 10px; }
.charts { display:flex; flex-wrap: wrap; gap: 18px; }
figure { margin: 0; }
svg.chart { background: #fcfcfd; border: 1px solid var(--line); border-radius: 6px; }
svg .gridline { stroke: #e6e8ec; stroke-width: 1; }
svg .tick { font: 11px system-ui, sans-serif; fill: #6b7280; }
svg .ctitle { font: 600 13px system-ui, sans-serif; fill: #1d2430; }
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
