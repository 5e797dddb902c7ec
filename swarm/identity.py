"""One secp256k1 key per hospital: its Ethereum address and its libp2p PeerID, and the X25519
decryption key derived from it.

The same key signs the hospital's ledger transactions and authenticates its libp2p connections
(Noise). Because a secp256k1 PeerID embeds the compressed public key, a remote peer's Ethereum
address can be derived from its authenticated connection and checked against the ledger's member
list, with no separate registry of PeerIDs to keep in sync.

Keys live in eth-account's encrypted keystore format (scrypt + AES-128-CTR + MAC), so standard
Ethereum tooling can read them too.

Key separation: the secp256k1 key signs only Ethereum transactions (their own hashing), libp2p
Noise handshakes (libp2p's own signed prefix) and one statement, "this X25519 key is mine"
(:meth:`Identity.encryption_key_signature`, an EIP-712-like typed digest the contract checks).
Round keys are sealed to a *separate* X25519 key (:meth:`Identity.encryption_private_key`),
derived from the identity secret with HKDF-SHA256, so no ciphertext is ever opened with the
signing key.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coincurve
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from swarm._files import write_atomic
from swarm.errors import (
    ConfigError,
    KeystoreCorruptError,
    KeystoreNotFoundError,
    WrongPasswordError,
)
from swarm.hashing import ENCRYPTION_KEY_INFO, ENCRYPTION_KEY_SIG_LABEL, Tag, tagged_hash

# libp2p's crypto.proto: KeyType.Secp256k1 = 2; PublicKey{ Type = 1 (varint), Data = 2 (bytes) }
_LIBP2P_KEYTYPE_SECP256K1 = 2
# multihash code for "identity": a PeerID of a key whose protobuf is <= 42 bytes is the key itself
_MULTIHASH_IDENTITY = 0x00
_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, rem = divmod(n, 58)
        out = _B58_ALPHABET[rem] + out
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + out


def _b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        idx = _B58_ALPHABET.find(ch)
        if idx < 0:
            raise ValueError(f"invalid base58 character {ch!r}")
        n = n * 58 + idx
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


def address_of_public_key(public_key: bytes) -> str:
    """Checksummed Ethereum address of a secp256k1 public key (33, 64 or 65 bytes)."""
    uncompressed = coincurve.PublicKey(_as_sec1(public_key)).format(compressed=False)
    return to_checksum_address(keccak(uncompressed[1:])[-20:])


def _as_sec1(public_key: bytes) -> bytes:
    # 64 bytes is the raw X||Y form Ethereum tools use; coincurve wants SEC1 with a prefix.
    return b"\x04" + public_key if len(public_key) == 64 else public_key


def peer_id_of_public_key(public_key: bytes) -> str:
    """The libp2p PeerID (base58, ``16Uiu2...``) of a secp256k1 public key."""
    compressed = coincurve.PublicKey(_as_sec1(public_key)).format(compressed=True)
    proto = bytes([0x08, _LIBP2P_KEYTYPE_SECP256K1, 0x12, len(compressed)]) + compressed
    return _b58encode(bytes([_MULTIHASH_IDENTITY, len(proto)]) + proto)


def public_key_of_peer_id(peer_id: str) -> bytes:
    """The compressed secp256k1 public key embedded in a PeerID; ValueError if there is none."""
    raw = _b58decode(peer_id)
    if len(raw) < 2 or raw[0] != _MULTIHASH_IDENTITY or raw[1] != len(raw) - 2:
        raise ValueError(f"PeerID {peer_id} does not embed its public key")
    proto = raw[2:]
    if proto[:2] != bytes([0x08, _LIBP2P_KEYTYPE_SECP256K1]) or proto[2] != 0x12:
        raise ValueError(f"PeerID {peer_id} is not a secp256k1 key")
    key = proto[4 : 4 + proto[3]]
    coincurve.PublicKey(key)  # validates the point
    return key


def address_of_peer_id(peer_id: str) -> str:
    """The Ethereum address of the key a PeerID embeds."""
    return address_of_public_key(public_key_of_peer_id(peer_id))


@dataclass(frozen=True)
class Identity:
    """A hospital's key, with the two names it goes by."""

    private_key: bytes

    def __post_init__(self) -> None:
        if len(self.private_key) != 32:
            raise ValueError("a secp256k1 private key is 32 bytes")
        coincurve.PrivateKey(self.private_key)  # rejects 0 and values >= the curve order

    @classmethod
    def generate(cls) -> Identity:
        while True:
            candidate = secrets.token_bytes(32)
            try:
                return cls(candidate)
            except ValueError:  # astronomically unlikely: out of the curve's range
                continue

    @property
    def public_key(self) -> bytes:
        """Uncompressed public key without the 0x04 prefix (64 bytes), as Ethereum stores it."""
        return coincurve.PrivateKey(self.private_key).public_key.format(compressed=False)[1:]

    @property
    def compressed_public_key(self) -> bytes:
        return coincurve.PrivateKey(self.private_key).public_key.format(compressed=True)

    @property
    def address(self) -> str:
        return address_of_public_key(self.public_key)

    @property
    def peer_id(self) -> str:
        return peer_id_of_public_key(self.public_key)

    def encryption_private_key(self) -> x25519.X25519PrivateKey:
        """The X25519 key round keys are sealed to: HKDF-SHA256 of the identity secret (no salt,
        info ``swarm/v1/encryption-key``). Deterministic, so the keystore is the only backup."""
        seed = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=ENCRYPTION_KEY_INFO
        ).derive(self.private_key)
        return x25519.X25519PrivateKey.from_private_bytes(seed)

    @property
    def encryption_public_key(self) -> bytes:
        """The 32-byte X25519 public key registered on the ledger (the member's encryptionKey)."""
        return (
            self.encryption_private_key()
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )

    def encryption_key_signature(self) -> bytes:
        """The identity key's signature (65 bytes r||s||v, v = 27 or 28) over
        :func:`encryption_key_digest` of its address and encryption key: what the contract
        checks (``addMember``, ``setEncryptionKey``) before it records the key."""
        digest = encryption_key_digest(self.address, self.encryption_public_key)
        rsv = coincurve.PrivateKey(self.private_key).sign_recoverable(digest, hasher=None)
        return rsv[:64] + bytes([rsv[64] + 27])

    def __repr__(self) -> str:  # never print the secret
        return f"Identity(address={self.address})"


