"""`swarm audit`: read-only views of the ledger for auditors. Needs no key."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

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
from swarm.audit.history import RoundHistory, round_summary
from swarm.audit.timeline import describe
from swarm.errors import ConfigError

app = typer.Typer(
    help="Inspect the consortium's ledger: members, rounds, who did what. Needs only the "
    "chain's URL and the contract's address, no key."
)


def _when(ts: int | None) -> str:
    if not ts:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("members")
def members(
    chain_url: ChainUrlOpt = None, contract: ContractOpt = None, json_out: JsonOpt = False
) -> None:
    """Every hospital ever admitted, with its address, PeerID and status."""
    ledger = ledger_client(chain_url, contract)
    found = ledger.members()
    if json_out:
        print_json(
            [
                {
                    "name": m.name,
                    "address": m.address,
                    "peer_id": m.peer_id,
                    "public_key": m.public_key,
                    "multiaddrs": list(m.multiaddrs),
                    "active": m.active,
                    "added_at": m.added_at,
                    "admin": ledger.is_admin(m.address),
                }
                for m in found
            ]
        )
        return
    print_table(
        f"Members of {ledger.address}",
        ["name", "address", "peer id", "listens on", "status", "admitted (UTC)"],
        [
            [
                m.name,
                m.address,
                short(m.peer_id, 14),
                ", ".join(m.multiaddrs) or "-",
                "active" if m.active else "removed",
                _when(m.added_at),
            ]
            for m in found
        ],
    )


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
         "samples", "outcome", "model"],
        [
            [
                r.round_id,
                _when(r.opened_at),
                len(r.joined),
                _name(names, r.merge_peer),
                _name(names, r.key_steward),
                len(r.contributors),
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
        console.print(f"current round {current}: {info.state.name.lower()}")


def _name(names: dict[str, str], address: str | None) -> str:
    if address is None:
        return "-"
    return names.get(address, short(address))


@app.command("round")
def round_(
    round_id: Annotated[int, typer.Argument(metavar="N", help="The round's number.")],
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """One round's timeline: joins, roles and replacements, commitments, aggregate, acks."""
    ledger = ledger_client(chain_url, contract)
    history = build_history(ledger.events())
    if round_id not in history.rounds:
        raise ConfigError(f"round {round_id} does not exist (rounds: 1..{len(history.rounds)})")
    r = history.rounds[round_id]
    if json_out:
        print_json(round_summary(r))
        return
    names = {a: m.name for a, m in history.members.items()}
    _print_timeline(r, names)


def _print_timeline(r: RoundHistory, names: dict[str, str]) -> None:
    console.print(f"[bold]Round {r.round_id}[/]: {r.outcome}; base model {short(r.base_model)}")
    rows = [[_when(e.timestamp), e.block_number, describe(e, names)] for e in r.events]
    print_table("", ["time (UTC)", "block", "event"], rows)
