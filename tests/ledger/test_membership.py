"""Membership, admin roles and the encryption key: who may change them, and what the Consortium
contract checks. Each test's docstring names the fault it exercises."""

from __future__ import annotations

import dataclasses

import pytest

from swarm import errors
from swarm.identity import Identity
from swarm.ledger import ADMIN_ROLE, LedgerClient
from tests.conftest import Consortium, h
from tests.ledger.rounds import encryption_card

ZERO_ADDRESS = "0x" + "00" * 20


def test_member_record_holds_keys_peer_id_and_addresses(consortium: Consortium) -> None:
    """None (the record as admitted: both keys, PeerID, addresses; the event carries the
    encryption key)."""
    c = consortium
    ident = c.hospitals[0]
    m = c.admin.member(ident.address)
    assert m is not None
    assert m.public_key == ident.public_key
    assert m.encryption_key == ident.encryption_public_key
    assert m.peer_id == ident.peer_id
    assert m.multiaddrs == ("/ip4/127.0.0.1/tcp/4000",)
    assert m.name == "Hospital 0" and m.active
    assert [x.address for x in c.admin.members()] == c.addresses
    added = [e for e in c.admin.events() if e.name == "MemberAdded"]
    assert added[0].args["encryptionKey"] == ident.encryption_public_key


def test_admin_removes_and_readmits_member(consortium: Consortium) -> None:
    """Fault: a removed member readmitted: one record, no duplicate address."""
    c = consortium
    gone = c.addresses[1]
    c.admin.remove_member(gone)
    assert not c.admin.is_member(gone)
    assert [m.address for m in c.admin.active_members()] == [a for a in c.addresses if a != gone]
    c.admin.add_member_identity(c.hospitals[1], "Hospital 1 again")
    assert c.admin.is_member(gone)
    assert len(c.admin.members()) == 4  # no duplicate record


def test_non_admin_cannot_change_membership(consortium: Consortium) -> None:
    """A non-admin changes membership or roles: OpenZeppelin's AccessControlUnauthorizedAccount
    with its address and the role it lacks."""
    c = consortium
    member = c.client(c.addresses[0])
    newcomer = Identity.generate()
    with pytest.raises(errors.NotAdminError) as exc:
        member.add_member_identity(newcomer, "Rogue")
    assert exc.value.name == "AccessControlUnauthorizedAccount"
    # the role by name (the one line an admin reads), not as its 32-byte hash
    assert exc.value.values == {"account": c.addresses[0], "neededRole": "ADMIN_ROLE"}
    with pytest.raises(errors.NotAdminError):
        member.remove_member(c.addresses[1])
    with pytest.raises(errors.NotAdminError) as exc:
        member.add_admin(c.addresses[0])  # only the owner grants ADMIN_ROLE
    assert exc.value.values["neededRole"] == "DEFAULT_ADMIN_ROLE (the owner)"


def test_non_admin_cannot_set_params(consortium: Consortium) -> None:
    """A non-admin changes parameters: refused."""
    c = consortium
    params = dataclasses.replace(c.admin.params(), min_peers=4)
    with pytest.raises(errors.NotAdminError):
        c.client(c.addresses[0]).set_params(params)
    c.admin.set_params(params)
    assert c.admin.params().min_peers == 4


def test_public_key_must_match_address(consortium: Consortium) -> None:
    """An admin registers a public key that does not match the address: refused by the contract."""
    c = consortium
    a, b = Identity.generate(), Identity.generate()
    key, sig = encryption_card(a)
    with pytest.raises(errors.PublicKeyMismatchError) as exc:
        c.admin.add_member(
            a.address, b.public_key, "Mismatched", encryption_key=key, encryption_key_sig=sig
        )
    assert exc.value.values == {"account": a.address, "derived": b.address}


