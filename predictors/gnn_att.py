"""SurgeNAS's attention GNN (thesis eq. 3.15), kind `gnn-att`: `gnn` with gated forward/backward messages.

Eq. 3.15 reads GNN = ½[H⁺ ⊙ F(M ᾱ W⁺) + H⁻ ⊙ F(Mᵀ ᾱ W⁻)] and motivates the "attention masks" H⁺/H⁻ by
"latency depends on which op is chosen", but never says how they are computed. Both readings the text
allows are here, and the default combines them, per node, channel and direction:

    H⁺ = σ(H W_h⁺ + b_h⁺ + P⁺),  H⁻ = σ(H W_h⁻ + b_h⁻ + P⁻)      (gate="channel+position", default)

H W_h is a gate from the node's own input state (in the first layer its op one-hot: which op it is), P a
learned [N, d_out] logit per node index (a mask of the shape of F(...), the literal "L x d mask" reading).
P is what `gnn` cannot express: its nodes carry only the op one-hot, so in a 21-layer chain (mbconv) a
3-layer, mean-readout GNN cannot tell a stage-1 layer from a stage-5 one, whose costs differ by the
tensor sizes; P gives every node index its own weighting. "channel", "node" (one scalar gate per node
and direction) and "position" (P only) are the ablations. All keep the net differentiable w.r.t. the
one-hot (node features are built from it inside, as for `gnn`), and with the gates forced to 1 the net
is exactly `gnn` (tests/predictors/test_gnn_attention.py checks that). benchmarks/supervised_nb201.py
compares the two on HELP's NB201 tables; GNNAttPredictor says what was measured.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import torch
from torch import nn

from predictors.base import Constraint
from predictors.common import one_of
from predictors.gnn import GNNNet, GNNPredictor, graph_map
from predictors.registry import register_predictor
from spaces import SearchSpace

# channel: σ(H W_h) per node and channel; node: one σ(H w_h) per node; position: a learned per-node-index mask
# σ(P), P [N, d_out] (no input); channel+position: σ(H W_h + P).
GATES: tuple[str, ...] = ("channel", "node", "position", "channel+position")


class GatedDirectedGraphConv(nn.Module):
    """H⁺ ⊙ ReLU(½Â⁺ H W⁺) + H⁻ ⊙ ReLU(½Â⁻ H W⁻) with the gates of `gate` (see GATES).

    `lin` is named and shaped as in `gnn`'s DirectedGraphConv, so a `gnn` net can take its weights.
    """

    def __init__(self, d_in: int, d_out: int, gate: str = "channel", n_nodes: int = 1) -> None:
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"gate must be one of {', '.join(GATES)}, not {gate!r}")
        self.d_out = d_out
        self.lin = nn.Linear(d_in, 2 * d_out)
        self.n_gate = 1 if gate == "node" else d_out
        # from the node's own state: σ(H W_h + b_h), one Linear for both directions
        self.gate = nn.Linear(d_in, 2 * self.n_gate) if gate != "position" else None
        # per node index: a learned [N, 2 d_out] logit (0 at init, gates 0.5), the "L x d mask" reading
        self.position = nn.Parameter(torch.zeros(n_nodes, 2 * d_out)) if "position" in gate else None

    def gates(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(H⁺, H⁻), each [B, N, d_out] or [B, N, 1] (broadcast over the channels)."""
        logits = self.gate(h) if self.gate is not None else None
        if self.position is not None:
            logits = self.position if logits is None else logits + self.position
        return torch.sigmoid(logits).split(self.n_gate, dim=-1)

    def forward(self, h: torch.Tensor, half_fwd: torch.Tensor, half_bwd: torch.Tensor) -> torch.Tensor:
        z_fwd, z_bwd = self.lin(h).split(self.d_out, dim=-1)
        g_fwd, g_bwd = self.gates(h)
        fwd, bwd = torch.matmul(half_fwd, z_fwd), torch.matmul(half_bwd, z_bwd)
        if torch.is_grad_enabled():
            return g_fwd * torch.relu(fwd) + g_bwd * torch.relu(bwd)
        return torch.relu_(fwd).mul_(g_fwd).add_(torch.relu_(bwd).mul_(g_bwd))


@register_predictor("gnn-att")
class GNNAttPredictor(GNNPredictor):
    """SurgeNAS attention GNN: `gnn` (3 x 128, mean readout, MLP 64 -> 64 -> 1) with eq. 3.15's gates.

    Defaults as `gnn` (Adam lr 1e-3 cosine-annealed, batch 16, 200 epochs, log target) plus
    `gate="channel+position"`. Measured (seed 0, issue 12): on HELP's NB201 tables (900 training archs,
    benchmarks/supervised_nb201.py) it ties `gnn` on every device (mean rho 0.961 both, per-device gaps
    <= 0.002: the 8-node cell leaves the gates nothing `gnn` lacks); on 400 mbconv-small nets timed on
    the loaded 2-core dev CPU (300 train / 100 test) rho 0.817 vs `gnn` 0.758 ("channel" alone 0.783)
    on each net's min latency, but 0.357 vs 0.435 on the load-dominated median: within noise so far.
    Fits take ~1.6x `gnn`'s time.
    """

    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **GNNPredictor._parameter_constraints, "gate": one_of(*GATES)}

    def __init__(self, space: str = "nb201", space_config: dict[str, Any] | None = None, seed: int = 0,
                 epochs: int = 200, batch_size: int = 16, lr: float = 1e-3, weight_decay: float = 0.0,
                 target: str = "log", layers: int = 3, hidden: int = 128, head: tuple[int, ...] = (64, 64),
                 gate: str = "channel+position") -> None:
        super().__init__(space=space, space_config=space_config, seed=seed, epochs=epochs,
                         batch_size=batch_size, lr=lr, weight_decay=weight_decay, target=target,
                         layers=layers, hidden=hidden, head=head)
        self.gate = gate

    def _make_net(self, sp: SearchSpace) -> nn.Module:
        n_nodes = graph_map(sp)[1].shape[0]
        return GNNNet(sp, self.layers, self.hidden, tuple(self.head),
                      conv=partial(GatedDirectedGraphConv, gate=self.gate, n_nodes=n_nodes))
