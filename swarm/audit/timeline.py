"""One sentence per ledger event, for timelines that people read."""

from __future__ import annotations

from collections.abc import Mapping

from swarm.audit.history import role_name
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
            version = a.get("paramsVersion")
            params = f" (parameters v{version})" if version is not None else ""
            return f"opened by {who(a['by'])}, needs {a['minPeers']} peers{params}"
        case "Joined":
            index = a.get("index")
            return f"{who(a['account'])} joined" + (f" as #{index}" if index is not None else "")
        case "JoinClosed":
            return (
                f"join closed by {who(a['by'])}; the roles come from the hash of block "
                f"{a['drawBlock']}"
            )
        case "RolesDrawn":
            return (
                f"roles drawn (seed {_short(a['seed'])}): merge peer {who(a['mergePeer'])}, "
                f"key steward {who(a['keySteward'])}"
            )
        case "RoundKeyPosted":
            return (
                f"round key {_short(a['keyHash'])} (attempt {a['attempt']}) "
                f"by {who(a['keySteward'])}"
            )
        case "KeyStewardReplaced":
            return (
                f"key steward {who(a['previous'])} replaced by {who(a['next'])} "
                f"(called by {who(a['by'])})"
            )
        case "MergePeerReplaced":
            return (
                f"merge peer {who(a['previous'])} replaced by {who(a['next'])} "
                f"(called by {who(a['by'])}), attempt {a['attempt']} starts"
            )
        case "UpdateCommitted":
            return (
                f"{who(a['account'])} committed update {_short(a['updateHash'])} "
                f"({a['sampleCount']} samples)"
            )
        case "AggregateSubmitted":
            return (
                f"aggregate {_short(a['aggregateHash'])} by {who(a['mergePeer'])}: "
                f"{bin(int(a['contributorBits'])).count('1')} contributors, "
                f"{a['totalSamples']} samples"
            )
        case "CommitMissed":
            return (
                f"{who(a['account'])} did not commit in the final attempt "
                f"({a['consecutiveMisses']} in a row)"
            )
        case "SittingOut":
            return (
                f"{who(a['account'])} sits out rounds {a['fromRound']} to {a['untilRound']} "
                "(too many missed commits)"
            )
        case "ParticipantLeft":
            return f"{who(a['account'])} left the round (removed from the consortium)"
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
        case "PrivacySpent":
            return (
                f"{who(a['account'])} spent epsilon {a['roundEpsilon'] / 1e6:.6f} "
                f"(cumulative {a['totalEpsilon'] / 1e6:.6f})"
            )
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
            version = a.get("version")
            label = f"parameters v{version}" if version is not None else "parameters"
            return f"{label} set by {who(a['by'])}"
        case "RoleGranted":
            return (
                f"{role_name(a['role'])} role granted to {who(a['account'])} by {who(a['sender'])}"
            )
        case "RoleRevoked":
            return (
                f"{role_name(a['role'])} role revoked from {who(a['account'])} "
                f"by {who(a['sender'])}"
            )
        case "DefaultAdminTransferScheduled":
            return (
                f"owner role handover to {who(a['newAdmin'])} begun "
                f"(it may accept after {a['acceptSchedule']})"
            )
        case "DefaultAdminTransferCanceled":
            return "owner role handover cancelled"
        case "DefaultAdminDelayChangeScheduled":
            return f"owner handover delay to become {a['newDelay']} s"
        case "LedgerBound":
            return f"consortium bound to the ledger {_short(a['ledger'])} by {who(a['by'])}"
        case "EncryptionKeySet":
            return f"{who(a['account'])} encryption key {_short(a['key'])}"
        case "MemberAddressesUpdated":
            return f"{who(a['account'])} now listens on {', '.join(a['multiaddrs']) or 'nothing'}"
        case _:
            return event.name
