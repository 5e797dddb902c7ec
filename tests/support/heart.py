"""The heart study's task file with a wider model: an MLP of about a given number of
parameters on the same data (tests/e2e/test_deciders.py, the model-size bench)."""

from __future__ import annotations

from pathlib import Path

from localnet import network

#: the heart study's inputs after encoding (its logistic regression has 36 parameters: 35
#: weights and a bias): an MLP of one hidden layer with H units has 35 H + H + H + 1 parameters
HEART_FEATURES = 35


def heart_mlp_task(workdir: Path, params: int = 1_000_000) -> Path:
    """The heart study's task file with an MLP of about ``params`` parameters (no personal
    models: this measures rounds), written into ``workdir``."""
    hidden = max(1, round((params - 1) / (HEART_FEATURES + 2)))
    text = network.HEART_TASK_FILE.read_text()
    text = text.replace('architecture = "logreg"', f'architecture = "mlp"\nhidden = {hidden}')
    text = text.split("\n[personalization]")[0].rstrip() + "\n"
    text = text.replace('name = "heart-disease-uci"', 'name = "heart-disease-uci/mlp-1m"')
    path = workdir / "heart-mlp.toml"
    path.write_text(text)
    return path
