"""Membership and parameters: who may change them, and what the contract checks."""

from __future__ import annotations

import dataclasses

import pytest

from swarm import errors
from swarm.identity import Identity
from tests.conftest import Consortium, h


def test_member_record_holds_key_peer_id_and_addresses(consortium: Consortium) -> None:
    c = consortium
    ident = c.hospitals[0]
    m = c.admin.member(ident.address)
    assert m is not None
    assert m.public_key == ident.public_key
    assert m.peer_id == ident.peer_id
    assert m.multiaddrs == ("/ip4/127.0.0.1/tcp/4000",)
    assert m.name == "Hospital 0" and m.active
    assert [x.address for x in c.admin.members()] == c.addresses


def test_admin_removes_and_readmits_member(consortium: Consortium) -> None:
    c = consortium
    gone = c.addresses[1]
    c.admin.remove_member(gone)
    assert not c.admin.is_member(gone)
    assert [m.address for m in c.admin.active_members()] == [a for a in c.addresses if a != gone]
    ident = c.hospitals[1]
    c.admin.add_member(ident.address, ident.public_key, "Hospital 1 again")
    assert c.admin.is_member(gone)
    assert len(c.admin.members()) == 4  # no duplicate record


def test_non_admin_cannot_change_membership(consortium: Consortium) -> None:
    """A non-admin changes membership: refused with its address."""
    c = consortium
    member = c.client(c.addresses[0])
    newcomer = Identity.generate()
    with pytest.raises(errors.NotAdminError) as exc:
        member.add_member(newcomer.address, newcomer.public_key, "Rogue")
    assert exc.value.values == {"account": c.addresses[0]}
    with pytest.raises(errors.NotAdminError):
        member.remove_member(c.addresses[1])
    with pytest.raises(errors.NotAdminError):
        member.add_admin(c.addresses[0])


def test_non_admin_cannot_set_params(consortium: Consortium) -> None:
    """A non-admin changes parameters: refused."""
    c = consortium
    params = dataclasses.replace(c.admin.params(), min_peers=3)
    with pytest.raises(errors.NotAdminError):
        c.client(c.addresses[0]).set_params(params)
    c.admin.set_params(params)
    assert c.admin.params().min_peers == 3


def test_public_key_must_match_address(consortium: Consortium) -> None:
    """An admin registers a public key that does not match the address: refused by the contract."""
    c = consortium
    a, b = Identity.generate(), Identity.generate()
    with pytest.raises(errors.PublicKeyMismatchError) as exc:
        c.admin.add_member(a.address, b.public_key, "Mismatched")
    assert exc.value.values == {"account": a.address, "derived": b.address}


def test_peer_id_must_match_public_key(consortium: Consortium) -> None:
    """The client refuses a PeerID that is not the public key's before sending anything."""
    c = consortium
    a, b = Identity.generate(), Identity.generate()
    with pytest.raises(errors.ConfigError):
        c.admin.add_member(a.address, a.public_key, "X", peer_id=b.peer_id)


def test_duplicate_member_is_refused(consortium: Consortium) -> None:
    c = consortium
    ident = c.hospitals[0]
    with pytest.raises(errors.MemberExistsError):
        c.admin.add_member(ident.address, ident.public_key, "again")


def test_invalid_params_are_refused(consortium: Consortium) -> None:
    c = consortium
    with pytest.raises(errors.InvalidParameterError) as exc:
        c.admin.set_params(dataclasses.replace(c.admin.params(), min_peers=1))
    assert exc.value.values == {"name": "minPeers", "value": 1}
    with pytest.raises(errors.InvalidParameterError):
        c.admin.set_params(dataclasses.replace(c.admin.params(), commit_window=0))


def test_last_admin_cannot_be_removed(consortium: Consortium) -> None:
    c = consortium
    admin = c.admin.identity
    assert admin is not None
    with pytest.raises(errors.NotAdminError) as exc:
        c.admin.remove_admin(admin.address)
    assert exc.value.name == "LastAdmin"
    c.admin.add_admin(c.addresses[0])
    c.admin.remove_admin(admin.address)
    assert not c.admin.is_admin(admin.address)
    assert c.admin.is_admin(c.addresses[0])


def test_member_updates_own_multiaddrs(consortium: Consortium) -> None:
    c = consortium
    c.client(c.addresses[2]).update_multiaddrs(["/ip4/10.0.0.7/tcp/4100"])
    m = c.admin.member(c.addresses[2])
    assert m is not None and m.multiaddrs == ("/ip4/10.0.0.7/tcp/4100",)
    outsider = c.admin.as_identity(c.new_identity())
    with pytest.raises(errors.NotAMemberError):
        outsider.update_multiaddrs(["/ip4/10.0.0.8/tcp/1"])


def test_read_only_client_cannot_send(consortium: Consortium) -> None:
    c = consortium
    reader = type(c.admin)(c.chain, c.admin.address)
    with pytest.raises(errors.ConfigError):
        reader.open_round(h("model-0"))


def test_wrong_contract_address_is_a_typed_error(consortium: Consortium) -> None:
    """No contract at the address (e.g. a chain restarted without its state)."""
    with pytest.raises(errors.ContractNotFoundError):
        type(consortium.admin)(consortium.chain, Identity.generate().address)
