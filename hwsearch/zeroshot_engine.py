"""The parts of TPC-NAS's search (hwsearch.zeroshot): the constraint checks of a batch of children (depth,
params, FLOPs, then the predictor on what is left, timed), the proxy's scores (a fast path per batch, or one
build per network, cached), the predicted-cheapest initial network, the mutation, and the measures a result
records of its candidates."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hwsearch.random_search import InfeasibleTargetWarning
from spaces import SearchSpace
from spaces.errors import UserInputError

SLOW_PREDICTOR_MS = 0.6  # per network: 480,000 queries in under 5 min (spec §1.9)
_SMALL_SPACE = 1 << 16  # spaces enumerated for the predicted-cheapest F0


class SlowPredictorWarning(UserWarning):
    """The predictor answers too slowly for the iterations asked (it builds each network, say)."""


class Checks:
    """The constraints of one search, vectorised over a batch of children: depth, params, FLOPs, then the
    predictor on what is left (so its queries are the children that passed the free checks)."""

    def __init__(self, space: SearchSpace, cost: Any, target: float | None, max_flops: float | None,
                 max_params: float | None, max_depth: int | None) -> None:
        self.space, self.cost, self.target = space, cost, target
        self.limits = {"depth": max_depth, "params_m": max_params, "flops_m": max_flops}
        self.queries, self.predict_s = 0, 0.0
        self.rejected = {"depth": 0, "params_m": 0, "flops_m": 0, "predicted": 0}
        self._flops = self._params = None
        if max_flops is not None:
            self._flops = fast_counter("flops", space)
        if max_params is not None:
            self._params = fast_counter("params", space)

    def measures(self, archs: np.ndarray) -> dict[str, np.ndarray]:
        """Depth, params (M) and FLOPs (M) of `archs` (NaN where not asked or not countable fast)."""
        out = {k: np.full(len(archs), np.nan) for k in self.limits}
        if self.limits["depth"] is not None:
            out["depth"] = conv_depths(self.space, archs)
        if self._params is not None:
            out["params_m"] = np.asarray(self._params.fast_scores(self.space, archs), dtype=float) / 1e6
        if self._flops is not None:
            out["flops_m"] = np.asarray(self._flops.fast_scores(self.space, archs), dtype=float) / 1e6
        return out

    def predict(self, archs: np.ndarray) -> np.ndarray:
        from hwsearch.cost import predict_archs

        if self.cost is None or len(archs) == 0:
            return np.full(len(archs), np.nan)
        t0 = time.perf_counter()
        values = predict_archs(self.cost, self.space, archs)
        self.predict_s += time.perf_counter() - t0
        self.queries += len(archs)
        return values

    def __call__(self, archs: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(which children meet every constraint, their measures incl. "predicted"), counting rejections."""
        m = self.measures(archs)
        ok = np.ones(len(archs), dtype=bool)
        for key, limit in self.limits.items():
            if limit is not None:
                bad = ok & ~(m[key] <= limit)
                self.rejected[key] += int(bad.sum())
                ok &= ~bad
        m["predicted"] = np.full(len(archs), np.nan)
        if self.cost is not None and ok.any():
            m["predicted"][ok] = self.predict(archs[ok])
            bad = ok & ~((m["predicted"] > 0) & (m["predicted"] <= self.target))
            self.rejected["predicted"] += int(bad.sum())
            ok &= ~bad
        return ok, m

    def reasons(self, m: dict[str, np.ndarray], i: int, unit: str) -> list[str]:
        """Why child `i` broke its constraints (for the infeasible warning)."""
        out = [f"{key} {m[key][i]:.4g} > {limit:g}" for key, limit in self.limits.items()
               if limit is not None and not m[key][i] <= limit]
        if self.cost is not None and not m["predicted"][i] <= self.target:
            out.append(f"predicted {m['predicted'][i]:.4g} {unit} > target {self.target:g} {unit}")
        return out


