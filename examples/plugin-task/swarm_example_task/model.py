"""The model: a small 1-D convolutional network over one ECG-like lead.

No batch norm (its running statistics are buffers that FedAvg would have to average) and no
dropout (nothing stochastic at evaluation): every tensor of the state_dict is a float32
parameter, so the whole model travels in an update.
"""

from __future__ import annotations

import torch
from torch import nn


class RhythmCNN(nn.Module):
    """signal (batch, length) -> conv -> relu -> pool -> conv -> relu -> mean -> (batch, classes).

    Two convolutions see about 20 samples (0.4 s at 50 Hz): one beat's shape. Averaging over
    time turns "how often does a beat occur" into one number per channel, which is what tells
    a slow rhythm from a fast one; the linear head maps those to one logit per class.
    """

    def __init__(self, classes: int, channels: int = 8, kernel: int = 7) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(channels, channels, kernel, padding=kernel // 2)
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(1)  # (batch, 1, length)
        h = torch.relu(self.conv1(h))  # (batch, channels, length)
        h = nn.functional.max_pool1d(h, 2)  # (batch, channels, length // 2)
        h = torch.relu(self.conv2(h))  # (batch, channels, length // 2)
        return self.head(h.mean(dim=-1))  # (batch, classes)