#: keccak256("swarm.v1.encryption-key"): the type hash of the encryption-key statement
ENCRYPTION_KEY_TYPEHASH = bytes(keccak(ENCRYPTION_KEY_SIG_LABEL))
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def encryption_key_digest(address: str | bytes, encryption_key: bytes) -> bytes:
    """``keccak256(abi.encode(keccak256("swarm.v1.encryption-key"), account, encryptionKey))``:
    the digest the identity key signs to vouch for its X25519 key (the contract recomputes it)."""
    if len(encryption_key) != 32:
        raise ValueError("an X25519 public key is 32 bytes")
    account = to_checksum_address(address)
    encoded = abi_encode(
        ["bytes32", "address", "bytes32"], [ENCRYPTION_KEY_TYPEHASH, account, bytes(encryption_key)]
    )
    return bytes(keccak(encoded))


def verify_encryption_key_signature(address: str | bytes, key: bytes, sig: bytes) -> bool:
    """Whether ``sig`` (65 bytes r||s||v) is ``address``'s signature over its encryption ``key``.

    As strict as OpenZeppelin's ECDSA.recover: v must be 27 or 28 and s in the lower half of the
    curve order (a malleated signature is refused, as the contract would refuse it).
    """
    try:
        account = to_checksum_address(address)
        digest = encryption_key_digest(account, key)
    except ValueError:
        return False
    if len(sig) != 65 or sig[64] not in (27, 28):
        return False
    s = int.from_bytes(sig[32:64], "big")
    if not 0 < s <= _SECP256K1_N // 2:
        return False
    try:
        recovered = coincurve.PublicKey.from_signature_and_message(
            bytes(sig[:64]) + bytes([sig[64] - 27]), digest, hasher=None
        )
    except (ValueError, TypeError):
        return False
    return address_of_public_key(recovered.format(compressed=False)) == account


@dataclass(frozen=True)
class MemberCard:
    """What a hospital hands its consortium admin to be admitted, checked (no secret in it)."""

    address: str  # checksummed
    public_key: bytes  # 64 bytes X||Y; hashes to address
    peer_id: str  # the PeerID of public_key
    encryption_key: bytes  # 32-byte X25519 public key
    encryption_key_sig: bytes  # 65 bytes r||s||v by the identity key over encryption_key_digest


def member_card(identity: Identity) -> dict[str, str]:
    """The member card of ``identity`` as ``swarm keys show --json`` prints it (hex strings)."""
    return {
        "address": identity.address,
        "public_key": "0x" + identity.public_key.hex(),
        "peer_id": identity.peer_id,
        "encryption_key": "0x" + identity.encryption_public_key.hex(),
        "encryption_key_sig": "0x" + identity.encryption_key_signature().hex(),
    }


