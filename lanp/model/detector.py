"""The LANP anomaly detector (paper section 4.1): a temporal convolution and two linear layers.

    Conv1d(D -> 512, kernel 3, padding 1) + ReLU + Dropout(0.7)
    -> Linear(512, 512) + ReLU + Dropout(0.7) -> Linear(512, 1) + Sigmoid

Input (B, T, D) or (T, D) snippet features; output (B, T) or (T,) anomaly scores in (0, 1).
The convolution runs along time, so a video must be passed in temporal order.

>>> import torch
>>> from lanp.model.detector import Detector
>>> Detector(2048)(torch.zeros(30, 32, 2048)).shape
torch.Size([30, 32])
"""
from __future__ import annotations

import torch
from torch import nn

HIDDEN = 512
DROPOUT = 0.7


class Detector(nn.Module):
    def __init__(self, feature_size: int, hidden: int = HIDDEN, dropout: float = DROPOUT):
        super().__init__()
        if int(feature_size) < 1:
            raise ValueError(f"feature_size={feature_size!r} is invalid: it must be >= 1")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout={dropout!r} is invalid: it must be in [0, 1)")
        self.feature_size = int(feature_size)
        self.conv = nn.Conv1d(self.feature_size, hidden, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = x.dim() == 2
        if single:
            x = x.unsqueeze(0)
        if x.dim() != 3 or x.shape[-1] != self.feature_size:
            raise ValueError(f"detector input must be (B, T, {self.feature_size}) or (T, {self.feature_size}), "
                             f"got {tuple(x.shape)}")
        h = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)   # (B, T, hidden)
        h = self.dropout(h)
        h = self.dropout(torch.relu(self.fc1(h)))
        s = torch.sigmoid(self.fc2(h)).squeeze(-1)                     # (B, T)
        return s.squeeze(0) if single else s
