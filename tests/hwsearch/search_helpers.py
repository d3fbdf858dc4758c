"""Constants and data shared by the search tests (imported by name, like tests/agents/agent_helpers.py)."""

from __future__ import annotations

import numpy as np
import torch

from hwsearch.data import TensorData

NB_CONFIG = {"C": 4, "N": 1, "resolution": 16}
# Synthetic per-edge, per-op latency (ms) of the tiny NB201 space: none 0, skip ~0, convs and pool cost.
NB_TABLE = np.array([[0.0, 0.05, 0.45, 0.95, 0.30],
                     [0.0, 0.05, 0.35, 0.80, 0.25],
                     [0.0, 0.05, 0.50, 1.00, 0.35],
                     [0.0, 0.05, 0.40, 0.90, 0.30],
                     [0.0, 0.05, 0.30, 0.70, 0.20],
                     [0.0, 0.05, 0.55, 1.10, 0.40]])
NB_BASE = 1.0


def random_data(n: int, resolution: int = 16, classes: int = 10, seed: int = 0) -> TensorData:
    """Random images and labels: enough for tests of the search mechanics (not of accuracy)."""
    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n, 3, resolution, resolution, generator=g),
                      torch.randint(0, classes, (n,), generator=g), f"random-{n}", classes)