def test_encryption_key_signed_by_another_key_is_refused(consortium: Consortium) -> None:
    """An encryption key whose signature is not the member's identity key (an admin, or an
    attacker, substituting its own key to read round keys): EncryptionKeySignatureInvalid."""
    c = consortium
    a, b = Identity.generate(), Identity.generate()
    key_b, sig_b = encryption_card(b)
    with pytest.raises(errors.PublicKeyMismatchError) as exc:
        c.admin.add_member(
            a.address, a.public_key, "Swapped", encryption_key=key_b, encryption_key_sig=sig_b
        )
    assert exc.value.name == "EncryptionKeySignatureInvalid"
    assert exc.value.values["account"] == a.address
    key_a, sig_a = encryption_card(a)
    with pytest.raises(errors.PublicKeyMismatchError):  # a's signature, another key
        c.admin.add_member(
            a.address, a.public_key, "X", encryption_key=key_b, encryption_key_sig=sig_a
        )
    with pytest.raises(errors.PublicKeyMismatchError) as exc:  # malformed (v = 0)
        c.admin.add_member(
            a.address,
            a.public_key,
            "X",
            encryption_key=key_a,
            encryption_key_sig=sig_a[:64] + b"\0",
        )
    assert exc.value.values == {"account": a.address, "recovered": ZERO_ADDRESS}
    with pytest.raises(errors.InvalidParameterError) as exc:
        c.admin.add_member(
            a.address, a.public_key, "X", encryption_key=b"\0" * 32, encryption_key_sig=sig_a
        )
    assert exc.value.values == {"name": "encryptionKey", "value": 0}


def test_member_rotates_its_encryption_key(consortium: Consortium) -> None:
    """Rotation must carry the identity key's signature too; another member cannot rotate for
    it (it signs for itself only)."""
    c = consortium
    me, other = c.hospitals[0], c.hospitals[1]
    new_owner = Identity.generate()  # stands for a fresh X25519 key of the same member
    new_key = new_owner.encryption_public_key
    from swarm.identity import encryption_key_digest

    digest = encryption_key_digest(me.address, new_key)
    import coincurve

    rsv = coincurve.PrivateKey(me.private_key).sign_recoverable(digest, hasher=None)
    sig = rsv[:64] + bytes([rsv[64] + 27])
    with pytest.raises(errors.PublicKeyMismatchError):
        c.client(other.address).set_encryption_key(new_key, sig)
    c.client(me.address).set_encryption_key(new_key, sig)
    m = c.admin.member(me.address)
    assert m is not None and m.encryption_key == new_key
    event = [e for e in c.admin.events() if e.name == "EncryptionKeySet"][-1]
    assert event.args == {"account": me.address, "key": new_key}
    outsider = c.admin.as_identity(c.new_identity())
    with pytest.raises(errors.NotAMemberError):
        outsider.set_encryption_key(new_key, sig)


def test_duplicate_member_is_refused(consortium: Consortium) -> None:
    """Fault: an active member admitted twice: MemberAlreadyExists."""
    c = consortium
    with pytest.raises(errors.MemberExistsError):
        c.admin.add_member_identity(c.hospitals[0], "again")


def test_owner_hands_over_in_two_steps(consortium: Consortium) -> None:
    """The consortium's owner (DEFAULT_ADMIN_ROLE) changes only by begin + accept; a third party
    cannot accept; the new owner then grants and revokes ADMIN_ROLE."""
    c = consortium
    owner = c.admin.identity
    assert owner is not None and c.admin.owner() == owner.address
    successor = c.client(c.addresses[0])
    with pytest.raises(errors.NotAdminError):
        successor.begin_ownership_transfer(c.addresses[0])
    c.admin.begin_ownership_transfer(c.addresses[0])
    with pytest.raises(errors.NotAdminError) as exc:
        c.client(c.addresses[1]).accept_ownership_transfer()
    assert exc.value.name == "AccessControlInvalidDefaultAdmin"
    successor.accept_ownership_transfer()
    assert c.admin.owner() == c.addresses[0]
    successor.add_admin(c.addresses[1])
    assert c.admin.is_admin(c.addresses[1])
    successor.remove_admin(owner.address)
    assert not c.admin.is_admin(owner.address)
    with pytest.raises(errors.NotAdminError):
        c.admin.add_member_identity(Identity.generate(), "after losing the role")


