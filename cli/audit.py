"""`swarm audit`: read-only views of the ledger for auditors. Needs no key.

Member names come from the ledger and are untrusted: everything taken from it is escaped before
rich prints it, so a name like ``[/]`` is shown, not parsed as markup.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cli.common import (
    ChainUrlOpt,
    ContractOpt,
    JsonOpt,
    console,
    ledger_client,
    print_json,
    print_table,
    short,
)
from swarm.audit import build_history
from swarm.audit.history import RoundHistory, privacy_summary, round_summary
from swarm.audit.report import build_report, render_html
from swarm.audit.source import LedgerSnapshot, read_ledger
from swarm.audit.timeline import describe
from swarm.audit.verify import CheckpointRecord, Finding, Severity, count_by_severity, verify
from swarm.errors import AuditFailedError, ConfigError
from swarm.ledger.types import RoundInfo

app = typer.Typer(
    help="Inspect the consortium's ledger: members, rounds, who did what, and whether the "
    "history follows the protocol. Needs only the chain's URL and the contract's address, no key."
)

CheckpointsOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoints",
        help="A directory of checkpoint files (round-000007.ckpt): check each model's hash "
        "against the model the ledger finalized in its round.",
        show_default=False,
    ),
]

_SEVERITY_STYLE = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "blue"}


def _when(ts: int | None) -> str:
    if not ts:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _name(names: dict[str, str], address: str | None) -> str:
    if address is None:
        return "-"
    return escape(names.get(address, short(address)))


def _who(names: dict[str, str], address: str | None) -> str:
    if address is None:
        return "-"
    name = names.get(address)
    return f"{escape(name)} ({short(address)})" if name is not None else address


@app.command("members")
def members(
    chain_url: ChainUrlOpt = None, contract: ContractOpt = None, json_out: JsonOpt = False
) -> None:
    """Every hospital ever admitted, with its address, PeerID, encryption key and status, and
    whether it sits rounds out after missing commits."""
    ledger = ledger_client(chain_url, contract)
    found = ledger.members()
    owner = ledger.owner()
    standing = {
        m.address: (ledger.missed_commits(m.address), ledger.sitting_out_until(m.address))
        for m in found
    }
    current = ledger.current_round()
    if json_out:
        print_json(
            [
                {
                    "name": m.name,
                    "address": m.address,
                    "peer_id": m.peer_id,
                    "public_key": m.public_key,
                    "encryption_key": m.encryption_key,
                    "multiaddrs": list(m.multiaddrs),
                    "active": m.active,
                    "added_at": m.added_at,
                    "admin": ledger.is_admin(m.address),
                    "owner": m.address == owner,
                    "missed_commits": standing[m.address][0],
                    "sitting_out_until": standing[m.address][1] or None,
                }
                for m in found
            ]
        )
        return
    print_table(
        f"Members of {ledger.address}",
        ["name", "address", "peer id", "listens on", "status", "missed commits",
         "admitted (UTC)"],
        [
            [
                escape(m.name),
                m.address,
                escape(short(m.peer_id, 14)),
                escape(", ".join(m.multiaddrs)) or "-",
                _member_status(m.active, standing[m.address][1], current),
                standing[m.address][0],
                _when(m.added_at),
            ]
            for m in found
        ],
    )  # fmt: skip
    console.print(f"owner: {owner}", highlight=False)


def _member_status(active: bool, sitting_out_until: int, current: int) -> str:
    if not active:
        return "removed"
    if sitting_out_until >= max(current, 1):
        return f"[yellow]sits out until round {sitting_out_until}[/]"
    return "active"


@app.command("rounds")
def rounds(
    chain_url: ChainUrlOpt = None, contract: ContractOpt = None, json_out: JsonOpt = False
) -> None:
    """Every round, from the ledger's events: participants, roles, outcome."""
    ledger = ledger_client(chain_url, contract)
    history = build_history(ledger.events())
    names = {a: m.name for a, m in history.members.items()}
    if json_out:
        print_json([round_summary(r) for r in history.rounds.values()])
        return
    print_table(
        f"Rounds of {ledger.address}",
        ["round", "opened (UTC)", "joined", "merge peer", "key steward", "contributors",
         "missed", "samples", "outcome", "model"],
        [
            [
                r.round_id,
                _when(r.opened_at),
                len(r.joined),
                _name(names, r.merge_peer),
                _name(names, r.key_steward),
                len(r.contributors),
                len(r.missed) or "-",
                r.total_samples or "-",
                r.outcome,
                short(r.final_model),
            ]
            for r in history.rounds.values()
        ],
    )  # fmt: skip
    current = ledger.current_round()
    if current:
        info = ledger.round(current)
        console.print(
            f"current round {current}: {_state(info)} (derived from the contract's view now)"
        )


