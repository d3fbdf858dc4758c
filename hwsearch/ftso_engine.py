"""FTSO's torch part: the one-op topology supernet with its edge weights β, the DARTS-style mixed-op supernet of
the gradient operator strategy, and their α/β–w alternations (the result is hwsearch.ftso_result's).

`hwsearch.ftso` holds the method, the choices made and the selection rules (no torch); it imports this module
only when a search runs. Both supernets are NB201's macro skeleton (`spaces.nb201_net.macro_layout`) around
a cell of the space's own op modules, so the stem, reductions and classifier are the network's.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from hwsearch.data import batches, shard_indices
from hwsearch.ftso_result import FTSOResult
from spaces.nb201 import EDGES, N_NODES, _make_op, macro_layout
from spaces.weights import init_weights

if TYPE_CHECKING:
    from hwsearch.ftso import FTSO
    from spaces import SearchSpace

IN_DEGREE = tuple(sum(dst == j for _, dst in EDGES) for j in range(N_NODES))


# --- the supernets --------------------------------------------------------------------------------------

class TopologyCell(nn.Module):
    """The NB201 cell with one op on every edge: node j = Σ_i weight(i→j) · op(node i)."""

    def __init__(self, op: str, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(_make_op(op, channels) for _ in EDGES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in range(1, N_NODES):
            nodes.append(sum(weights[e] * self.edges[e](nodes[src])
                             for e, (src, dst) in enumerate(EDGES) if dst == node))
        return nodes[-1]


class MixedCell(nn.Module):
    """The cell of the gradient strategy: on each kept edge the softmax(α)-weighted sum of the candidate ops
    (DARTS' mixed op); the dropped edges are `none` and not built."""

    def __init__(self, kept: tuple[int, ...], ops: tuple[str, ...], channels: int) -> None:
        super().__init__()
        self.kept = kept
        self.edges = nn.ModuleDict({str(e): nn.ModuleList(_make_op(o, channels) for o in ops) for e in kept})

    def forward(self, x: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in range(1, N_NODES):
            terms = [sum(p * op(nodes[src]) for p, op in zip(probs[e], self.edges[str(e)], strict=True))
                     for e in self.kept for src, dst in [EDGES[e]] if dst == node]
            nodes.append(sum(terms) if terms else torch.zeros_like(x))
        return nodes[-1]


class CellNet(nn.Module):
    """NB201's macro skeleton around `make_cell(width)`; `forward(x, arch_weights)` hands the weights to
    every cell (shared by all cells, as NB201's own DARTS supernet shares α)."""

    def __init__(self, space: SearchSpace, make_cell: Any) -> None:
        super().__init__()
        self.stem, self.cells, self.lastact = macro_layout(space.C, space.N, make_cell)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(space.C * 4, space.num_classes)

    def forward(self, x: torch.Tensor, arch_weights: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.cells:
            x = block(x, arch_weights) if isinstance(block, TopologyCell | MixedCell) else block(x)
        return self.classifier(torch.flatten(self.pool(self.lastact(x)), 1))


def beta_weights(beta: torch.Tensor, form: str) -> torch.Tensor:
    """The edge weights a cell multiplies by: β itself ("linear", Algorithm 1's n_j = Σ o(n_i)·β_ij) or a
    softmax over each node's inputs ("softmax", PC-DARTS' edge normalisation)."""
    if form == "linear":
        return beta
    out = torch.empty_like(beta)
    for node in range(1, N_NODES):
        idx = [e for e, (_, dst) in enumerate(EDGES) if dst == node]
        out[idx] = torch.softmax(beta[idx], 0)
    return out


def beta_start(form: str) -> list[float]:
    """β before the search: 1/in-degree (linear: every node starts as the mean of its inputs, so a skip cell
    starts as the identity and 15 stacked cells do not blow the scale up), or 0 (softmax: uniform)."""
    return [1.0 / IN_DEGREE[dst] if form == "linear" else 0.0 for _, dst in EDGES]


# --- the alternation (β or α on the held-out split, then w on the train split) ----------------------------

@dataclass
class _Phase:
    iterations: int
    log: list[dict[str, Any]]
    first_grad: list[float]


def _alternate(p: FTSO, net: nn.Module, arch: torch.Tensor, weights: Any, train: Any, held: Any,
               iterations: int, what: str) -> _Phase:
    """`iterations` rounds of one Adam step on `arch` (a held-out batch) then one SGD step on the weights (a
    train batch; momentum, cosine from w_lr to 0), as FTSO's Table 4; batches cycle through shuffled epochs."""
    a_opt = torch.optim.Adam([arch], lr=p.arch_lr, betas=(0.5, 0.999), weight_decay=p.arch_weight_decay)
    w_opt = torch.optim.SGD(net.parameters(), lr=p.w_lr, momentum=0.9, weight_decay=p.w_weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, T_max=max(iterations, 1), eta_min=0.0)
    w_batches, a_batches = _cycle(train, p.batch_size, p.seed), _cycle(held, p.batch_size, p.seed + 1)
    log, first = [], []
    net.train()
    for step in range(iterations):
        x, y = next(a_batches)
        a_opt.zero_grad(set_to_none=True)
        a_loss = F.cross_entropy(net(x, weights(arch)), y)
        a_loss.backward()
        grad = arch.grad.detach().clone() if arch.grad is not None else torch.zeros_like(arch)
        if step == 0:
            first = grad.reshape(-1).tolist()
        a_opt.step()
        x, y = next(w_batches)
        w_opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x, weights(arch).detach()), y)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        w_opt.step()
        sched.step()
        log.append({"phase": what, "step": step + 1, "arch_loss": a_loss.item(), "w_loss": loss.item(),
                    "grad_norm": float(grad.norm()), "arch": arch.detach().reshape(-1).tolist()})
    return _Phase(iterations, log, first)


def _cycle(data: Any, batch_size: int, seed: int) -> Any:
    epoch = 0
    while True:
        yield from batches(data, shard_indices(len(data), 0, 1, seed, epoch), batch_size)
        epoch += 1


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def topology_search(p: FTSO, space: SearchSpace, train: Any, held: Any, iterations: int
                    ) -> tuple[list[float], _Phase]:
    """The topology step: the one-op supernet trained for `iterations`; β after it, and the phase's record."""
    net = CellNet(space, lambda width: TopologyCell(p.topology_op, width))
    init_weights(net, torch.Generator().manual_seed(p.seed))
    beta = torch.tensor(beta_start(p.beta_form), requires_grad=True)
    phase = _alternate(p, net, beta, lambda b: beta_weights(b, p.beta_form), train, held, iterations, "topology")
    return beta.detach().tolist(), phase


def gradient_operators(p: FTSO, space: SearchSpace, kept: tuple[int, ...], ops: tuple[str, ...], train: Any,
                       held: Any, iterations: int) -> tuple[list[list[float]], _Phase]:
    """Strategy 1: mixed ops on the kept edges, α (Adam) and w alternated; softmax α per edge back."""
    net = CellNet(space, lambda width: MixedCell(kept, ops, width))
    init_weights(net, torch.Generator().manual_seed(p.seed))
    alpha = torch.zeros(len(EDGES), len(ops), requires_grad=True)
    phase = _alternate(p, net, alpha, lambda a: torch.softmax(a, -1), train, held, iterations, "operator")
    return torch.softmax(alpha.detach(), -1).tolist(), phase


def run_search(p: FTSO, train: Any, held: Any, space: SearchSpace, cost: Any) -> None:
    """Both steps and the result on `p` (validated, its data split by the caller)."""
    from hwsearch import ftso
    from predictors.maml import torch_threads

    start = time.perf_counter()
    with torch_threads(p.threads) if p.threads else contextlib.nullcontext():
        per_epoch = steps_per_epoch(len(train), p.batch_size)
        iterations = p.iterations if p.iterations is not None else p.epochs * per_epoch
        beta, topo = topology_search(p, space, train, held, iterations)
        kept, ties = ftso.keep_edges(beta, p.keep, p.tie_tol, beta_start(p.beta_form))
        topology_s = time.perf_counter() - start
        op_alpha, op_phase = None, None
        if p.operator == "gradient":
            op_iters = p.op_iterations if p.op_iterations is not None else iterations
            probs, op_phase = gradient_operators(p, space, kept, ftso.CANDIDATE_OPS, train, held, op_iters)
            arch, op_alpha = ftso.argmax_ops(kept, probs), {
                str(e): dict(zip(ftso.CANDIDATE_OPS, probs[e], strict=True)) for e in kept}
        budget = None
        if p.target is not None:
            arch, budget = ftso.budget_ops(space, kept, beta, cost, float(p.target))
        elif p.operator == "replace":
            arch = ftso.replace_ops(kept, p.replace_op)
    wall = time.perf_counter() - start
    arch = tuple(arch)
    predicted = None
    if cost is not None:
        from hwsearch.cost import predict_archs

        predicted = float(predict_archs(cost, space, [arch])[0])
    p.arch_, p.beta_, p.kept_ = arch, beta, kept
    p.result_ = FTSOResult(
        search=p.name, space=space.name, space_config=space.config, arch=list(arch), arch_id=space.arch_id(arch),
        target=None if p.target is None else float(p.target), metric=p.metric,
        unit="ms" if p.metric == "latency" else "mJ", predicted=predicted, wall_s=wall, params=p._json_params(),
        predictor={} if cost is None else {"space": cost.space, "space_config": cost.space_config,
                                           "source": cost.source, "device": cost.device_name},
        topology_op=p.topology_op, beta_form=p.beta_form, keep=p.keep, beta=beta,
        beta_init=beta_start(p.beta_form), beta_grad_first=topo.first_grad, kept=list(kept), ties=ties,
        topology={str(j): [EDGES[e][0] for e in kept if EDGES[e][1] == j] for j in range(1, N_NODES)},
        ops=[space.ops[k] for k in arch], operator="budget" if budget is not None else p.operator,
        op_alpha=op_alpha, budget=budget, feasible=None if budget is None else budget["feasible"],
        iterations=iterations, op_iterations=0 if op_phase is None else op_phase.iterations,
        log=topo.log + ([] if op_phase is None else op_phase.log),
        data={"name": getattr(train, "name", type(train).__name__), "heldout": getattr(held, "name", None),
              "proxy": bool(getattr(train, "proxy", False)), "n": len(train), "n_heldout": len(held),
              "resolution": int(train[0][0].shape[-1])},
        topology_s=topology_s, operator_s=wall - topology_s, seed=p.seed)
