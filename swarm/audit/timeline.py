"""One sentence per ledger event, for timelines that people read."""

from __future__ import annotations

from collections.abc import Mapping

from swarm.ledger.events import LedgerEvent
from swarm.ledger.types import LapseReason


def _short(value: bytes | str) -> str:
    text = "0x" + value.hex() if isinstance(value, bytes) else value
    return text[:12] + "…"


def describe(event: LedgerEvent, names: Mapping[str, str]) -> str:
    """What ``event`` means, naming accounts by their member names where known."""

    def who(address: str) -> str:
        return f"{names.get(address, '?')} ({_short(address)})"

    a = event.args
    match event.name:
        case "RoundOpened":
            return f"opened by {who(a['by'])}, needs {a['minPeers']} peers"
        case "Joined":
            return f"{who(a['account'])} joined"
        case "JoinClosed":
            return (
                f"join closed: merge peer {who(a['mergePeer'])}, key steward {who(a['keySteward'])}"
            )
        case "RoundKeyPosted":
            return (
                f"round key {_short(a['keyHash'])} (attempt {a['attempt']}) "
                f"by {who(a['keySteward'])}"
            )
        case "KeyStewardReplaced":
            return (
                f"key steward {who(a['previous'])} missed its deadline; "
                f"replaced by {who(a['next'])}"
            )
        case "MergePeerReplaced":
            return (
                f"merge peer {who(a['previous'])} missed its deadline; "
                f"replaced by {who(a['next'])}, attempt {a['attempt']} starts"
            )
        case "UpdateCommitted":
            return (
                f"{who(a['account'])} committed update {_short(a['updateHash'])} "
                f"({a['sampleCount']} samples)"
            )
        case "AggregateSubmitted":
            return (
                f"aggregate {_short(a['aggregateHash'])} by {who(a['mergePeer'])}: "
                f"{len(a['contributors'])} contributors, {a['totalSamples']} samples"
            )
        case "Acknowledged":
            return f"{who(a['account'])} acknowledged model {_short(a['modelHash'])}"
        case "RoundFinalized":
            return (
                f"finalized model {_short(a['modelHash'])} "
                f"({a['acks']} of {a['eligible']} acknowledgements)"
            )
        case "RoundLapsed":
            reason = LapseReason(a["reason"]).name.lower().replace("_", " ")
            return f"lapsed: {reason}"
        case "MetricsReported":
            return (
                f"{who(a['account'])} reported accuracy {a['accuracyPpm'] / 1e6:.3f}, "
                f"AUC {a['aucPpm'] / 1e6:.3f} on {a['testSamples']} test samples"
            )
        case "MemberAdded":
            return f"admitted {a['name']} ({_short(a['account'])}) by {who(a['by'])}"
        case "MemberRemoved":
            return f"removed {who(a['account'])} by {who(a['by'])}"
        case "ParamsSet":
            return f"parameters set by {who(a['by'])}"
        case "AdminAdded":
            return f"admin role granted to {who(a['account'])} by {who(a['by'])}"
        case "AdminRemoved":
            return f"admin role revoked from {who(a['account'])} by {who(a['by'])}"
        case "MemberAddressesUpdated":
            return f"{who(a['account'])} now listens on {', '.join(a['multiaddrs']) or 'nothing'}"
        case _:
            return event.name
