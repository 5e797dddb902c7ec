"""The compiled contract, committed next to this module (built by contracts/compile.js)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler: dict[str, Any]


@cache
def load_artifact(name: str = "SwarmLedger") -> Artifact:
    text = resources.files("swarm.ledger").joinpath("artifacts", f"{name}.json").read_text()
    data = json.loads(text)
    return Artifact(
        name=data["contractName"],
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        compiler=data["compiler"],
    )
