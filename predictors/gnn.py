"""Graph latency predictors: SurgeNAS's directed GNN (`gnn`, thesis §3.3.4) and a BRP-NAS-style GCN (`gcn`).

Both read the graph of `space.to_graph`: for NB201 the 8-node op-on-node DAG (input, one node per edge,
output; features one-hot over [input, output, 5 ops]), for the chain spaces (mbconv, fbnet) the layer
chain with the op one-hot per node. In every registered space the adjacency does not depend on the arch
and the node features are an affine function of the flat one-hot, so `graph_map` recovers that map once
per space (by probing to_graph) and the nets take the one-hot [B, L*K] and build node features inside.
That keeps `torch_model()` differentiable w.r.t. the one-hot for NB201 too, and makes encoding as cheap
as for the MLP. A space whose graph breaks either property is refused with a clear error.

`gnn`: 3 layers of 128 units, each ½[ReLU(Â⁺ H W⁺) + ReLU(Â⁻ H W⁻)] with Â⁺ = rownorm(A + I),
Â⁻ = rownorm(Aᵀ + I) (Wen et al.'s forward/backward averaging, eq. 3.14; the attention masks of eq. 3.15
are left out because the thesis does not say how they are computed); mean readout over nodes; MLP
64 -> 64 -> 1. `gcn`: symmetric-normalised undirected A with self loops plus a global node joined to every
node (BRP-NAS), 4 layers of 256 (BRP-NAS uses 600; 256 keeps CPU training short), readout = the global
node's state, then a linear layer. The global node lets a 4-layer GCN see all 21-22 layers of a chain.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from predictors.base import Constraint
from predictors.common import int_at_least, int_tuple
from predictors.nn import TorchPredictor
from predictors.registry import register_predictor
from spaces import SearchSpace, create_space


@lru_cache(maxsize=32)
def _graph_map(space: str, config_json: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sp = create_space(space, **json.loads(config_json))
    n_layers, n_ops = sp.n_layers, sp.n_ops
    base = (0,) * n_layers
    adj0, f0 = sp.to_graph(base)
    weight = np.zeros((n_layers, n_ops, f0.size), dtype=np.float32)
    for layer in range(n_layers):
        for op in range(1, n_ops):
            arch = list(base)
            arch[layer] = op
            adj, feats = sp.to_graph(arch)
            if adj.shape != adj0.shape or not np.array_equal(adj, adj0):
                raise ValueError(f"space {space!r}: the graph's adjacency depends on the arch; the graph "
                                 "predictors need a fixed adjacency")
            weight[layer, op] = (feats - f0).reshape(-1)
    weight = weight.reshape(n_layers * n_ops, -1)
    rng = np.random.default_rng(0)
    for _ in range(16):  # the probes say what an affine map would be; check that it is one
        arch = sp.sample(rng)
        adj, feats = sp.to_graph(arch)
        mapped = (f0.reshape(-1) + sp.to_onehot(arch) @ weight).reshape(f0.shape)
        if not (np.array_equal(adj, adj0) and np.allclose(mapped, feats, atol=1e-6)):
            raise ValueError(f"space {space!r}: node features are not an affine function of the one-hot; "
                             "the graph predictors cannot build them from the one-hot")
    return adj0.astype(np.float32), f0.astype(np.float32), weight


def graph_map(sp: SearchSpace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(adjacency A [N, N], base features F0 [N, F], map W [L*K, N*F]): features = F0 + onehot @ W.

    A[i, j] = 1 for an edge i -> j. Cached per space and config; ValueError for a space whose adjacency
    varies with the arch or whose features are not affine in the one-hot.
    """
    return _graph_map(sp.name, json.dumps(sp.config, sort_keys=True))


def row_normalised(adj: np.ndarray) -> np.ndarray:
    """Rows of A + I scaled to sum 1: each node averages itself and its neighbours."""
    a = adj + np.eye(len(adj), dtype=adj.dtype)
    return (a / a.sum(axis=1, keepdims=True)).astype(np.float32)


