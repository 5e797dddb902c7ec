"""The GPU training path on a machine with a CUDA GPU: ResNet-18 (the image task's model)
trained through swarm's own loop (``train_classifier``) on cuda next to the CPU, then the
throughput of one epoch of 2,048 images. Needs only torch (and this checkout), not the rest of
swarm's dependencies, so it runs on a bare GPU machine:

    PYTHONPATH=. python benchmarks/gpu_check.py

With the unit tests that need a GPU (they skip without one):

    PYTHONPATH=. python -m pytest --noconftest -q tests/training/test_loop.py
"""

from __future__ import annotations

import sys
import time

import torch

sys.path.insert(0, ".")

from swarm.training import vision
from swarm.training.loop import evaluate_classifier, train_classifier
from swarm.training.task import TrainConfig


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU on this machine")
    print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 224, 224, generator=gen)
    y = torch.randint(0, 2, (64,), generator=gen)
    states = {}
    for device in ("cpu", "cuda"):
        model = vision.resnet18(2, 3, 0)
        config = TrainConfig(epochs=1, lr=0.01, batch_size=16, device=device, seed=1)
        t0 = time.perf_counter()
        train_classifier(model, x, y, config)
        seconds = time.perf_counter() - t0
        state = model.state_dict()
        assert all(v.device.type == "cpu" for v in state.values()), "weights not back on the CPU"
        states[device] = state
        metrics = evaluate_classifier(model, x, y, device=device)
        print(f"{device}: one epoch of 64 images (224 px) in {seconds:.2f} s; {metrics}")
    worst = max(
        (states["cpu"][k].float() - states["cuda"][k].float()).abs().max().item()
        for k in states["cpu"]
    )
    print(f"largest |cpu - cuda| weight difference after 4 steps: {worst:.4g}")

    n = 2048
    x2, y2 = torch.rand(n, 3, 224, 224), torch.randint(0, 2, (n,))
    model = vision.resnet18(2, 3, 0)
    config = TrainConfig(epochs=1, lr=0.01, batch_size=64, device="cuda", seed=1)
    train_classifier(model, x2[:256], y2[:256], config)  # warm-up (kernels, allocator)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    train_classifier(model, x2, y2, config)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    print(f"cuda: one epoch of {n} images in {seconds:.2f} s = {n / seconds:.0f} images/s")


if __name__ == "__main__":
    main()