@app.command("privacy")
def privacy(
    chain_url: ChainUrlOpt = None, contract: ContractOpt = None, json_out: JsonOpt = False
) -> None:
    """Every member's differential-privacy spending, from the ledger's PrivacySpent events: per
    round, the epsilon its training spent and its running total against the round's budget.
    Empty where the consortium never set an epsilon budget."""
    ledger = ledger_client(chain_url, contract)
    history = build_history(ledger.events())
    names = {a: m.name for a, m in history.members.items()}
    if json_out:
        print_json([privacy_summary(p) for p in history.privacy])
        return
    if not history.privacy:
        console.print("no privacy spending recorded (no round had an epsilon budget)")
        return
    print_table(
        f"Privacy spending on {ledger.address}",
        ["round", "member", "round epsilon", "cumulative epsilon", "budget"],
        [
            [
                p.round_id,
                _who(names, p.account),
                f"{p.round_epsilon:.6f}",
                f"{p.total_epsilon:.6f}",
                "-" if p.budget is None else f"{p.budget:.6f}",
            ]
            for p in history.privacy
        ],
    )


def _state(info: RoundInfo) -> str:
    state = info.state.name.lower()
    if info.lapse_reason.value:
        state += f" ({info.lapse_reason.name.lower().replace('_', ' ')})"
    return state


