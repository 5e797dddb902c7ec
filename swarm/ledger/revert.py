"""Decode contract reverts, from any backend, into swarm's typed errors.

anvil (through web3) raises ``ContractCustomError`` whose ``data`` is the ABI-encoded custom
error; eth-tester raises ``TransactionFailed`` whose message holds the same bytes as a Python
``bytes`` literal. Both come down to: 4-byte selector + ABI-encoded arguments, which the
contract's ABI names.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from swarm import errors
from swarm.ledger.artifacts import load_artifact

# Solidity error name -> our class (both contracts, OpenZeppelin's included). Names not listed
# decode to plain ContractRevertError.
ERROR_CLASSES: dict[str, type[errors.ContractRevertError]] = {
    # Consortium (and OpenZeppelin AccessControl / AccessControlDefaultAdminRules)
    "AccessControlUnauthorizedAccount": errors.NotAdminError,
    "AccessControlBadConfirmation": errors.NotAdminError,
    "AccessControlEnforcedDefaultAdminRules": errors.NotAdminError,
    "AccessControlEnforcedDefaultAdminDelay": errors.NotAdminError,
    "AccessControlInvalidDefaultAdmin": errors.NotAdminError,
    "InvalidAccount": errors.InvalidParameterError,
    "NotAMember": errors.NotAMemberError,
    "MemberAlreadyExists": errors.MemberExistsError,
    "PublicKeyMismatch": errors.PublicKeyMismatchError,
    "InvalidPublicKeyLength": errors.PublicKeyMismatchError,
    "EncryptionKeySignatureInvalid": errors.PublicKeyMismatchError,
    "InvalidParameter": errors.InvalidParameterError,
    "UnknownParamsVersion": errors.InvalidParameterError,
    # SwarmLedger
    "WrongBaseModel": errors.WrongRoundStateError,
    "WrongRoundState": errors.WrongRoundStateError,
    "RoundFull": errors.WrongRoundStateError,
    "NotLatestFinalized": errors.WrongRoundError,
    "DeadlinePassed": errors.DeadlinePassedError,
    "DeadlineNotPassed": errors.DeadlineNotPassedError,
    "AlreadyJoined": errors.AlreadyDoneError,
    "AlreadyCommitted": errors.AlreadyDoneError,
    "AlreadyAcknowledged": errors.AlreadyDoneError,
    "MetricsAlreadyReported": errors.AlreadyDoneError,
    "RolesAlreadyDrawn": errors.AlreadyDoneError,
    "NotParticipant": errors.NotParticipantError,
    "NotContributor": errors.NotParticipantError,
    "SittingOut": errors.NotParticipantError,
    "PrivacyBudgetExhausted": errors.NotParticipantError,  # join: like SittingOut
    "PrivacyBudgetExceeded": errors.InvalidParameterError,
    "EpsilonDecreased": errors.InvalidParameterError,
    "InvalidSharesHash": errors.InvalidParameterError,
    "NotMergePeer": errors.NotYourRoleError,
    "NotKeySteward": errors.NotYourRoleError,
    "InvalidContributors": errors.InvalidContributorsError,
    "TooFewContributors": errors.InvalidContributorsError,
    "MetricsDisabled": errors.InvalidParameterError,
}

_ENUMS = {"RoundState", "LapseReason"}


@dataclass(frozen=True)
class _ErrorAbi:
    name: str
    types: list[str]  # ABI types, for decoding
    fields: list[str]  # argument names
    internal: list[str]  # Solidity types ("enum SwarmLedger.RoundState"), for presenting


@cache
def _selectors() -> dict[bytes, _ErrorAbi]:
    table: dict[bytes, _ErrorAbi] = {}
    abi = [*load_artifact("SwarmLedger").abi, *load_artifact("Consortium").abi]
    for item in abi:
        if item.get("type") != "error":
            continue
        entry = _ErrorAbi(
            name=item["name"],
            types=[i["type"] for i in item["inputs"]],
            fields=[i["name"] for i in item["inputs"]],
            internal=[i.get("internalType", "") for i in item["inputs"]],
        )
        table[keccak(text=f"{entry.name}({','.join(entry.types)})")[:4]] = entry
    return table


def decode_revert_data(data: bytes) -> errors.ContractRevertError | None:
    """The typed error for raw revert data, or None if it is not one of the contract's errors."""
    entry = _selectors().get(bytes(data[:4]))
    if entry is None:
        return None
    try:
        values = abi_decode(entry.types, bytes(data[4:]))
    except Exception:  # malformed payload: report the name, not garbage values
        values = ()
    decoded = {
        field: _present(abi_type, internal, value)
        for field, abi_type, internal, value in zip(
            entry.fields, entry.types, entry.internal, values, strict=False
        )
    }
    if entry.name == "WrongRoundState" and isinstance(decoded.get("expectedMask"), int):
        from swarm.ledger.types import RoundState

        states = RoundState.from_mask(decoded["expectedMask"])
        decoded["expected"] = "|".join(state.name for state in states)
    if isinstance(decoded.get("neededRole"), bytes):  # OpenZeppelin AccessControl
        decoded["neededRole"] = _ROLE_NAMES.get(decoded["neededRole"], decoded["neededRole"])
    cls = ERROR_CLASSES.get(entry.name, errors.ContractRevertError)
    return cls(entry.name, decoded)


