"""`swarm audit` as an auditor runs it: a keyless client, a URL and an address.

The history is the one driven on the embedded chain (tests/audit/driven.py); the command's
``ledger_client`` is pointed at that chain, since ``embedded`` as a URL would start a new,
empty one. The client it gets holds no key, as an auditor's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cli.audit
from cli.app import run
from swarm.ledger import LedgerClient
from swarm.training.checkpoint import checkpoint_path, write_checkpoint
from tests.audit.driven import HOSTILE_NAME, driven


@pytest.fixture
def where(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    d = driven()
    assert d.ledger.identity is None

    def keyless(chain_url: str | None, contract: str | None) -> LedgerClient:
        assert chain_url == "embedded" and contract == d.ledger.address
        return d.ledger

    monkeypatch.setattr(cli.audit, "ledger_client", keyless)
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps at the terminal's width
    return ["--chain-url", "embedded", "--contract", d.ledger.address]


def swarm(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_clean_history(where: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """No error findings: exit 0, the warnings and notes listed (the stalling member's
    missed commits and its sit-out among them: the fault would be a member that stalls rounds
    and that nobody sees), the same as JSON."""
    d = driven()
    code, out, err = swarm(capsys, "audit", "verify", *where)
    assert code == 0, err
    assert "0 errors, 4 warnings, 4 notes" in out
    assert "committer-left-out" in out and "ack-mismatch" in out
    assert out.count("commit-missed") == 2 and "sitting-out" in out
    code, out, _ = swarm(capsys, "audit", "verify", "--json", *where)
    data = json.loads(out)
    assert code == 0 and data["counts"] == {"error": 0, "warning": 4, "info": 4}
    assert {f["kind"] for f in data["findings"]} == {
        "ack-mismatch", "role-replaced", "round-lapsed", "committer-left-out",
        "participant-left", "commit-missed", "sitting-out",
    }  # fmt: skip
    stalls = [f for f in data["findings"] if f["kind"] in ("commit-missed", "sitting-out")]
    assert {f["account"] for f in stalls} == {d.staller}


def test_verify_with_a_tampered_checkpoint_fails(
    where: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A checkpoint whose weights are not the finalized model's: exit 3, one error line."""
    d = driven()
    for rid, state in d.models.items():
        write_checkpoint(tmp_path, rid, state)
    other = {k: v + 1 for k, v in d.models[4].items()}
    write_checkpoint(tmp_path, 4, other)
    code, out, err = swarm(capsys, "audit", "verify", "--checkpoints", str(tmp_path), *where)
    assert code == 3
    assert "checkpoint-mismatch" in out and checkpoint_path(tmp_path, 4).name in out
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_round_timeline(where: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """`audit round N`: roles and the replacement, commitments and who was left out, the
    acknowledgements, the findings of the round; the newest round's state, marked derived."""
    d = driven()
    code, out, err = swarm(capsys, "audit", "round", "2", *where)
    assert code == 0, err
    assert "replaced by" in out and "attempt 1" in out and "finalized model 0x" in out
    code, out, _ = swarm(capsys, "audit", "round", "4", *where)
    assert "left out" in out and "committer-left-out" in out
    code, out, _ = swarm(capsys, "audit", "round", "3", *where)
    assert "too few joined" in out and "left the round" in out
    code, out, _ = swarm(capsys, "audit", "round", "6", *where)
    assert "did not commit" in out and "sits out rounds 7 to 7" in out
    assert "roles drawn from the hash of block" in out
    code, out, _ = swarm(capsys, "audit", "round", "7", *where)
    assert "derived now (not an event): joining" in out
    code, out, _ = swarm(capsys, "audit", "round", "4", "--json", *where)
    data = json.loads(out)
    assert [f["account"] for f in data["findings"]] == [d.left_out]
    code, _, err = swarm(capsys, "audit", "round", "9", *where)
    assert code == 2 and "does not exist" in err


def test_hostile_member_name_is_printed_not_interpreted(
    where: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A member name that is rich markup (and HTML) prints as itself."""
    code, out, err = swarm(capsys, "audit", "members", *where)
    assert code == 0, err
    assert HOSTILE_NAME in out


def test_members_and_rounds_show_a_stalling_member(
    where: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`audit members` says who sits out until when and its missed commits; `audit rounds`
    counts each round's missed commits (the fault: a stalling member visible nowhere)."""
    d = driven()
    code, out, err = swarm(capsys, "audit", "members", *where)
    assert code == 0, err
    assert "sits out until round 7" in out
    code, out, _ = swarm(capsys, "audit", "members", "--json", *where)
    rows = {m["address"]: m for m in json.loads(out)}
    assert rows[d.staller]["sitting_out_until"] == 7
    assert not any(m["owner"] for m in rows.values())  # the deployer owns it, not a member
    assert all(len(bytes.fromhex(m["encryption_key"].removeprefix("0x"))) == 32
               for m in rows.values())  # fmt: skip
    code, out, _ = swarm(capsys, "audit", "rounds", "--json", *where)
    rounds = {r["round"]: r for r in json.loads(out)}
    assert rounds[6]["missed_commits"] == [{"account": d.staller, "in_a_row": 2}]
    assert rounds[6]["sit_outs"] == [{"account": d.staller, "from": 7, "until": 7}]
    code, out, _ = swarm(capsys, "audit", "rounds", *where)
    assert code == 0 and "current round 7: joining" in out


def test_report_html_and_json(
    where: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`audit report` writes one HTML file; `--json` prints the same data."""
    page = tmp_path / "report.html"
    code, out, err = swarm(capsys, "audit", "report", "--out", str(page), *where)
    assert code == 0, err
    assert "7 rounds, 0 errors, 4 warnings, 4 notes" in out
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and 'id="row-round-7"' in text
    code, out, _ = swarm(capsys, "audit", "report", "--json", *where)
    data = json.loads(out)
    assert data["schema"] == "swarm-audit-report/1" and len(data["rounds"]) == 7
    code, _, err = swarm(
        capsys, "audit", "report", "--out", str(tmp_path / "no" / "r.html"), *where
    )
    assert code == 2 and "cannot write" in err


@pytest.mark.anvil
def test_auditor_needs_only_the_url_and_the_address(
    anvil: object,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a real node over JSON-RPC, with no key anywhere: verify (seeds checked against the
    node's block hashes, the contract's code against the shipped one) and report."""
    from swarm.ledger import RpcChain
    from tests.conftest import h, make_consortium
    from tests.ledger.rounds import finalize, open_round, run_to_merging

    url = anvil.url  # type: ignore[attr-defined]
    c = make_consortium(RpcChain(url), 3)
    rid = open_round(c)
    run_to_merging(c, rid)
    finalize(c, rid, h("model-1"))
    monkeypatch.chdir(tmp_path)  # no local network's files to fall back on
    for var in ("SWARM_KEYSTORE", "SWARM_PASSWORD", "SWARM_PASSWORD_FILE"):
        monkeypatch.delenv(var, raising=False)
    where = ["--chain-url", url, "--contract", c.admin.address]
    code, out, err = swarm(capsys, "audit", "verify", *where)
    assert code == 0, err
    assert "0 errors, 0 warnings, 0 notes" in out
    code, out, err = swarm(capsys, "audit", "report", "--out", "r.html", *where)
    assert code == 0, err
    assert 'id="row-round-1"' in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_privacy_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`swarm audit privacy`: one row per PrivacySpent (round, member, round epsilon, cumulative,
    budget), the same as JSON; a consortium without a budget says so."""
    from swarm.ledger import EmbeddedChain
    from tests.audit.test_history import dp_history

    c, rid, participants = dp_history(EmbeddedChain())
    keyless = LedgerClient(c.chain, c.admin.address)
    monkeypatch.setattr(cli.audit, "ledger_client", lambda url, contract: keyless)
    monkeypatch.setenv("COLUMNS", "250")
    where = ["--chain-url", "embedded", "--contract", keyless.address]
    code, out, err = swarm(capsys, "audit", "privacy", *where)
    assert code == 0, err
    assert "round epsilon" in out and "cumulative epsilon" in out and "budget" in out
    assert out.count("2.000000") == len(participants)
    assert "0.400000" in out
    code, out, _ = swarm(capsys, "audit", "privacy", "--json", *where)
    data = json.loads(out)
    assert code == 0
    assert [(d["round"], d["account"]) for d in data] == [(rid, a) for a in participants]
    assert data[1]["total_epsilon"] == 0.2 and data[1]["budget"] == 2.0


def test_privacy_table_without_budget(where: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = swarm(capsys, "audit", "privacy", *where)
    assert code == 0, err
    assert "no privacy spending recorded" in out
