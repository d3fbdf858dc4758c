"""The Gumbel temperature schedule (pure, torch-free): a search's parameters can then be declared, and its CLI
options built, without importing torch."""

from __future__ import annotations

import math

FBNET_DECAY = math.exp(-0.045)  # FBNet: τ ← τ·exp(-0.045) after every epoch


def tau_schedule(epoch: int, epochs: int, tau0: float = 5.0, decay: float = FBNET_DECAY,
                 tau_end: float | None = None) -> float:
    """τ for a 0-based `epoch` of `epochs`.

    Default: FBNet's exponential decay τ0·decay^epoch (the thesis says its settings follow FBNet; 5.0 ->
    0.86 after 40 epochs). With `tau_end` the decay is instead geometric from τ0 at the first epoch to
    `tau_end` at the last, for the thesis' "gradually decays to zero" on a search of any length (e.g.
    tau_end=0.05: near-hard samples in the last epochs).
    """
    if epochs < 1 or not 0 <= epoch < epochs:
        raise ValueError(f"tau_schedule: need 0 <= epoch < epochs, got epoch={epoch}, epochs={epochs}")
    if tau0 <= 0:
        raise ValueError(f"tau_schedule: tau0 must be > 0, got {tau0}")
    if tau_end is None:
        if not 0 < decay <= 1:
            raise ValueError(f"tau_schedule: decay must be in (0, 1], got {decay}")
        return float(tau0 * decay**epoch)
    if not 0 < tau_end <= tau0:
        raise ValueError(f"tau_schedule: tau_end must be in (0, tau0={tau0}], got {tau_end}")
    if epochs == 1:
        return float(tau0)
    return float(tau0 * (tau_end / tau0) ** (epoch / (epochs - 1)))
