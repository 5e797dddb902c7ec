"""A few FedAvg rounds of the built-in task across the four hospitals, in plaintext."""

from __future__ import annotations

from swarm.merge import fedavg, model_delta
from swarm.training.checkpoint import model_hash
from swarm.training.registry import DEFAULT_TASK, get_task


def _run(rounds: int) -> tuple[bytes, float, float]:
    task = get_task(DEFAULT_TASK)
    sites = [task.load_site(site, seed=0) for site in task.sites]
    model = task.build_model(0)
    local = task.build_model(0)

    def pooled_loss() -> float:
        metrics = [task.evaluate(model, data) for data in sites]
        return sum(m.loss * m.samples for m in metrics) / sum(m.samples for m in metrics)

    before = pooled_loss()
    for round_id in range(rounds):
        base = {k: v.clone() for k, v in model.state_dict().items()}
        updates = []
        for data in sites:
            local.load_state_dict(base)
            config = task.default_config.for_round(round_id, data.site)
            samples = task.train(local, data, config, global_model=base)
            updates.append((model_delta(local.state_dict(), base), samples))
        model.load_state_dict(fedavg(base, updates))
    return model_hash(model.state_dict()), before, pooled_loss()


def test_fedavg_rounds_learn_and_repeat_bit_for_bit() -> None:
    """Three rounds of the default task lower the pooled test loss, and a second run from the
    same seeds ends on the same model hash (what lets honest peers agree on the ledger)."""
    digest, before, after = _run(3)
    assert after < before
    assert _run(3)[0] == digest
