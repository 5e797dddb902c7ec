"""The peer network: members' libp2p hosts moving encrypted updates reliably.

One secp256k1 key per hospital gives both its ledger address and its PeerID; connections are
TCP + Noise + yamux only, and a connection whose key is not an active member's is refused.
Payloads move over stream protocols (length-prefixed, chunked, digest-checked, with deadlines
and retries). No pubsub runs: every exchange is a request on a stream. See docs/p2p.md.

This package never imports swarm.crypto, swarm.training or swarm.merge: it moves opaque bytes.

The package imports lazily: ``swarm.p2p.config`` (addresses, deadlines) is light, and importing
it does not load py-libp2p (~1-2 s); the names below load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swarm.p2p.config import P2PConfig, TransferPolicy
    from swarm.p2p.membership import (
        JsonFileMembershipSource,
        LedgerMembershipSource,
        MembershipChange,
        MembershipGate,
        MembershipSource,
        MembershipWatcher,
        StaticMembershipSource,
        member_of_identity,
        write_members_file,
    )
    from swarm.p2p.protocols import (
        AGGREGATE_PROTOCOL,
        MASKING_PROTOCOL,
        MODEL_PROTOCOL,
        RETRYABLE_REFUSALS,
        ROUND_KEY_FETCH_PROTOCOL,
        ROUND_KEY_PROTOCOL,
        STATUS_PROTOCOL,
        UPDATE_PROTOCOL,
        PushRequest,
        PushValidator,
        RoundKeyBundle,
        RoundKeyProvider,
        Verdict,
    )
    from swarm.p2p.service import P2PService, open_p2p
    from swarm.p2p.store import (
        CONTENT_TAGS,
        BlobKind,
        BlobRef,
        BlobStore,
        FileBlobStore,
        MemoryBlobStore,
        content_digest,
    )

__all__ = [
    "AGGREGATE_PROTOCOL",
    "CONTENT_TAGS",
    "MASKING_PROTOCOL",
    "MODEL_PROTOCOL",
    "RETRYABLE_REFUSALS",
    "ROUND_KEY_FETCH_PROTOCOL",
    "ROUND_KEY_PROTOCOL",
    "STATUS_PROTOCOL",
    "UPDATE_PROTOCOL",
    "BlobKind",
    "BlobRef",
    "BlobStore",
    "FileBlobStore",
    "JsonFileMembershipSource",
    "LedgerMembershipSource",
    "MembershipChange",
    "MembershipGate",
    "MembershipSource",
    "MembershipWatcher",
    "MemoryBlobStore",
    "P2PConfig",
    "P2PService",
    "PushRequest",
    "PushValidator",
    "RoundKeyBundle",
    "RoundKeyProvider",
    "StaticMembershipSource",
    "TransferPolicy",
    "Verdict",
    "content_digest",
    "member_of_identity",
    "open_p2p",
    "write_members_file",
]

#: where each exported name lives
_HOME = {
    **dict.fromkeys(("P2PConfig", "TransferPolicy"), "swarm.p2p.config"),
    **dict.fromkeys(
        (
            "JsonFileMembershipSource",
            "LedgerMembershipSource",
            "MembershipChange",
            "MembershipGate",
            "MembershipSource",
            "MembershipWatcher",
            "StaticMembershipSource",
            "member_of_identity",
            "write_members_file",
        ),
        "swarm.p2p.membership",
    ),
    **dict.fromkeys(
        (
            "AGGREGATE_PROTOCOL",
            "MASKING_PROTOCOL",
            "MODEL_PROTOCOL",
            "RETRYABLE_REFUSALS",
            "ROUND_KEY_FETCH_PROTOCOL",
            "ROUND_KEY_PROTOCOL",
            "STATUS_PROTOCOL",
            "UPDATE_PROTOCOL",
            "PushRequest",
            "PushValidator",
            "RoundKeyBundle",
            "RoundKeyProvider",
            "Verdict",
        ),
        "swarm.p2p.protocols",
    ),
    **dict.fromkeys(("P2PService", "open_p2p"), "swarm.p2p.service"),
    **dict.fromkeys(
        (
            "CONTENT_TAGS",
            "BlobKind",
            "BlobRef",
            "BlobStore",
            "FileBlobStore",
            "MemoryBlobStore",
            "content_digest",
        ),
        "swarm.p2p.store",
    ),
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