def fast_counter(name: str, space: SearchSpace) -> Any:
    """The #params (every parameter built: the model's size, not the proxy's effective count) or #FLOPs (MACs)
    proxy, refused when it cannot count this space without building every network."""
    from hwsearch.proxies import create_proxy

    proxy = create_proxy(name, effective=False) if name == "params" else create_proxy(name)
    if proxy.fast_scores(space, [space.sample(np.random.default_rng(0))]) is None:
        raise UserInputError(f"--max-{name} needs a per-layer {name} table of space {space.name!r}, which the "
                             f"{name!r} proxy does not have")
    return proxy


def conv_depths(space: SearchSpace, archs: np.ndarray) -> np.ndarray:
    """Main-path conv layers of each arch (the depth cap's count: hwsearch.proxies.tpc.conv_depth)."""
    from hwsearch.proxies.tpc import conv_depth

    return np.asarray(conv_depth(space, archs), dtype=float).reshape(-1)


class Scorer:
    """The proxy's oriented score of archs: one `fast_scores` call per batch when the proxy has one for the
    space, else each network built and scored once (cached by arch). A failure scores -inf (never inserted)."""

    def __init__(self, proxy: Any, space: SearchSpace, batch_kind: str, batch_size: int, seed: int) -> None:
        self.proxy, self.space, self.seed = proxy, space, seed
        self.fast = proxy.fast_scores(space, [space.sample(np.random.default_rng(0))]) is not None
        self.batch = None
        if not self.fast:  # data-free ones (SynFlow) read the batch's shape
            from hwsearch.proxies import make_batch

            self.batch = make_batch(batch_kind, space.input_shape(), batch_size, seed,
                                    num_classes=int(space.config.get("num_classes", 10)))
        self.cache: dict[str, float] = {}
        self.evaluations, self.failures, self.seconds = 0, 0, 0.0
        self.last_failure: str | None = None

    def __call__(self, archs: np.ndarray) -> np.ndarray:
        from hwsearch.proxies import score_archs

        t0 = time.perf_counter()
        if self.fast:
            raw = np.asarray(self.proxy.fast_scores(self.space, archs), dtype=float).reshape(-1)
            self.evaluations += len(archs)
        else:
            ids = [self.space.arch_id(tuple(int(a) for a in row)) for row in archs]
            new = [i for i, k in enumerate(ids) if k not in self.cache]
            values = score_archs(self.proxy, self.space, [tuple(map(int, archs[i])) for i in new], self.batch,
                                 self.seed, on_failure=self._failed)
            self.evaluations += len(new)
            self.cache.update({ids[i]: float(v) for i, v in zip(new, values, strict=True)})
            raw = np.array([self.cache[k] for k in ids])
        self.seconds += time.perf_counter() - t0
        scores = np.asarray(self.proxy.oriented(raw), dtype=float)
        # NaN is a failure; -inf a value (TPC, NASWOT and Zen of a cell with no path from its input): never inserted
        self.failures += int(np.isnan(scores).sum()) if self.fast else 0
        return np.where(np.isfinite(scores), scores, -np.inf)

    def _failed(self, e: Exception) -> None:
        self.failures += 1
        self.last_failure = str(e)


def predicted_cheapest(space: SearchSpace, size: Callable[[np.ndarray], np.ndarray], seed: int) -> tuple[int, ...]:
    """The arch of least `size` (predicted cost, or FLOPs without a predictor): every arch of a small space,
    else the least of 2,000 random ones refined by greedy per-layer descent (as hwsearch.cost.reachable_range)."""
    import itertools

    if space.size <= _SMALL_SPACE:
        archs = np.array(list(itertools.product(range(space.n_ops), repeat=space.n_layers)), dtype=np.int64)
        return tuple(int(a) for a in archs[int(np.argmin(size(archs)))])
    archs = np.random.default_rng(seed).integers(0, space.n_ops, size=(2000, space.n_layers))
    values = size(archs)
    arch, best = archs[int(np.argmin(values))].copy(), float(values.min())
    for _ in range(4):
        changed = False
        for layer in range(space.n_layers):
            cands = np.repeat(arch[None], space.n_ops, axis=0)
            cands[:, layer] = np.arange(space.n_ops)
            v = size(cands)
            k = int(np.argmin(v))
            if v[k] < best - 1e-12:
                arch, best, changed = cands[k], float(v[k]), True
        if not changed:
            break
    return tuple(int(a) for a in arch)


