"""The `swarm` command line against a real local network (anvil), as an operator runs it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.app import run
from localnet import network

pytestmark = pytest.mark.anvil


def swarm(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def net(tmp_path: Path) -> Iterator[network.LocalnetConfig]:
    config = network.up(tmp_path / "net", peers=2)
    try:
        yield config
    finally:
        network.down(tmp_path / "net")


def test_keys_new_and_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARM_PASSWORD", "s3cret")
    key = tmp_path / "hospital.json"
    code, out, _ = swarm(capsys, "keys", "new", "-k", str(key), "--json")
    assert code == 0
    card = json.loads(out)
    code, out, _ = swarm(capsys, "keys", "show", "-k", str(key), "--json")
    assert code == 0 and json.loads(out) == card
    assert card["peer_id"].startswith("16Uiu2")
    # A second `new` on the same file would destroy a key: refused.
    code, _, err = swarm(capsys, "keys", "new", "-k", str(key))
    assert code == 1 and "already exists" in err


def test_wrong_password_is_one_line_and_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong password: one clear line on stderr, exit code 1, no traceback."""
    key = tmp_path / "k.json"
    monkeypatch.setenv("SWARM_PASSWORD", "right")
    assert swarm(capsys, "keys", "new", "-k", str(key))[0] == 0
    monkeypatch.setenv("SWARM_PASSWORD", "wrong")
    code, _out, err = swarm(capsys, "keys", "show", "-k", str(key))
    assert code == 1
    assert err.strip().startswith("error:") and "wrong password" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_password_file_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWARM_PASSWORD", raising=False)
    pw = tmp_path / "pw"
    pw.write_text("from-a-file\n")
    key = tmp_path / "k.json"
    assert swarm(capsys, "keys", "new", "-k", str(key), "--password-file", str(pw))[0] == 0
    monkeypatch.setenv("SWARM_PASSWORD", "from-a-file")
    assert swarm(capsys, "keys", "show", "-k", str(key))[0] == 0


def test_admin_and_audit_commands(
    net: network.LocalnetConfig,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWARM_PASSWORD", net.password())
    where = ["--chain-url", net.chain_url, "--contract", net.contract]
    admin = ["-k", net.admin_keystore]

    code, out, _ = swarm(capsys, "audit", "members", "--json", *where)
    assert code == 0
    members = json.loads(out)
    assert [m["name"] for m in members] == [p.name for p in net.peers]
    assert all(m["active"] for m in members)

    # A new hospital makes its key and hands its card to the admin.
    card = tmp_path / "card.json"
    code, out, _ = swarm(capsys, "keys", "new", "-k", str(tmp_path / "new.json"), "--json")
    card.write_text(out)
    newcomer = json.loads(out)["address"]
    code, out, err = swarm(
        capsys, "admin", "add-member", *admin, *where, "--card", str(card),
        "--name", "St. Elsewhere", "--multiaddr", "/ip4/127.0.0.1/tcp/4999",
    )  # fmt: skip
    assert code == 0, err
    code, _, _ = swarm(capsys, "admin", "remove-member", *admin, *where, net.peers[0].address)
    assert code == 0
    code, _, err = swarm(capsys, "admin", "set-params", *admin, *where, "--min-peers", "4")
    assert code == 0, err

    code, out, _ = swarm(capsys, "audit", "members", "--json", *where)
    status = {m["address"]: m["active"] for m in json.loads(out)}
    assert status == {net.peers[0].address: False, net.peers[1].address: True, newcomer: True}
    code, out, _ = swarm(capsys, "audit", "rounds", "--json", *where)
    assert code == 0 and json.loads(out) == []
    code, out, _ = swarm(capsys, "audit", "members", *where)
    assert "Elsewhere" in out and "removed" in out


def test_non_admin_is_refused_by_the_cli(
    net: network.LocalnetConfig, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-admin changes parameters: the contract's refusal becomes one line, exit 1."""
    monkeypatch.setenv("SWARM_PASSWORD", net.password())
    code, _, err = swarm(
        capsys, "admin", "set-params", "-k", net.peers[0].keystore,
        "--chain-url", net.chain_url, "--contract", net.contract, "--min-peers", "4",
    )  # fmt: skip
    assert code == 1
    assert (
        f"AccessControlUnauthorizedAccount(account={net.peers[0].address}, neededRole=ADMIN_ROLE)"
        in err
    )


def test_mismatched_member_card_is_refused(
    net: network.LocalnetConfig,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A card whose public key is not the address's: refused before any transaction."""
    monkeypatch.setenv("SWARM_PASSWORD", net.password())
    a = json.loads(swarm(capsys, "keys", "new", "-k", str(tmp_path / "a.json"), "--json")[1])
    b = json.loads(swarm(capsys, "keys", "new", "-k", str(tmp_path / "b.json"), "--json")[1])
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"address": a["address"], "public_key": b["public_key"]}))
    code, _, err = swarm(
        capsys, "admin", "add-member", "-k", net.admin_keystore, "--chain-url", net.chain_url,
        "--contract", net.contract, "--card", str(card), "--name", "X",
    )  # fmt: skip
    assert code == 2 and "does not belong" in err


