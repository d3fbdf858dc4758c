"""The MAML / Meta-SGD engine the few-shot predictors share, and the networks it adapts.

`MAML` holds a model built by `model_fn`, adapts its parameters functionally
(`torch.func.functional_call`) so the outer loss differentiates through the inner loop, and can learn
per-parameter inner rates (Meta-SGD) or take damped Gauss-Newton inner steps. `engine_state` /
`load_engine_state` turn it into named float arrays and back (persistence never pickles). Used for few-shot
latency (predictors.help) and few-shot accuracy (predictors.meta_accuracy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on `n` intra-op threads inside the block (or the decorated function), then restore the
    caller's setting.

    Why: a meta-iteration is hundreds of tiny products (a few hundred rows by 128 columns) and their
    backward passes; splitting each across threads costs more than it saves, and where other processes
    compete for the cores, threads waiting for each other made HelpPredictor 8-12x slower per iteration
    (0.76-1.16 s on 2 threads against 0.09 s on one, 2 cores at load 9).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((pred - target) ** 2)


class MAML(nn.Module):
    """MAML over the parameters of `model_fn()`, optionally with learned per-parameter inner rates.

    The inner loop runs on a dict of tensors instead of the module, so the adapted parameters stay
    functions of the meta-parameters and the outer loss differentiates through them (second order
    unless `first_order`). `adapt_names` restricts which parameters the inner loop changes (None = all);
    `learn_inner_lr` makes each adapted parameter's step size a learned tensor of its shape (Meta-SGD).

    `inner="gauss-newton"` replaces the gradient steps by damped Gauss-Newton steps on the squared error
    with a Gaussian prior centred on the meta-init: theta = theta0 + S J^T (J S J^T + I)^-1 r, J the
    Jacobian of the outputs over the adapted parameters, S = diag(|rate|) the per-parameter rates, now
    prior variances (for small S, one step from theta0 is a Meta-SGD step with rates N S / 2). Why: a few gradient
    steps stop far from the fit the support allows, so more samples barely help; the Gauss-Newton step
    solves the linearised problem exactly (for a model linear in the adapted parameters, in one step),
    in the N x N dual form, cheap for few-shot N whatever the number of parameters. It ignores `loss_fn`.
    """

    def __init__(self, model_fn: Callable[[], nn.Module], inner_lr: float | Mapping[str, float] = 0.01,
                 inner_steps: int = 1, learn_inner_lr: bool = False, first_order: bool = False,
                 adapt_names: Iterable[str] | None = None, loss_fn: LossFn = mse, inner: str = "sgd") -> None:
        super().__init__()
        if inner_steps < 0:
            raise ValueError(f"inner_steps must be >= 0, got {inner_steps}")
        if inner not in ("sgd", "gauss-newton"):
            raise ValueError(f"inner must be 'sgd' or 'gauss-newton', got {inner!r}")
        self.inner = inner
        self.model = model_fn()
        self.inner_steps = int(inner_steps)
        self.first_order = bool(first_order)
        self.loss_fn = loss_fn
        names = [n for n, _ in self.model.named_parameters()]
        wanted = names if adapt_names is None else list(adapt_names)
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise ValueError(f"adapt_names: no such parameter(s) {unknown}; known: {names}")
        self.adapt_names: list[str] = [n for n in names if n in set(wanted)]
        self.learn_inner_lr = bool(learn_inner_lr)
        self.inner_lr = inner_lr
        # ParameterDict keys may not contain '.', hence the escaping.
        self.lrs = nn.ParameterDict({
            _key(n): nn.Parameter(torch.full_like(p.detach(), rate_for(inner_lr, n)),
                                  requires_grad=self.learn_inner_lr)
            for n, p in self.model.named_parameters() if n in set(self.adapt_names)
        })

    def params(self) -> Params:
        """The meta-parameters (the initialisation the inner loop starts from)."""
        return dict(self.model.named_parameters())

    def forward_with(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, params, (x,))

    def adapt(self, x: torch.Tensor, y: torch.Tensor, steps: int | None = None, params: Params | None = None,
              create_graph: bool = True) -> Params:
        """Parameters after `steps` inner steps on (x, y), from `params` (default: the meta-init).

        `create_graph` keeps the steps differentiable in the meta-parameters (meta-training); adaptation
        at test time passes False."""
        params = dict(self.params() if params is None else params)
        steps = self.inner_steps if steps is None else steps
        second = create_graph and not self.first_order
        if self.inner == "gauss-newton":
            return self._gauss_newton(params, x, y, steps, second)
        for _ in range(steps):
            with torch.enable_grad():
                loss = self.loss_fn(self.forward_with(params, x), y)
                grads = torch.autograd.grad(loss, [params[n] for n in self.adapt_names], create_graph=second,
                                            allow_unused=True)
            for n, g in zip(self.adapt_names, grads, strict=True):
                if g is not None:
                    params[n] = params[n] - self.lrs[_key(n)] * g
        return params

    def _gauss_newton(self, params: Params, x: torch.Tensor, y: torch.Tensor, steps: int, second: bool
                      ) -> Params:
        names = self.adapt_names
        theta0 = {n: params[n] for n in names}
        s = torch.cat([self.lrs[_key(n)].abs().reshape(-1) for n in names]).double()
        fixed = {n: p for n, p in params.items() if n not in theta0}
        if not second:
            theta0 = {n: p.detach() for n, p in theta0.items()}
            s = s.detach()

        def outputs(theta: Params) -> torch.Tensor:
            return functional_call(self.model, {**fixed, **theta}, (x,)).reshape(-1)

        theta = dict(theta0)
        eye = torch.eye(len(x), dtype=torch.float64)
        for _ in range(steps):
            with torch.enable_grad():
                jac = torch.func.jacrev(outputs)(theta)
                f = outputs(theta)
            # float64 for the solve: J S J^T can be ill-conditioned (one-hot rows sum to a constant, so
            # parameters are redundant, and the prior variances span orders of magnitude)
            jm = torch.cat([jac[n].reshape(len(x), -1) for n in names], dim=1).double()  # [N, P]
            delta = torch.cat([(theta[n] - theta0[n]).reshape(-1) for n in names]).double()
            r = y.reshape(-1).double() - f.double() + jm @ delta  # residual linearised at theta, from theta0
            alpha = torch.linalg.solve((jm * s) @ jm.T + eye, r)
            step = (s * (jm.T @ alpha)).to(x.dtype)
            theta, i = {}, 0
            for n in names:
                k = theta0[n].numel()
                theta[n] = theta0[n] + step[i: i + k].reshape(theta0[n].shape)
                i += k
        return {**params, **theta}

    def task_loss(self, x_s: torch.Tensor, y_s: torch.Tensor, x_q: torch.Tensor, y_q: torch.Tensor,
                  query_loss: LossFn | None = None) -> torch.Tensor:
        """Outer loss of one episode: adapt on the support, score on the query."""
        adapted = self.adapt(x_s, y_s, create_graph=True)
        return (query_loss or self.loss_fn)(self.forward_with(adapted, x_q), y_q)


def rate_for(inner_lr: float | Mapping[str, float], name: str) -> float:
    """The initial inner rate of parameter `name`: a float, or the value of the longest matching name
    prefix in a mapping ("" matches all), so parts of a model can start with different rates."""
    if not isinstance(inner_lr, Mapping):
        return float(inner_lr)
    best = max((k for k in inner_lr if name.startswith(k)), key=len, default=None)
    if best is None:
        raise ValueError(f"inner_lr has no entry for parameter {name!r} (add a '' default)")
    return float(inner_lr[best])


def _key(name: str) -> str:
    return name.replace(".", "__")


def mlp(n_in: int, hidden: Sequence[int], n_out: int = 1) -> nn.Sequential:
    """ReLU MLP; the last layer is linear."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class AdditiveNet(nn.Module):
    """Sum of per-layer op costs plus an MLP correction, for layer-wise one-hot inputs [B, L*K + E].

    Latency is mostly a sum over layers (what layer-wise predictors assume), and a device mostly changes
    what each op costs, not where it sits. So the additive part is rank-`rank` factorised,
    cost(l, op) = sum_r U[l, r] V[op, r] + b: U (how much a layer weighs) is shared across devices,
    V (what an op costs) = V0 + a linear map of the device embedding, and adaptation mostly moves V and b,
    in which the output is linear (so one Gauss-Newton inner step solves for them exactly). The MLP on
    [one-hot, embedding] carries what is not additive and what the embedding says about the device.
    """

    def __init__(self, n_layers: int, n_ops: int, n_emb: int, hidden: Sequence[int], rank: int = 1) -> None:
        super().__init__()
        self.n_layers, self.n_ops, self.rank = n_layers, n_ops, rank
        if rank == 0:  # unfactorised: a full per-layer cost table, T = V + hyper(embedding)
            self.V = nn.Parameter(torch.zeros(n_layers, n_ops))
            self.hyper = nn.Linear(n_emb, n_layers * n_ops)
        else:
            u = torch.ones(n_layers, rank)
            u[:, 1:] += 0.1 * torch.randn(n_layers, rank - 1)
            self.U = nn.Parameter(u)
            self.V = nn.Parameter(torch.zeros(n_ops, rank))
            self.hyper = nn.Linear(n_emb, n_ops * rank)
        self.b = nn.Parameter(torch.zeros(1))
        self.mlp = mlp(n_layers * n_ops + n_emb, hidden) if hidden else None

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        n = self.n_layers * self.n_ops
        x, emb = inp[:, :n], inp[:, n:]
        if self.rank == 0:
            table = self.V.reshape(1, -1) + self.hyper(emb)
            out = (x * table).sum(dim=1, keepdim=True) + self.b
        else:
            onehot = x.reshape(-1, self.n_layers, self.n_ops)
            v = self.V + self.hyper(emb).reshape(-1, self.n_ops, self.rank)
            cost = torch.einsum("blk,bkr->blr", onehot, v)
            out = (cost * self.U).sum(dim=(1, 2))[:, None] + self.b
        return out if self.mlp is None else out + self.mlp(inp)


