"""Decoding the contract's event logs into plain values an auditor can work from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract import Contract


@dataclass(frozen=True)
class LedgerEvent:
    """One event, in chain order: ``(block_number, log_index)``."""

    name: str
    args: dict[str, Any]
    block_number: int
    log_index: int
    tx_hash: str
    timestamp: int = field(default=0, compare=False)


def _plain(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def decode_logs(
    w3: Web3, contracts: Contract | Sequence[Contract], logs: Sequence[Any]
) -> list[LedgerEvent]:
    """The logs of ``contracts`` (each decoded with the ABI of the contract that emitted it;
    others skipped), in chain order."""
    if isinstance(contracts, Contract):
        contracts = [contracts]
    by_topic: dict[tuple[str, bytes], Any] = {}
    for contract in contracts:
        abi: list[dict[str, Any]] = list(contract.abi)  # type: ignore[arg-type]
        for item in abi:
            if item.get("type") == "event":
                event = contract.events[item["name"]]()
                types = ",".join(_abi_type(i) for i in item["inputs"])
                topic = bytes(Web3.keccak(text=f"{item['name']}({types})"))
                by_topic[(to_checksum_address(contract.address), topic)] = event
    timestamps: dict[int, int] = {}
    out: list[LedgerEvent] = []
    for raw in logs:
        topics = raw["topics"]
        key = (to_checksum_address(raw["address"]), bytes(topics[0]) if topics else b"")
        if key not in by_topic:
            continue
        decoded = by_topic[key].process_log(raw)
        block = int(raw["blockNumber"])
        if block not in timestamps:
            timestamps[block] = int(w3.eth.get_block(block)["timestamp"])
        out.append(
            LedgerEvent(
                name=decoded["event"],
                args={k: _plain(v) for k, v in dict(decoded["args"]).items()},
                block_number=block,
                log_index=int(raw["logIndex"]),
                tx_hash=raw["transactionHash"].to_0x_hex(),
                timestamp=timestamps[block],
            )
        )
    out.sort(key=lambda e: (e.block_number, e.log_index))
    return out


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])
