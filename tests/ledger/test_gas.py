"""What a round costs a hospital, and the start-up check of its balance (swarm.ledger.gas)."""

from __future__ import annotations

import pytest

from swarm.errors import InsufficientFundsError
from swarm.ledger import EmbeddedChain
from swarm.ledger.gas import LOW_BALANCE_ROUNDS, ROUND_GAS_MAX, Funds, funds, top_up

GWEI = 10**9
A = "0x00000000000000000000000000000000000000A1"


def test_an_empty_account_is_refused_where_gas_costs() -> None:
    """Fault: a hospital account with no ETH where gas costs: one line that says who must act."""
    with pytest.raises(InsufficientFundsError) as exc:
        Funds(A, 0, GWEI).require_some()
    text = str(exc.value)
    assert A in text and "must send it ETH" in text and "\n" not in text
    Funds(A, 0, 0).require_some()  # a permissioned chain with free gas: nothing to pay
    Funds(A, 1, GWEI).require_some()


def test_a_low_balance_is_one_warning_line_with_the_cost_of_a_round() -> None:
    """Fault: a balance that pays for few rounds: one warning line with the cost of a round."""
    per_round = ROUND_GAS_MAX * GWEI
    low = Funds(A, 3 * per_round, GWEI)
    assert low.rounds_covered == 3
    line = low.warning()
    assert line is not None and "\n" not in line
    assert "enough for 3 rounds" in line and "0.0007 ETH" in line and A in line
    assert Funds(A, LOW_BALANCE_ROUNDS * per_round, GWEI).warning() is None
    assert Funds(A, 0, 0).warning() is None


def test_funds_and_top_up_on_a_development_chain() -> None:
    """None (development-chain funding adds to the balance)."""
    chain = EmbeddedChain()
    before = funds(chain, A)
    assert before.balance_wei == 0 and before.gas_price_wei > 0
    assert top_up(chain, A, 5 * 10**18) == 5 * 10**18
    assert top_up(chain, A, 10**18) == 6 * 10**18