def mutate(parents: np.ndarray, n_layers_changed: int, n_ops: int, rng: np.random.Generator) -> np.ndarray:
    """Children of `parents` [B, L]: `n_layers_changed` distinct random layers of each take another op."""
    children = parents.copy()
    b, n_layers = parents.shape
    layers = np.argsort(rng.random((b, n_layers)), axis=1)[:, :n_layers_changed]
    rows = np.arange(b)[:, None]
    shift = rng.integers(1, n_ops, size=(b, n_layers_changed))  # never the parent's op
    children[rows, layers] = (parents[rows, layers] + shift) % n_ops
    return children


def one_line(show: Callable[..., None]) -> Callable[..., None]:
    """`warnings.showwarning` printing the search's own warnings at once as one 'warning: ...' line on stderr
    (a slow predictor is said before the hours it costs, not after)."""

    def shown(message: Any, category: type, *args: Any, **kwargs: Any) -> None:
        if issubclass(category, InfeasibleTargetWarning | SlowPredictorWarning):
            print(f"warning: {message}", file=sys.stderr, flush=True)
        else:
            show(message, category, *args, **kwargs)

    return shown


def finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def all_measures(space: SearchSpace, archs: np.ndarray, tabled: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Depth, params (M) and FLOPs (M, counted as MACs) of a few `archs` whatever the constraints: what the result
    records of its candidates. The per-layer tables of the `tabled` measures (the constrained ones: built
    already) or of a small space; else one shapes-only build per arch (an MBConv table is ~150 builds)."""
    from hwsearch.proxies import create_proxy

    out = {k: np.full(len(archs), np.nan) for k in ("depth", "params_m", "flops_m")}
    small = space.size <= _SMALL_SPACE
    for key, name in (("depth", "depth"), ("params_m", "params"), ("flops_m", "flops")):
        if small or key in tabled:
            values = (conv_depths(space, archs) if key == "depth"
                      else fast_counter(name, space).fast_scores(space, archs))
            out[key] = np.asarray(values, dtype=float).reshape(-1) / (1 if key == "depth" else 1e6)
    if small or len(tabled) == 3:
        return out
    import torch

    from hwsearch.proxies.tpc import model_conv_depth

    params, flops = create_proxy("params", effective=False), create_proxy("flops", input_shape=space.input_shape())
    for i, arch in enumerate(archs):
        arch = space.validate([int(a) for a in arch])
        try:
            with torch.device("meta"):
                model = space._make_module(arch)
        except (RuntimeError, NotImplementedError):  # an op without a meta kernel
            model = space._make_module(arch)
        measured = {"depth": model_conv_depth(model), "params_m": params.score(model) / 1e6,
                    "flops_m": flops.score(model) / 1e6}
        for key, value in measured.items():
            if key not in tabled:
                out[key][i] = float(value)
    return out


def candidate(space: SearchSpace, pop: dict[str, np.ndarray], i: int, proxy: Any,
               full: dict[str, float]) -> dict[str, Any]:
    """One population member as JSON: the arch, the proxy's raw value and every measure."""
    arch = [int(a) for a in pop["arch"][i]]
    oriented = float(pop["score"][i])
    raw = oriented if proxy.higher_is_better else -oriented

    def num(key: str) -> float | None:
        v = float(full[key]) if key in full and np.isfinite(full[key]) else float(pop[key][i])
        return v if np.isfinite(v) else None

    depth = num("depth")
    return {"arch": arch, "arch_id": space.arch_id(arch), "proxy_value": finite(raw), "score": finite(oriented),
            "predicted": num("predicted"), "flops_m": num("flops_m"), "params_m": num("params_m"),
            "depth": None if depth is None else int(depth)}
