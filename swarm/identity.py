"""One secp256k1 key per hospital: its Ethereum address and its libp2p PeerID.

The same key signs the hospital's ledger transactions and authenticates its libp2p connections
(Noise). Because a secp256k1 PeerID embeds the compressed public key, a remote peer's Ethereum
address can be derived from its authenticated connection and checked against the ledger's member
list, with no separate registry of PeerIDs to keep in sync.

Keys live in eth-account's encrypted keystore format (scrypt + AES-128-CTR + MAC), so standard
Ethereum tooling can read them too.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coincurve
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from swarm._files import write_atomic
from swarm.errors import (
    KeystoreCorruptError,
    KeystoreNotFoundError,
    WrongPasswordError,
)

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

    def __repr__(self) -> str:  # never print the secret
        return f"Identity(address={self.address})"


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


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