def sym_normalised(adj: np.ndarray) -> np.ndarray:
    """D^-1/2 (A + I) D^-1/2 of a symmetric A (Kipf & Welling)."""
    a = adj + np.eye(len(adj), dtype=adj.dtype)
    d = 1.0 / np.sqrt(a.sum(axis=1))
    return (a * d[:, None] * d[None, :]).astype(np.float32)


class OneHotToNodes(nn.Module):
    """one-hot [B, L*K] -> node features [B, N, F] through the space's affine graph map (no parameters)."""

    def __init__(self, base: np.ndarray, weight: np.ndarray) -> None:
        super().__init__()
        self.shape = base.shape
        self.register_buffer("base", torch.from_numpy(base.reshape(-1).copy()), persistent=False)
        self.register_buffer("weight", torch.from_numpy(weight.copy()), persistent=False)

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        return (self.base + onehot @ self.weight).view(-1, *self.shape)


# Rows per pass inside the graph nets' forward: a [B, N, 256] intermediate of 10,000 archs is 80 MB, and
# the element-wise ops on it run at memory speed; 256-row pieces stay in cache (3-4x more archs/s).
FORWARD_CHUNK = 256


def chunked(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """forward(x) in FORWARD_CHUNK-row pieces (differentiable: the pieces are concatenated)."""
    if len(x) <= FORWARD_CHUNK:
        return forward(x)
    return torch.cat([forward(piece) for piece in x.split(FORWARD_CHUNK)])


class DirectedGraphConv(nn.Module):
    """½[ReLU(Â⁺ H W⁺) + ReLU(Â⁻ H W⁻)]; W⁺ and W⁻ are one Linear of twice the width (one matmul).

    Takes ½Â⁺ and ½Â⁻ (ReLU(x/2) = ReLU(x)/2, so the halving is folded into the adjacency once), and
    works in place when no gradient is recorded.
    """

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.d_out = d_out
        self.lin = nn.Linear(d_in, 2 * d_out)

    def forward(self, h: torch.Tensor, half_fwd: torch.Tensor, half_bwd: torch.Tensor) -> torch.Tensor:
        z_fwd, z_bwd = self.lin(h).split(self.d_out, dim=-1)
        fwd, bwd = torch.matmul(half_fwd, z_fwd), torch.matmul(half_bwd, z_bwd)
        if torch.is_grad_enabled():
            return torch.relu(fwd) + torch.relu(bwd)
        return torch.relu_(fwd).add_(torch.relu_(bwd))


class GNNNet(nn.Module):
    """SurgeNAS GNN: graph convs, mean over nodes, MLP head; one-hot [B, L*K] -> [B].

    `conv(d_in, d_out)` builds each layer (called with (h, ½Â⁺, ½Â⁻)); `gnn-att` passes its gated one.
    """

    def __init__(self, sp: SearchSpace, layers: int, hidden: int, head: tuple[int, ...],
                 conv: Callable[[int, int], nn.Module] = DirectedGraphConv) -> None:
        super().__init__()
        adj, base, weight = graph_map(sp)
        self.nodes = OneHotToNodes(base, weight)
        self.register_buffer("half_fwd", torch.from_numpy(0.5 * row_normalised(adj)), persistent=False)
        self.register_buffer("half_bwd", torch.from_numpy(0.5 * row_normalised(adj.T.copy())), persistent=False)
        dims = [base.shape[1]] + [hidden] * layers
        self.convs = nn.ModuleList(conv(a, b) for a, b in itertools.pairwise(dims))
        mlp: list[nn.Module] = []
        d = hidden
        for width in head:
            mlp += [nn.Linear(d, width), nn.ReLU()]
            d = width
        mlp.append(nn.Linear(d, 1))
        self.head = nn.Sequential(*mlp)

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        return chunked(self._forward, onehot)

    def _forward(self, onehot: torch.Tensor) -> torch.Tensor:
        h = self.nodes(onehot)
        for conv in self.convs:
            h = conv(h, self.half_fwd, self.half_bwd)
        return self.head(h.mean(dim=1)).squeeze(-1)


class GCNNet(nn.Module):
    """BRP-NAS-style GCN with a global node; one-hot [B, L*K] -> [B]."""

    def __init__(self, sp: SearchSpace, layers: int, hidden: int) -> None:
        super().__init__()
        adj, base, weight = graph_map(sp)
        n, f = base.shape
        # append the global node (index n) with its own feature flag, joined to every node both ways
        full = np.zeros((n + 1, n + 1), dtype=np.float32)
        full[:n, :n] = np.maximum(adj, adj.T)
        full[n, :n] = full[:n, n] = 1.0
        base_g = np.zeros((n + 1, f + 1), dtype=np.float32)
        base_g[:n, :f] = base
        base_g[n, f] = 1.0
        weight_g = np.zeros((weight.shape[0], n + 1, f + 1), dtype=np.float32)
        weight_g[:, :n, :f] = weight.reshape(-1, n, f)
        self.nodes = OneHotToNodes(base_g, weight_g.reshape(weight.shape[0], -1))
        self.register_buffer("a", torch.from_numpy(sym_normalised(full)), persistent=False)
        dims = [f + 1] + [hidden] * layers
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.out = nn.Linear(hidden, 1)

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        return chunked(self._forward, onehot)

    def _forward(self, onehot: torch.Tensor) -> torch.Tensor:
        h = self.nodes(onehot)
        for lin in self.lins:
            h = torch.relu(torch.matmul(self.a, lin(h)))
        return self.out(h[:, -1]).squeeze(-1)


class _GraphPredictor(TorchPredictor):
    def feature_spec(self) -> dict[str, Any]:
        spec = super().feature_spec()
        adj, base, _ = graph_map(self.space_obj())
        spec["graph"] = {"nodes": int(base.shape[0]), "node_features": int(base.shape[1]),
                         "edges": int(adj.sum()), "built_from": "onehot (affine map of space.to_graph)"}
        return spec


@register_predictor("gnn")
class GNNPredictor(_GraphPredictor):
    """SurgeNAS GNN (3 x 128 directed graph convs, mean readout, MLP 64 -> 64 -> 1).

    Defaults: Adam lr 1e-3 cosine-annealed (thesis), batch 16 (thesis: 8) and 200 epochs; on HELP's NB201
    tables fewer steps left it clearly under-fitted (below the MLP), more gained little.

    `torch_model()` takes the flat one-hot [B, L*K] in every space: for NB201 that is [B, 30] (6 edges x
    5 ops, edge order of the arch id), mapped inside to the 8-node graph; for mbconv the [B, 21*7] chain.
    """

    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **TorchPredictor._parameter_constraints, "layers": int_at_least(1), "hidden": int_at_least(1),
        "head": int_tuple(0)}

    def __init__(self, space: str = "nb201", space_config: dict[str, Any] | None = None, seed: int = 0,
                 epochs: int = 200, batch_size: int = 16, lr: float = 1e-3, weight_decay: float = 0.0,
                 target: str = "log", layers: int = 3, hidden: int = 128, head: tuple[int, ...] = (64, 64)
                 ) -> None:
        super().__init__(space=space, space_config=space_config, seed=seed, epochs=epochs,
                         batch_size=batch_size, lr=lr, weight_decay=weight_decay, target=target)
        self.layers = layers
        self.hidden = hidden
        self.head = head

    def _make_net(self, sp: SearchSpace) -> nn.Module:
        return GNNNet(sp, self.layers, self.hidden, tuple(self.head))


@register_predictor("gcn")
class GCNPredictor(_GraphPredictor):
    """BRP-NAS-style GCN (4 x 256, global-node readout, linear output); takes the one-hot like `gnn`."""

    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **TorchPredictor._parameter_constraints, "layers": int_at_least(1), "hidden": int_at_least(1)}

    def __init__(self, space: str = "nb201", space_config: dict[str, Any] | None = None, seed: int = 0,
                 epochs: int = 100, batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 0.0,
                 target: str = "log", layers: int = 4, hidden: int = 256) -> None:
        super().__init__(space=space, space_config=space_config, seed=seed, epochs=epochs,
                         batch_size=batch_size, lr=lr, weight_decay=weight_decay, target=target)
        self.layers = layers
        self.hidden = hidden

    def _make_net(self, sp: SearchSpace) -> nn.Module:
        return GCNNet(sp, self.layers, self.hidden)