def test_zero_address_gets_no_role_and_no_membership(consortium: Consortium) -> None:
    """A typo'd zero address: granting it a role or binding it is refused (InvalidAccount)."""
    c = consortium
    fn = c.admin.consortium.functions.grantRole(ADMIN_ROLE, ZERO_ADDRESS)
    with pytest.raises(errors.InvalidParameterError) as exc:
        c.admin._send(fn)
    assert exc.value.name == "InvalidAccount"
    with pytest.raises(errors.ConfigError):
        c.admin.add_admin("0x1234")  # malformed: refused before anything is sent


def test_ledger_is_bound_once(consortium: Consortium) -> None:
    """Rebinding the Consortium to another ledger (one that would not be told of removals, or
    that an attacker deployed) is refused."""
    c = consortium
    assert c.admin.consortium.functions.ledger().call() == c.admin.address
    with pytest.raises(errors.ContractRevertError) as exc:
        c.admin._send(c.admin.consortium.functions.bindLedger(c.admin.address))
    assert exc.value.name == "LedgerAlreadyBound"


def test_member_updates_own_multiaddrs(consortium: Consortium) -> None:
    """Fault: a non-member announcing addresses, or too many addresses: refused; a member's own
    update works."""
    c = consortium
    c.client(c.addresses[2]).update_multiaddrs(["/ip4/10.0.0.7/tcp/4100"])
    m = c.admin.member(c.addresses[2])
    assert m is not None and m.multiaddrs == ("/ip4/10.0.0.7/tcp/4100",)
    outsider = c.admin.as_identity(c.new_identity())
    with pytest.raises(errors.NotAMemberError):
        outsider.update_multiaddrs(["/ip4/10.0.0.8/tcp/1"])
    with pytest.raises(errors.InvalidParameterError) as exc:
        c.client(c.addresses[2]).update_multiaddrs([f"/ip4/10.0.0.{i}/tcp/1" for i in range(17)])
    assert exc.value.values == {"name": "multiaddrs", "value": 17}


def test_read_only_client_cannot_send(consortium: Consortium) -> None:
    """Fault: a client without a key asked to send: ConfigError before anything is sent."""
    c = consortium
    reader = type(c.admin)(c.chain, c.admin.address)
    with pytest.raises(errors.ConfigError):
        reader.open_round(h("model-0"))


def test_wrong_contract_address_is_a_typed_error(consortium: Consortium) -> None:
    """No contract at the address (e.g. a chain restarted without its state); the Consortium's
    address given for the SwarmLedger's; a malformed address (one line, ConfigError)."""
    c = consortium
    with pytest.raises(errors.ContractNotFoundError):
        LedgerClient(c.chain, Identity.generate().address)
    with pytest.raises(errors.ContractNotFoundError) as exc:
        LedgerClient(c.chain, c.admin.consortium_address)
    assert "not a SwarmLedger" in str(exc.value)
    with pytest.raises(errors.ConfigError) as cfg:
        LedgerClient(c.chain, "0xnot-an-address")
    assert "\n" not in str(cfg.value) and "not an Ethereum address" in str(cfg.value)


@pytest.mark.parametrize(
    "multiaddr",
    ["/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001", "/ip4/10.0.0.5/tcp/0", "10.0.0.5:4001"],
)
def test_cli_refuses_a_multiaddr_peers_cannot_dial(multiaddr: str) -> None:
    """Fault: an admin registers where a host binds (0.0.0.0, ::, port 0) instead of where it
    can be reached: `swarm admin add-member` refuses it in one line, before any transaction."""
    from cli.admin import check_listen_multiaddr

    with pytest.raises(errors.ConfigError) as exc:
        check_listen_multiaddr(multiaddr)
    assert "\n" not in str(exc.value) and multiaddr in str(exc.value)
    check_listen_multiaddr("/ip4/10.0.0.5/tcp/4001")
    check_listen_multiaddr("/dns4/hospital.example/tcp/4001/p2p/16Uiu2HAm")