#: role hashes of the Consortium, named for the one line a refused admin reads
_ROLE_NAMES = {
    keccak(text="swarm.ADMIN_ROLE"): "ADMIN_ROLE",
    b"\0" * 32: "DEFAULT_ADMIN_ROLE (the owner)",
}


def _present(abi_type: str, internal: str, value: Any) -> Any:
    if abi_type == "address":
        return to_checksum_address(value)
    enum = internal.removeprefix("enum ").split(".")[-1]
    if enum in _ENUMS:
        from swarm.ledger import types as ledger_types

        cls = ledger_types.RoundState if enum == "RoundState" else ledger_types.LapseReason
        return cls(value).name
    return value


_BYTES_LITERAL = re.compile(r"execution reverted: (b'.*'|b\".*\")", re.S)


def revert_data_of(exc: BaseException) -> bytes | None:
    """Raw revert bytes carried by an exception from web3 (anvil) or eth-tester, if any."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, dict) and isinstance(data.get("data"), str):
        return bytes.fromhex(data["data"].removeprefix("0x"))
    for arg in exc.args:
        if isinstance(arg, bytes | bytearray) and len(arg) >= 4:
            return bytes(arg)
        if isinstance(arg, str):
            match = _BYTES_LITERAL.search(arg)
            if match:
                literal = ast.literal_eval(match.group(1))
                if isinstance(literal, bytes):
                    return literal
            if arg.startswith("0x") and len(arg) >= 10:
                try:
                    return bytes.fromhex(arg[2:])
                except ValueError:
                    pass
    return None


def decode_exception(exc: BaseException) -> errors.ContractRevertError | None:
    """Decode the revert behind ``exc``, looking down its chain of causes too: eth-tester
    re-raises a custom error whose arguments hold a string as that string alone, and keeps the
    raw bytes only on the exception it was handling."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        data = revert_data_of(current)
        typed = decode_revert_data(data) if data else None
        if typed is not None:
            return typed
        current = current.__cause__ or current.__context__
    return None


@contextmanager
def decoded_reverts() -> Iterator[None]:
    """Re-raise contract reverts from either backend as swarm's typed errors."""
    try:
        yield
    except errors.SwarmError:
        raise
    except Exception as exc:
        typed = decode_exception(exc)
        if typed is not None:
            raise typed from exc
        if _is_revert(exc):
            raise errors.TransactionError(f"transaction reverted: {exc}") from exc
        raise


def _is_revert(exc: BaseException) -> bool:
    name = type(exc).__name__
    return name in {"TransactionFailed", "ContractLogicError", "ContractCustomError"} or (
        "revert" in str(exc).lower()
    )