@app.command("round")
def round_(
    round_id: Annotated[int, typer.Argument(metavar="N", help="The round's number.")],
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """One round: who joined, the roles and any replacement, every commitment, the aggregate
    and its contributors, the acknowledgements and the model, or why it lapsed; then its
    events one by one, and what `swarm audit verify` finds about it."""
    snap = read_ledger(ledger_client(chain_url, contract))
    history = snap.history
    if round_id not in history.rounds:
        raise ConfigError(f"round {round_id} does not exist (rounds: 1..{len(history.rounds)})")
    r = history.rounds[round_id]
    current = snap.current if snap.current and snap.current.round_id == round_id else None
    findings = [
        f for f in verify(history, chain=snap.facts, current=snap.current) if f.round_id == round_id
    ]
    if json_out:
        print_json(
            {
                **round_summary(r),
                "derived_now": None
                if current is None
                else {"state": current.state.name, "lapse_reason": current.lapse_reason.name},
                "findings": [f.as_dict() for f in findings],
            }
        )
        return
    names = {a: m.name for a, m in history.members.items()}
    _print_round(r, names, current)
    _print_findings(findings, names, title=f"Findings about round {round_id}")


def _print_round(r: RoundHistory, names: dict[str, str], current: RoundInfo | None) -> None:
    def who(address: str | None) -> str:
        return _who(names, address)

    console.print(f"[bold]Round {r.round_id}[/]: {r.outcome}")
    console.print(f"  opened {_when(r.opened_at)} UTC by {who(r.opened_by)}")
    console.print(f"  base model {short(r.base_model, 64)}; needs {r.min_peers} peers")
    console.print(f"  joined: {', '.join(who(a) for a in r.joined) or 'nobody yet'}")
    if r.draw_block is not None:
        seed = short(r.seed, 64) if r.seed is not None else "not stored yet"
        console.print(f"  roles drawn from the hash of block {r.draw_block}: seed {seed}")
    for i, a in enumerate(r.order):
        role = {0: "merge peer", 1: "key steward"}.get(i, "fallback")
        console.print(f"  {i + 1}. {who(a)}: {role}")
    for x in r.replacements:
        console.print(
            f"  {x.role} {who(x.previous)} missed its deadline: replaced by {who(x.next)} "
            f"(attempt {x.attempt}, {_when(x.timestamp)} UTC)"
        )
    for attempt, steward, key in r.keys:
        console.print(f"  round key, attempt {attempt}: {short(key, 64)} by {who(steward)}")
    if r.commits:
        contributors = set(r.contributors)
        print_table(
            "Commitments",
            ["attempt", "hospital", "update hash", "samples", "when (UTC)", "aggregate"],
            [
                [
                    c.attempt,
                    who(c.account),
                    short(c.update_hash, 18),
                    c.sample_count,
                    _when(c.timestamp),
                    "-"
                    if r.aggregate_hash is None
                    else "earlier attempt"
                    if c.attempt != r.aggregate_attempt
                    else "included"
                    if c.account in contributors
                    else "[yellow]left out[/]",
                ]
                for c in r.commits
            ],
        )
    if r.aggregate_hash is not None:
        console.print(
            f"  aggregate {short(r.aggregate_hash, 64)} by {who(r.aggregate_by)} "
            f"(attempt {r.aggregate_attempt}): {len(r.contributors)} contributors, "
            f"{r.total_samples} samples"
        )
    if r.acks:
        print_table(
            "Acknowledgements",
            ["hospital", "model hash", "vs. finalized"],
            [
                [
                    who(a),
                    short(h, 18),
                    "-"
                    if r.final_model is None
                    else "agrees"
                    if h == r.final_model
                    else "[red]differs[/]",
                ]
                for a, h in r.acks.items()
            ],
        )
    for a, n in r.missed:
        console.print(f"  [yellow]{who(a)} joined but did not commit[/] ({n} in a row)")
    for a, start, until in r.sit_outs:
        console.print(f"  [yellow]{who(a)} sits out rounds {start} to {until}[/]")
    for a in r.left:
        console.print(f"  {who(a)} left the round (removed from the consortium)")
    if r.final_model is not None:
        console.print(f"  [green]finalized model {short(r.final_model, 64)}[/]")
    if r.lapse_reason is not None:
        console.print(f"  [red]{r.outcome}[/]")
    if current is not None and r.final_model is None and r.lapse_reason is None:
        console.print(f"  derived now (not an event): {_state(current)}, attempt {current.attempt}")
    rows = [[_when(e.timestamp), e.block_number, escape(describe(e, names))] for e in r.events]
    print_table("Events", ["time (UTC)", "block", "event"], rows)


def _print_findings(findings: list[Finding], names: dict[str, str], *, title: str) -> None:
    counts = count_by_severity(findings)
    if findings:
        print_table(
            title,
            ["severity", "kind", "round", "account", "finding"],
            [
                [
                    f"[{_SEVERITY_STYLE[f.severity]}]{f.severity.value}[/]",
                    f.kind.value,
                    f.round_id if f.round_id is not None else "-",
                    _name(names, f.account),
                    escape(f.message),
                ]
                for f in findings
            ],
        )
    console.print(_counts(counts), highlight=False, soft_wrap=True)


def _counts(counts: dict[str, int]) -> str:
    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    return ", ".join(
        [n(counts["error"], "error"), n(counts["warning"], "warning"), n(counts["info"], "note")]
    )


def _snapshot_and_findings(
    chain_url: str | None, contract: str | None, checkpoints: Path | None
) -> tuple[LedgerSnapshot, list[Finding]]:
    snap = read_ledger(ledger_client(chain_url, contract))
    records: list[CheckpointRecord] | None = None
    if checkpoints is not None:
        # Imported here: reading checkpoints loads torch, which the other commands never need.
        from swarm.audit.checkpoints import read_checkpoints

        records = read_checkpoints(checkpoints)
    findings = verify(snap.history, chain=snap.facts, current=snap.current, checkpoints=records)
    return snap, findings


@app.command("verify")
def verify_(
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    checkpoints: CheckpointsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check the whole history against the protocol's rules and print every finding.

    Exits 3 when any finding is an error (the history breaks a rule), 0 otherwise; warnings
    and notes are for a person to read. docs/auditor-guide.md explains each kind.
    """
    snap, findings = _snapshot_and_findings(chain_url, contract, checkpoints)
    counts = count_by_severity(findings)
    if json_out:
        print_json(
            {
                "contract": snap.contract,
                "block": snap.block_number,
                "counts": counts,
                "findings": [f.as_dict() for f in findings],
            }
        )
    else:
        names = {a: m.name for a, m in snap.history.members.items()}
        _print_findings(
            findings,
            names,
            title=f"Findings on {snap.contract} up to block {snap.block_number}",
        )
    if counts["error"]:
        raise AuditFailedError(
            f"the history breaks the protocol's rules: {counts['error']} error findings"
        )


@app.command("report")
def report(
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    checkpoints: CheckpointsOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Where to write the report. Default: audit-report.html, or standard output "
            "with --json.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Write the report's data as JSON instead of HTML.")
    ] = False,
) -> None:
    """Write a report a person can read: one HTML file, no external resources (open it in
    any browser, mail it, archive it). It shows the consortium, every round, who took part in
    what, reported metrics and every finding of `swarm audit verify`."""
    snap, findings = _snapshot_and_findings(chain_url, contract, checkpoints)
    data = build_report(
        snap.history,
        findings,
        contract=snap.contract,
        chain_url=snap.chain_url,
        generated_at=int(time.time()),
        block_number=snap.block_number,
        current=snap.current,
        consortium=snap.consortium,
    )
    if json_out and out is None:
        typer.echo(json.dumps(data, indent=2))
        return
    out = out or Path("audit-report.html")
    text = json.dumps(data, indent=2) + "\n" if json_out else render_html(data)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {out}: {exc.strerror or exc}") from exc
    counts = data["summary"]["findings"]
    console.print(
        f"wrote {escape(str(out))}: {len(snap.history.rounds)} rounds, {_counts(counts)}",
        highlight=False,
        soft_wrap=True,
    )
