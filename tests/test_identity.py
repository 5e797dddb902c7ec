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


# --- the encryption key and its signature ---------------------------------------------------

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_encryption_key_is_hkdf_of_the_identity_secret() -> None:
    """Key derivation (fault: the X25519 key is not the documented HKDF-SHA256 derivation, or
    reuses the signing key's bytes): deterministic, 32 bytes, separate from the secp256k1 key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import x25519
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    ident = Identity((7).to_bytes(32, "big"))
    seed = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"swarm/v1/encryption-key"
    ).derive(ident.private_key)
    expected = x25519.X25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    assert ident.encryption_public_key == expected
    assert len(ident.encryption_public_key) == 32
    assert Identity(ident.private_key).encryption_public_key == expected
    assert ident.encryption_public_key not in (ident.public_key[:32], ident.public_key[32:])
    assert Identity.generate().encryption_public_key != expected


def test_encryption_key_signature_verifies_as_the_contract_computes_it() -> None:
    """Signature (fault: the digest or the r||s||v layout differs from what the contract's
    ECDSA.recover checks): keccak256(abi.encode(keccak256("swarm.v1.encryption-key"), account,
    key)), v = 27/28; an independent recovery (eth-account) yields the address."""
    from eth_abi import encode
    from eth_account import Account

    from swarm.identity import encryption_key_digest, verify_encryption_key_signature

    ident = Identity.generate()
    key, sig = ident.encryption_public_key, ident.encryption_key_signature()
    digest = keccak(
        encode(
            ["bytes32", "address", "bytes32"],
            [keccak(b"swarm.v1.encryption-key"), ident.address, key],
        )
    )
    assert encryption_key_digest(ident.address, key) == digest
    assert len(sig) == 65 and sig[64] in (27, 28)
    assert int.from_bytes(sig[32:64], "big") <= SECP256K1_N // 2
    assert Account._recover_hash(digest, signature=sig) == ident.address
    assert verify_encryption_key_signature(ident.address, key, sig)
    assert verify_encryption_key_signature(bytes.fromhex(ident.address[2:]), key, sig)


def test_encryption_key_signature_for_another_address_or_key_fails() -> None:
    """Wrong signer (fault: a card vouches for a key with someone else's signature, or a key
    swapped under a valid signature)."""
    from swarm.identity import verify_encryption_key_signature

    ident, other = Identity.generate(), Identity.generate()
    key, sig = ident.encryption_public_key, ident.encryption_key_signature()
    assert not verify_encryption_key_signature(other.address, key, sig)
    assert not verify_encryption_key_signature(ident.address, other.encryption_public_key, sig)
    assert not verify_encryption_key_signature(ident.address, key, other.encryption_key_signature())


def test_malleated_or_malformed_signature_fails() -> None:
    """Malleability (fault: a high-s twin or a raw recovery id passes here but the contract,
    OpenZeppelin ECDSA, refuses it)."""
    from swarm.identity import verify_encryption_key_signature

    ident = Identity.generate()
    key, sig = ident.encryption_public_key, ident.encryption_key_signature()
    s = int.from_bytes(sig[32:64], "big")
    twin = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([sig[64] ^ 1])
    assert not verify_encryption_key_signature(ident.address, key, twin)
    assert not verify_encryption_key_signature(ident.address, key, sig[:64] + bytes([sig[64] - 27]))
    assert not verify_encryption_key_signature(ident.address, key, sig[:64])
    assert not verify_encryption_key_signature("not an address", key, sig)


def test_member_card_carries_a_verifiable_encryption_key() -> None:
    """Member card (fault: the admin cannot register the encryption key, or registers one the
    card's owner never vouched for)."""
    from swarm.identity import member_card, parse_member_card

    ident = Identity.generate()
    card = member_card(ident)
    parsed = parse_member_card(card)
    assert parsed.address == ident.address
    assert parsed.public_key == ident.public_key and parsed.peer_id == ident.peer_id
    assert parsed.encryption_key == ident.encryption_public_key
    assert parsed.encryption_key_sig == ident.encryption_key_signature()
    assert card["encryption_key"] == "0x" + ident.encryption_public_key.hex()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"encryption_key": None}, "encryption_key is missing"),
        ({"encryption_key_sig": None}, "encryption_key_sig is missing"),
        ({"encryption_key": "0x1234"}, "encryption_key is 2 bytes"),
        ({"encryption_key": "0xzz"}, "encryption_key is not hex"),
        ({"encryption_key": "0x" + "00" * 32}, "all zeros"),
        ({"encryption_key": "0x" + "11" * 32}, "signature over its encryption key"),
        ({"address": "0x" + "22" * 20}, "does not belong"),
    ],
)
def test_member_card_with_a_bad_encryption_key_is_refused(
    change: dict[str, object], message: str
) -> None:
    """Card checks (fault: a card with a missing, malformed or unsigned encryption key reaches
    the contract, or fails with a traceback instead of one line)."""
    from swarm.identity import member_card, parse_member_card

    card: dict[str, object] = {**member_card(Identity.generate()), **change}
    card = {k: v for k, v in card.items() if v is not None}
    with pytest.raises(errors.ConfigError, match=message) as info:
        parse_member_card(card)
    assert "\n" not in str(info.value)
