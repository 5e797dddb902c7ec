"""Tagged hashes: every hash swarm commits to, addresses by or compares says what it is a hash of.

``tagged_hash(tag, data) = sha256(sha256(tag) || sha256(tag) || data)`` (the construction of
BIP-340). Two hashes of the same bytes under two tags are unrelated, so a hash made for one
purpose (a blob commitment, say) can never be passed off as one made for another (a model
acknowledgement, a task id). The 64-byte prefix is exactly one SHA-256 block: its state is
computed once per tag and copied, so a tagged hash costs what a plain one does.

The tags are a closed registry, :class:`Tag`: :func:`tagged_hash` takes nothing else, and each
purpose has exactly one tag. Each hash still has one function that computes it (and that the
rest of swarm calls): ``swarm.crypto.blob_id``, ``swarm.crypto.context_hash``,
``swarm.crypto.Layout.hash``, ``swarm.training.checkpoint.model_hash`` (also what a checkpoint
file's header states and is checked against),
``swarm.training.task_id.task_id``, and, for blobs moving between peers,
``swarm.p2p.store.content_digest`` (which uses the same tag as the commitment of each kind, so
the digest a peer stores a blob under *is* what the ledger records).

Labels that are not hash tags (key-derivation and encryption contexts) are listed below the
registry, so every domain-separation string of the protocol is in this one file.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import _Hash

DIGEST_SIZE = 32


class Tag(Enum):
    """The registry of hash tags (one per purpose; the value is the tag's bytes).

    Changing what goes into a hash means a new tag (``swarm/v2/...``), never a reused one.
    """

    #: An encrypted blob (a participant's update, the merge peer's aggregate), all its bytes:
    #: what a sender commits on the ledger (``commitUpdate``/``submitAggregate``) and what
    #: peers address it by (``swarm.crypto.blob_id``).
    BLOB = b"swarm/v1/blob"
    #: The payload of a blob, after its header: the checksum carried inside the header
    #: (catches corruption of a blob read without its ledger commitment).
    BLOB_PAYLOAD = b"swarm/v1/blob-payload"
    #: A round's public CKKS context, all its bytes: the round key's hash the steward posts on
    #: the ledger (``postRoundKey``) and what peers address the context by.
    ROUND_CONTEXT = b"swarm/v1/round-context"
    #: A round secret key sealed to one participant (HPKE output): its address between peers.
    #: Nothing on the ledger commits to it.
    SEALED_KEY = b"swarm/v1/sealed-key"
    #: A model's canonical encoding (``swarm.training.checkpoint.model_bytes``): the model
    #: hash hospitals acknowledge, the initial model hash in the parameters, and what a
    #: finalized model is fetched by.
    MODEL = b"swarm/v1/model"
    #: A model layout's canonical encoding (names, shapes, dtypes): carried in blob headers.
    LAYOUT = b"swarm/v1/layout"
    #: A task's name and seed (``name || 0x00 || decimal seed``): the ledger's ``taskId``.
    TASK = b"swarm/v1/task"
    #: A task file's canonical encoding (``swarm.training.taskfile``: its parsed TOML as
    #: sorted, compact JSON): the ledger's ``taskId`` of a task declared in a file.
    TASK_FILE = b"swarm/v1/task-file"
    #: Short fingerprints shown to people (never compared by the protocol).
    FINGERPRINT = b"swarm/v1/fingerprint"
    #: One Shamir share of a mask secret (MaskContext, owner index, holder index, secret index,
    #: share): the entries of a holder's row of shares (``swarm.crypto.shares``).
    MASK_SHARE = b"swarm/v1/mask-share"
    #: One holder's row of share hashes (MaskContext, owner index, holder index, the row): the
    #: entries of a share manifest (``swarm.crypto.shares``).
    MASK_SHARE_ROW = b"swarm/v1/mask-share-row"
    #: A share manifest, all its bytes: the ``sharesHash`` a participant commits on the ledger
    #: (``commitUpdate``) and what reveals are checked against.
    MASK_SHARES = b"swarm/v1/mask-shares"
    #: A shares blob (manifest + shares sealed to one holder), all its bytes: what peers
    #: address and store it by. Nothing on the ledger commits to it (the manifest is committed).
    SHARES_BLOB = b"swarm/v1/shares-blob"
    #: A holder's reveal of mask shares, all its bytes: what peers address and store it by.
    REVEAL_BLOB = b"swarm/v1/reveal-blob"


# --- labels that are not hash tags ------------------------------------------------------------

#: HKDF-SHA256 ``info`` deriving a hospital's X25519 decryption key from its identity secret.
ENCRYPTION_KEY_INFO = b"swarm/v1/encryption-key"
#: Prefix of the HPKE ``info`` of a sealed round key (``swarm.crypto.SealBinding.info``).
SEAL_INFO_LABEL = b"swarm/v1/round-key-seal"
#: HKDF-SHA256 ``info`` prefix of a pairwise mask seed (``swarm.crypto.masking.pairwise_seed``):
#: ``this || MaskContext.pack() || min(address) || max(address)``.
PAIRWISE_MASK_INFO = b"swarm/v1/pairwise-mask"
#: HKDF-SHA256 ``info`` prefix of the ChaCha20 key that expands a mask seed into ring elements:
#: ``this || MaskContext.pack()``.
MASK_EXPAND_INFO = b"swarm/v1/mask-expand"
#: Prefix of the HPKE ``info`` of mask shares sealed to a holder (``swarm.crypto.shares``).
MASK_SHARES_SEAL_INFO = b"swarm/v1/mask-shares-seal"
#: keccak256 preimage of the type hash in the identity key's signature over its encryption key
#: (``keccak256(abi.encode(keccak256(this), account, encryptionKey))``; the contract checks it).
ENCRYPTION_KEY_SIG_LABEL = b"swarm.v1.encryption-key"


def _prefix_state(tag: Tag) -> _Hash:
    tag_digest = hashlib.sha256(tag.value).digest()
    return hashlib.sha256(tag_digest + tag_digest)


_PREFIX: dict[Tag, _Hash] = {tag: _prefix_state(tag) for tag in Tag}


def tagged_hasher(tag: Tag) -> _Hash:
    """A SHA-256 object already fed ``sha256(tag) || sha256(tag)``: ``update`` it with the data
    (for data that arrives in pieces); ``digest()`` is :func:`tagged_hash` of all of it."""
    if not isinstance(tag, Tag):
        raise TypeError(f"a hash tag must be a swarm.hashing.Tag, not {type(tag).__name__}")
    return _PREFIX[tag].copy()


def tagged_hash(tag: Tag, data: bytes | bytearray | memoryview) -> bytes:
    """``sha256(sha256(tag) || sha256(tag) || data)``: 32 bytes."""
    hasher = tagged_hasher(tag)
    hasher.update(data)
    return hasher.digest()


__all__ = [
    "DIGEST_SIZE",
    "ENCRYPTION_KEY_INFO",
    "ENCRYPTION_KEY_SIG_LABEL",
    "MASK_EXPAND_INFO",
    "MASK_SHARES_SEAL_INFO",
    "PAIRWISE_MASK_INFO",
    "SEAL_INFO_LABEL",
    "Tag",
    "tagged_hash",
    "tagged_hasher",
]
