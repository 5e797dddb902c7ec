"""What the contract accepts as consortium parameters, and that the CLI checks the same bounds."""

from __future__ import annotations

import dataclasses

import pytest

from cli import admin
from swarm import errors
from swarm.crypto import PARAMETER_SETS
from tests.conftest import Consortium


@pytest.mark.parametrize(
    ("change", "name", "value"),
    [
        ({"min_peers": 2}, "minPeers", 2),
        ({"min_peers": 0}, "minPeers", 0),
        ({"join_window": 4}, "joinWindow", 4),
        ({"key_window": 0}, "keyWindow", 0),
        ({"commit_window": 86_401}, "commitWindow", 86_401),
        ({"merge_window": 1}, "mergeWindow", 1),
        ({"ack_window": 2**32 - 1}, "ackWindow", 2**32 - 1),
        ({"ckks_params_id": 0}, "ckksParamsId", 0),
        ({"ckks_params_id": 99}, "ckksParamsId", 99),
    ],
)
def test_out_of_range_parameters_are_refused_with_the_value(
    consortium: Consortium, change: dict[str, int], name: str, value: int
) -> None:
    c = consortium
    before = c.admin.params()
    with pytest.raises(errors.InvalidParameterError) as exc:
        c.admin.set_params(dataclasses.replace(before, **change))  # type: ignore[arg-type]
    assert exc.value.values == {"name": name, "value": value}
    assert c.admin.params() == before


def test_bounds_are_accepted(consortium: Consortium) -> None:
    c = consortium
    edge = dataclasses.replace(
        c.admin.params(), min_peers=3, join_window=5, commit_window=86_400, ckks_params_id=1
    )
    c.admin.set_params(edge)
    assert c.admin.params() == edge


def test_the_cli_checks_the_contract_s_bounds(consortium: Consortium) -> None:
    """cli/admin.py refuses before sending exactly what the contract would refuse."""
    f = consortium.admin.contract.functions
    assert f.MIN_PEERS_FLOOR().call() == admin.MIN_PEERS_FLOOR
    assert f.MIN_WINDOW().call() == admin.MIN_WINDOW_S
    assert f.MAX_WINDOW().call() == admin.MAX_WINDOW_S
    assert set(range(1, f.MAX_CKKS_PARAMS_ID().call() + 1)) == set(PARAMETER_SETS)
