"""What a hospital's transactions cost, and whether its account can pay for them.

Gas per transaction is measured by ``benchmarks/ledger_bench.py`` (docs/benchmarks.md, "Ledger
gas and latency"). Per round, a hospital that only participates sends ``join``, ``commitUpdate``
and ``acknowledge`` (and ``reportMetrics`` where metrics are on): about 250k gas. The one that
also opens the round, closes the join, is key steward and merge peer sends more; at 30
participants ``openRound`` 98k + the closing ``join`` 92k + ``postRoundKey`` 112k (it stores
the drawn seed) + ``commitUpdate`` 71k + ``submitAggregate`` 135k is about 510k gas, and at
the CKKS set's 64 participants about 560k; replacements and metrics add to it. Masking
(``maskThresholdPct`` > 0) adds about 23k to each ``commitUpdate`` (the stored manifest hash);
an epsilon budget adds about 54k to a member's first ``commitUpdate`` (5 to 10k later), and to
``openRound`` about 4k per member that ever recorded privacy spending (it counts those whose
budget is spent). A hospital should
budget :data:`ROUND_GAS_MAX` per round: the roles are drawn at random.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarm.errors import InsufficientFundsError
from swarm.ledger.chain import Chain, EmbeddedChain, RpcChain

#: gas a hospital spends in a round where it only participates (join, commit, acknowledge)
ROUND_GAS_TYPICAL = 250_000
#: gas a hospital spends in a round where it takes every role (up to 64 participants)
ROUND_GAS_MAX = 700_000
#: a balance that pays for fewer rounds than this (at ROUND_GAS_MAX) is warned about
LOW_BALANCE_ROUNDS = 20

WEI_PER_ETH = 10**18


def eth(wei: int) -> str:
    """``wei`` in ETH, for people: ``0.0015 ETH``."""
    return f"{wei / WEI_PER_ETH:.6g} ETH"


@dataclass(frozen=True)
class Funds:
    """An account's balance next to what a round costs on this chain now."""

    address: str
    balance_wei: int
    gas_price_wei: int

    @property
    def per_round_wei(self) -> int:
        """What a round can cost this hospital (every role, ROUND_GAS_MAX) at today's price."""
        return ROUND_GAS_MAX * self.gas_price_wei

    @property
    def rounds_covered(self) -> int | None:
        """How many such rounds the balance pays for; None on a chain whose gas is free."""
        return None if self.gas_price_wei == 0 else self.balance_wei // self.per_round_wei

    def warning(self) -> str | None:
        """One line when the balance pays for fewer than LOW_BALANCE_ROUNDS rounds, else None."""
        covered = self.rounds_covered
        if covered is None or covered >= LOW_BALANCE_ROUNDS:
            return None
        return (
            f"{self.address} holds {eth(self.balance_wei)}, enough for {covered} rounds: a round "
            f"costs this hospital up to {eth(self.per_round_wei)} ({ROUND_GAS_MAX:,} gas at "
            f"{self.gas_price_wei / 10**9:.3g} gwei; about {ROUND_GAS_TYPICAL:,} gas when it "
            "only participates): the hospital's operator should send ETH to this address (or "
            "ask the consortium admin)"
        )

    def require_some(self) -> None:
        """InsufficientFundsError (one line, who acts) for an empty account where gas costs."""
        if self.gas_price_wei > 0 and self.balance_wei == 0:
            raise InsufficientFundsError(
                f"{self.address} has no ETH to pay for its transactions on this chain (gas price "
                f"{self.gas_price_wei / 10**9:.3g} gwei; a round costs this hospital up to "
                f"{eth(ROUND_GAS_MAX * self.gas_price_wei)}): the hospital's operator or the "
                "consortium admin must send it ETH first (on a development chain: "
                "`swarm admin add-member --fund ETH`)"
            )


def funds(chain: Chain, address: str) -> Funds:
    """``address``'s balance and the chain's current gas price."""
    from swarm.ledger.client import _ledger_call  # errors as LedgerError (the chain is down)

    w3 = chain.w3
    with _ledger_call("reading the account's balance"):
        return Funds(address, int(w3.eth.get_balance(address)), int(w3.eth.gas_price))  # type: ignore[arg-type]


def can_mint(chain: Chain) -> bool:
    """Whether ``fund`` can create ETH on this chain (anvil, the embedded chain)."""
    return isinstance(chain, EmbeddedChain) or (
        isinstance(chain, RpcChain) and getattr(chain, "is_anvil", False)
    )


def top_up(chain: Chain, address: str, wei: int) -> int:
    """Add ``wei`` to ``address``'s balance on a development chain; returns the new balance."""
    if not can_mint(chain):
        raise InsufficientFundsError(
            f"{chain.url} is not a development chain: it cannot create ETH; send {eth(wei)} "
            f"to {address} from a funded account"
        )
    if isinstance(chain, EmbeddedChain):
        chain.fund(address, wei)  # a transfer from its faucet: adds
    else:
        chain.fund(address, int(chain.w3.eth.get_balance(address)) + wei)  # type: ignore[arg-type]  # sets
    return int(chain.w3.eth.get_balance(address))  # type: ignore[arg-type]


__all__ = [
    "LOW_BALANCE_ROUNDS",
    "ROUND_GAS_MAX",
    "ROUND_GAS_TYPICAL",
    "Funds",
    "can_mint",
    "eth",
    "funds",
    "top_up",
]
