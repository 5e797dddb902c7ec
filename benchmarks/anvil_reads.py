"""Whether a node's reads are consistent while it mines: anvil's, by default.

One thread sends value transfers to one address (each mined into its own block: anvil
automines); the main thread reads, over and over, one ``eth_call`` that returns the block
number it ran at and that address's balance. On a node whose reads are snapshots, each block
number comes with one balance and a read never shows less than the read before it. anvil 1.7.1
(2026-11-29) answers a quarter of the block numbers with two different balances and shows
less than the read before about once in 260 reads: the state of the block being mined under
the previous number, then the state before it again. This is why a peer orders the views it
holds by what they show (swarm.ledger.types.LedgerView.progress, docs/architecture.md).

    .venv/bin/python benchmarks/anvil_reads.py [--seconds 15] [--pinned]

``--pinned`` reads at the block number eth_blockNumber just gave instead of "latest".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localnet.anvil import anvil_binary, free_port

TARGET = "0x000000000000000000000000000000000000beef"
# creation code run by eth_call: NUMBER, then BALANCE(TARGET), returned as two words
PROBE = "0x43600052" + "73" + TARGET[2:] + "31" + "602052" + "60406000f3"


def rpc(url: str, method: str, params: list[Any]) -> Any:
    """The call's result; None for an error answer (a pinned block pruned meanwhile)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read()).get("result")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--pinned", action="store_true", help="read at an explicit block")
    args = parser.parse_args()
    port = free_port()
    node = subprocess.Popen(
        [str(anvil_binary()), "--port", str(port), "--silent", "--prune-history", "4"]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                sender = rpc(url, "eth_accounts", [])[0]
                break
            except OSError:
                time.sleep(0.1)
        stop = threading.Event()

        def transfers() -> None:
            while not stop.is_set():
                rpc(url, "eth_sendTransaction", [{"from": sender, "to": TARGET, "value": "0x1"}])

        thread = threading.Thread(target=transfers)
        thread.start()
        balances: dict[int, set[int]] = {}
        reads = went_back = errors = 0
        newest = -1
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            tag = rpc(url, "eth_blockNumber", []) if args.pinned else "latest"
            out = rpc(url, "eth_call", [{"data": PROBE}, tag])
            if out is None:
                errors += 1
                continue
            number, balance = int(out[2:66], 16), int(out[66:130], 16)
            reads += 1
            balances.setdefault(number, set()).add(balance)
            if balance < newest:
                went_back += 1
            newest = max(newest, balance)
        stop.set()
        thread.join()
    finally:
        node.terminate()
        node.wait()
    torn = sum(1 for seen in balances.values() if len(seen) > 1)
    how = "pinned" if args.pinned else "latest"
    print(f"reads: {reads} over {len(balances)} block numbers ({how})")
    print(f"block numbers answered with more than one state: {torn}")
    print(f"reads showing less than the read before them: {went_back}")
    print(f"reads the node answered with an error: {errors}")


if __name__ == "__main__":
    main()