def test_admins_and_a_two_step_ownership_handover(
    net: network.LocalnetConfig, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The owner grants and revokes the admin role; ownership moves only when the new owner
    accepts. A non-owner that tries to grant is one line naming the role it lacks (fault: a
    member acting as an admin)."""
    from swarm.ledger import LedgerClient, RpcChain

    monkeypatch.setenv("SWARM_PASSWORD", net.password())
    where = ["--chain-url", net.chain_url, "--contract", net.contract]
    owner, hospital = ["-k", net.admin_keystore], ["-k", net.peers[0].keystore]
    ledger = LedgerClient(RpcChain(net.chain_url), net.contract)
    h0 = net.peers[0].address

    code, _, err = swarm(capsys, "admin", "add-admin", *hospital, *where, net.peers[1].address)
    assert code == 1 and "neededRole=DEFAULT_ADMIN_ROLE (the owner)" in err
    assert swarm(capsys, "admin", "add-admin", *owner, *where, h0)[0] == 0
    assert ledger.is_admin(h0)
    assert swarm(capsys, "admin", "remove-admin", *owner, *where, h0)[0] == 0
    assert not ledger.is_admin(h0)

    code, out, err = swarm(capsys, "admin", "transfer-ownership", *owner, *where, h0)
    assert code == 0 and f"offered to {h0}" in out, err
    assert ledger.owner() == net.admin_address  # nothing moved yet
    ledger.chain.advance_time(2)  # past the (zero) delay: the schedule must lie in the past
    code, out, err = swarm(capsys, "admin", "accept-ownership", *hospital, *where)
    assert code == 0 and "now the consortium's owner" in out, err
    assert ledger.owner() == h0


def test_localnet_status_and_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = ["--dir", str(tmp_path / "ln")]
    code, out, err = swarm(capsys, "localnet", "up", "--peers", "3", "--chain-only", *where)
    assert code == 0, err
    try:
        code, out, _ = swarm(capsys, "localnet", "status", "--json", *where)
        status = json.loads(out)
        assert status["running"] is True and len(status["peers"]) == 3
        code, _, err = swarm(capsys, "localnet", "up", *where)
        assert code == 2 and "already up" in err
    finally:
        assert swarm(capsys, "localnet", "down", *where)[0] == 0
    code, out, _ = swarm(capsys, "localnet", "status", "--json", *where)
    assert json.loads(out)["running"] is False


def test_unreachable_chain_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A chain that is down: a clear error, not a traceback."""
    code, _, err = swarm(
        capsys, "audit", "rounds", "--chain-url", "http://127.0.0.1:9", "--contract",
        "0x0000000000000000000000000000000000000001",
    )  # fmt: skip
    assert code == 1 and "cannot reach the chain" in err


def test_deploy_and_round_timeline(
    anvil: object,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An admin deploys with the CLI; after a round the auditor's timeline tells it."""
    from swarm.identity import load_keystore
    from swarm.ledger import LedgerClient, RpcChain
    from tests.conftest import make_consortium
    from tests.ledger.rounds import finalize, open_round, run_to_merging

    url = anvil.url  # type: ignore[attr-defined]
    monkeypatch.setenv("SWARM_PASSWORD", "pw")
    key = tmp_path / "admin.json"
    assert swarm(capsys, "keys", "new", "-k", str(key))[0] == 0
    admin = load_keystore(key, "pw")
    RpcChain(url).fund(admin.address, 10**20)
    code, out, err = swarm(
        capsys, "admin", "deploy", "-k", str(key), "--chain-url", url, "--min-peers", "3", "--json"
    )
    assert code == 0, err
    contract = json.loads(out)["contract"]
    ledger = LedgerClient(RpcChain(url), contract)
    assert ledger.params().min_peers == 3 and ledger.is_admin(admin.address)

    # Drive one round on a consortium of our own through the library, then read it back.
    c = make_consortium(RpcChain(url), 3)
    rid = open_round(c)
    run_to_merging(c, rid)
    final = finalize(c, rid, bytes(range(32)))
    where = ["--chain-url", url, "--contract", c.admin.address]
    code, out, _ = swarm(capsys, "audit", "round", str(rid), "--json", *where)
    summary = json.loads(out)
    assert summary["outcome"] == "finalized"
    assert summary["final_model"] == "0x" + bytes(range(32)).hex()
    assert summary["aggregate"]["contributors"] == list(final.contributors)
    code, out, _ = swarm(capsys, "audit", "round", str(rid), *where)
    assert code == 0 and "finalized model" in out and "joined" in out
    code, _, err = swarm(capsys, "audit", "round", "99", *where)
    assert code == 2 and "does not exist" in err
