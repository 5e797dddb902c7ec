"""One key: Ethereum address and libp2p PeerID; the keystore and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_utils import keccak

from swarm import errors
from swarm.identity import (
    DEV_SCRYPT_N,
    Identity,
    address_of_peer_id,
    load_keystore,
    public_key_of_peer_id,
    read_keystore_address,
    save_keystore,
)


def test_peer_id_embeds_the_key_whose_hash_is_the_address() -> None:
    ident = Identity.generate()
    compressed = public_key_of_peer_id(ident.peer_id)
    assert compressed == ident.compressed_public_key
    import coincurve

    uncompressed = coincurve.PublicKey(compressed).format(compressed=False)
    assert "0x" + keccak(uncompressed[1:])[-20:].hex() == ident.address.lower()
    assert address_of_peer_id(ident.peer_id) == ident.address
    assert ident.peer_id.startswith("16Uiu2")


def test_peer_id_matches_libp2p() -> None:
    """Our PeerID is the one py-libp2p derives from the same secp256k1 key."""
    from libp2p.crypto.secp256k1 import create_new_key_pair
    from libp2p.peer.id import ID

    ident = Identity.generate()
    pair = create_new_key_pair(ident.private_key)
    assert ID.from_pubkey(pair.public_key).to_base58() == ident.peer_id


def test_peer_id_of_other_key_type_is_refused() -> None:
    with pytest.raises(ValueError):
        public_key_of_peer_id("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")  # RSA/sha256


def test_keystore_roundtrip(tmp_path: Path) -> None:
    ident = Identity.generate()
    path = tmp_path / "key.json"
    save_keystore(ident, path, "correct horse", scrypt_n=DEV_SCRYPT_N)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_keystore(path, "correct horse") == ident
    assert read_keystore_address(path) == ident.address
    with pytest.raises(FileExistsError):
        save_keystore(ident, path, "x", scrypt_n=DEV_SCRYPT_N)


def test_wrong_password_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    save_keystore(Identity.generate(), path, "right", scrypt_n=DEV_SCRYPT_N)
    with pytest.raises(errors.WrongPasswordError):
        load_keystore(path, "wrong")


def test_missing_keystore_is_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.KeystoreNotFoundError):
        load_keystore(tmp_path / "nope.json", "x")


def test_truncated_keystore_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    save_keystore(Identity.generate(), path, "pw", scrypt_n=DEV_SCRYPT_N)
    path.write_text(path.read_text()[:80])
    with pytest.raises(errors.KeystoreCorruptError):
        load_keystore(path, "pw")


@pytest.mark.parametrize("field", ["ciphertext", "mac"])
def test_corrupted_keystore_is_refused(tmp_path: Path, field: str) -> None:
    """A flipped byte in the ciphertext or MAC fails the MAC check: never a wrong key."""
    path = tmp_path / "key.json"
    save_keystore(Identity.generate(), path, "pw", scrypt_n=DEV_SCRYPT_N)
    data = json.loads(path.read_text())
    value = data["crypto"][field]
    data["crypto"][field] = ("0" if value[0] != "0" else "1") + value[1:]
    path.write_text(json.dumps(data))
    with pytest.raises(errors.KeystoreError):
        load_keystore(path, "pw")


def test_keystore_without_crypto_section_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"address": "00" * 20}))
    with pytest.raises(errors.KeystoreCorruptError):
        load_keystore(path, "pw")


def test_identity_repr_hides_the_key() -> None:
    ident = Identity.generate()
    assert ident.private_key.hex() not in repr(ident)