def engine_state(engine: MAML, prefix: str = "") -> dict[str, np.ndarray]:
    """Meta-parameters and inner rates as named float32 arrays."""
    out = {f"{prefix}p.{n}": p.detach().cpu().numpy().copy() for n, p in engine.params().items()}
    out.update({f"{prefix}lr.{k}": v.detach().cpu().numpy().copy() for k, v in engine.lrs.items()})
    return out


def load_engine_state(engine: MAML, arrays: Mapping[str, np.ndarray], prefix: str = "") -> None:
    """Inverse of `engine_state`; ValueError naming the first missing or misshapen array."""
    with torch.no_grad():
        for n, p in engine.params().items():
            p.copy_(state_array(arrays, f"{prefix}p.{n}", tuple(p.shape)))
        for k, v in engine.lrs.items():
            v.copy_(state_array(arrays, f"{prefix}lr.{k}", tuple(v.shape)))


def state_array(arrays: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Array `name` of a saved state as a float32 tensor of `shape`; ValueError naming it when absent or misshapen."""
    if name not in arrays:
        raise ValueError(f"state has no array {name!r}")
    a = np.asarray(arrays[name], dtype=np.float32)
    if a.shape != shape:
        raise ValueError(f"state array {name!r} has shape {a.shape}, expected {shape}")
    return torch.from_numpy(a.copy())