def _card_bytes(card: Mapping[str, Any], field: str, size: int | None) -> bytes:
    value = card.get(field)
    if not isinstance(value, str):
        raise ConfigError(f"member card: {field} is missing (`swarm keys show --json` prints it)")
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise ConfigError(f"member card: {field} is not hex") from None
    if size is not None and len(raw) != size:
        raise ConfigError(f"member card: {field} is {len(raw)} bytes, not {size}")
    return raw


def parse_member_card(card: Mapping[str, Any]) -> MemberCard:
    """Check a member card: the public key gives the address and the PeerID, and the encryption
    key carries the identity key's valid signature. ConfigError (one line) otherwise."""
    if not isinstance(card, Mapping):
        raise ConfigError("member card: not a JSON object")
    raw_key = _card_bytes(card, "public_key", None)
    try:
        public_key = coincurve.PublicKey(_as_sec1(raw_key)).format(compressed=False)[1:]
    except (ValueError, TypeError):
        raise ConfigError(
            f"member card: public_key is not a secp256k1 public key ({len(raw_key)} bytes)"
        ) from None
    try:
        address = to_checksum_address(card["address"])
    except (KeyError, ValueError, TypeError):
        raise ConfigError("member card: address is missing or not an Ethereum address") from None
    if address_of_public_key(public_key) != address:
        raise ConfigError(f"member card: the public key does not belong to {address}")
    peer_id = card.get("peer_id") or peer_id_of_public_key(public_key)
    if peer_id != peer_id_of_public_key(public_key):
        raise ConfigError("member card: the PeerID does not belong to the public key")
    encryption_key = _card_bytes(card, "encryption_key", 32)
    if not any(encryption_key):
        raise ConfigError("member card: encryption_key is all zeros")
    signature = _card_bytes(card, "encryption_key_sig", 65)
    if not verify_encryption_key_signature(address, encryption_key, signature):
        raise ConfigError(
            f"member card: encryption_key_sig is not {address}'s signature over its encryption "
            "key (regenerate the card with `swarm keys show --json`)"
        )
    return MemberCard(address, public_key, peer_id, encryption_key, signature)


def fingerprint(data: bytes) -> str:
    """A short fingerprint of ``data`` to show people (16 hex digits)."""
    return tagged_hash(Tag.FINGERPRINT, data).hex()[:16]


#: scrypt work factor for throwaway keys of development networks and tests (the default,
#: 2**18, costs about a second per key on this kind of machine)
DEV_SCRYPT_N = 2**14


def save_keystore(
    identity: Identity,
    path: Path,
    password: str,
    *,
    overwrite: bool = False,
    scrypt_n: int | None = None,
) -> None:
    """Encrypt the key into an eth-account keystore file, written atomically with mode 0600."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; refusing to overwrite a key")
    keystore = Account.encrypt(identity.private_key, password, kdf="scrypt", iterations=scrypt_n)
    write_atomic(path, json.dumps(keystore).encode(), mode=0o600)


def read_keystore_address(path: Path) -> str:
    """The address a keystore declares, without decrypting it (no password needed)."""
    data = _load_keystore_json(Path(path))
    address = data.get("address")
    if not isinstance(address, str) or len(address.removeprefix("0x")) != 40:
        raise KeystoreCorruptError(f"{path}: keystore has no valid 'address' field")
    return to_checksum_address("0x" + address.removeprefix("0x"))


def load_keystore(path: Path, password: str) -> Identity:
    """Decrypt a keystore file; typed errors for a missing, corrupt file or a wrong password."""
    path = Path(path)
    data = _load_keystore_json(path)
    try:
        private_key = bytes(Account.decrypt(data, password))
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise WrongPasswordError(f"{path}: wrong password for this keystore") from exc
        raise KeystoreCorruptError(f"{path}: not a valid keystore ({exc})") from exc
    except (KeyError, TypeError, AttributeError) as exc:
        raise KeystoreCorruptError(f"{path}: keystore is missing fields ({exc})") from exc
    try:
        identity = Identity(private_key)
    except ValueError as exc:
        raise KeystoreCorruptError(f"{path}: keystore holds an invalid key") from exc
    declared = data.get("address")
    if (
        isinstance(declared, str)
        and declared.removeprefix("0x").lower() != identity.address[2:].lower()
    ):
        raise KeystoreCorruptError(f"{path}: decrypted key does not match the declared address")
    return identity


def _load_keystore_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise KeystoreNotFoundError(f"{path}: no such keystore file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KeystoreCorruptError(f"{path}: keystore is not valid JSON (truncated?)") from exc
    if not isinstance(data, dict) or ("crypto" not in data and "Crypto" not in data):
        raise KeystoreCorruptError(f"{path}: not an Ethereum keystore (no 'crypto' section)")
    return data
