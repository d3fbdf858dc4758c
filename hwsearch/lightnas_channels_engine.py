"""The parts of LightNAS stage 2 (hwsearch.lightnas_channels, thesis Algorithm 2): the two variation operators,
the bounded rejection sampler that keeps every candidate within the latency tolerance, the cached BTE score and
the evolution loop itself. The loop takes any score function, so its bookkeeping is testable without training.

Operators (rate r, the thesis' 0.5 for both; it defines neither):
- uniform crossover: two distinct top-k parents a, b; each entry comes from b with probability r, else from a;
- mutation: one top-k parent; each entry is resampled with probability r, uniformly over all 7 scales (so it
  changes with probability r·6/7).
Each parent pair (or parent) is drawn anew for every proposal, so a rejected proposal does not pin a slot to
parents whose children all miss the target.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np

from spaces import SearchSpace
from spaces.errors import UserInputError

KINDS = ("init", "crossover", "mutation")


class NoFeasibleError(UserInputError):
    """No configuration predicted within the tolerance was found for the first population."""


def crossover(top: np.ndarray, n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """`n` uniform-crossover children of random distinct pairs of the rows of `top` [k >= 2, L]."""
    k = len(top)
    a = rng.integers(0, k, size=n)
    b = (a + rng.integers(1, k, size=n)) % k  # another member
    take_b = rng.random((n, top.shape[1])) < rate
    return np.where(take_b, top[b], top[a])


def mutate(top: np.ndarray, n: int, rate: float, n_ops: int, rng: np.random.Generator) -> np.ndarray:
    """`n` children of random rows of `top` [k, L], each entry resampled uniformly with probability `rate`."""
    parents = top[rng.integers(0, len(top), size=n)]
    fresh = rng.integers(0, n_ops, size=parents.shape)
    return np.where(rng.random(parents.shape) < rate, fresh, parents)


@dataclass
class Counts:
    """One kind of proposal's rejection sampling: proposals looked at (`draws`), `accepted`, rejected for the
    predicted latency (`latency`) or as a configuration already scored or drawn (`duplicate`), and `short`:
    candidates still missing when the draw budget ran out."""

    draws: int = 0
    accepted: int = 0
    latency: int = 0
    duplicate: int = 0
    short: int = 0

    def add(self, other: Counts) -> None:
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))


class Sampler:
    """Bounded rejection sampling through the predictor: proposals are predicted in batches of `draw_batch`
    (one predictor call each) and a proposal is accepted when |predicted/target − 1| <= `tolerance` and its
    configuration is new; a group of n candidates may look at n·`max_draws` proposals at most."""

    def __init__(self, space: SearchSpace, cost: Any, target: float, tolerance: float, max_draws: int,
                 draw_batch: int) -> None:
        self.space, self.cost, self.target, self.tolerance = space, cost, float(target), float(tolerance)
        self.max_draws, self.draw_batch = int(max_draws), int(draw_batch)
        self.counts = {k: Counts() for k in KINDS}
        self.queries, self.predict_s = 0, 0.0

    def predict(self, archs: np.ndarray) -> np.ndarray:
        from hwsearch.cost import predict_archs

        t0 = time.perf_counter()
        values = predict_archs(self.cost, self.space, archs) if len(archs) else np.empty(0)
        self.predict_s += time.perf_counter() - t0
        self.queries += len(archs)
        return values

    def within(self, predicted: np.ndarray) -> np.ndarray:
        p = np.asarray(predicted, dtype=float)
        return np.isfinite(p) & (np.abs(p / self.target - 1.0) <= self.tolerance)

    def draw(self, propose: Callable[[int], np.ndarray], n: int, seen: set[bytes], kind: str
             ) -> tuple[np.ndarray, np.ndarray, Counts]:
        """Up to `n` new feasible configurations from `propose(b)` ([b, L] proposals), their predictions and
        this call's counts (also added to `counts[kind]`); accepted keys join `seen`."""
        got: list[np.ndarray] = []
        pred: list[float] = []
        c = Counts()
        budget = n * self.max_draws
        while len(got) < n and budget > 0:
            cand = np.asarray(propose(min(self.draw_batch, budget)), dtype=np.int64)
            values = self.predict(cand)
            ok = self.within(values)
            for row, value, good in zip(cand, values, ok, strict=True):
                if len(got) == n:
                    break
                c.draws += 1
                budget -= 1
                key = row.tobytes()
                if not good:
                    c.latency += 1
                elif key in seen:
                    c.duplicate += 1
                else:
                    seen.add(key)
                    got.append(row)
                    pred.append(float(value))
                    c.accepted += 1
        c.short = n - len(got)
        self.counts[kind].add(c)
        return np.array(got, dtype=np.int64).reshape(-1, self.space.n_layers), np.array(pred), c


class Cached:
    """A per-configuration score with a cache: `one(arch) -> float` runs once per configuration (a NaN counts
    as a failure and scores -inf: ranked last). `evaluations`, `hits` and `seconds` say what it cost."""

    def __init__(self, one: Callable[[tuple[int, ...]], float]) -> None:
        self.one = one
        self.cache: dict[tuple[int, ...], float] = {}
        self.evaluations = self.hits = self.failures = 0
        self.seconds = 0.0

    def __call__(self, archs: np.ndarray) -> np.ndarray:
        out = np.empty(len(archs))
        for i, row in enumerate(np.asarray(archs, dtype=np.int64)):
            key = tuple(int(a) for a in row)
            if key in self.cache:
                self.hits += 1
            else:
                t0 = time.perf_counter()
                value = float(self.one(key))
                self.seconds += time.perf_counter() - t0
                self.evaluations += 1
                if np.isnan(value):
                    self.failures += 1
                    value = -np.inf
                self.cache[key] = value
            out[i] = self.cache[key]
        return out


def bte_scorer(space: SearchSpace, x: Any, y: Any, *, epochs: int, batch_size: int, negative: str, seed: int,
               lr: float | None = None) -> Cached:
    """BTE (hwsearch.bte) of a configuration's network trained on (x, y): every network starts from the same
    seed (its init and anything random in training), so two configurations differ only by their widths."""
    import torch

    from hwsearch.bte import bte_score

    train = {} if lr is None else {"lr": lr}

    def one(arch: tuple[int, ...]) -> float:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = space.build(arch)
        return bte_score(model, x, y, epochs=epochs, batch_size=batch_size, negative=negative, seed=seed, **train)

    return Cached(one)


@dataclass
class Evolution:
    """What Algorithm 2 leaves: the final top-k (keys, best first), every scored configuration's score,
    prediction and first-scored order, the populations P_0..P_{Q-1} it scored, and one history row per
    iteration."""

    top: list[bytes]
    archs: dict[bytes, np.ndarray]
    scores: dict[bytes, float]
    predicted: dict[bytes, float]
    order: dict[bytes, int]
    populations: list[np.ndarray] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    seeded: list[bool] = field(default_factory=list)


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def evolve(space: SearchSpace, sampler: Sampler, score: Callable[[np.ndarray], np.ndarray], *, population: int,
           iterations: int, top_k: int, rate: float, rng: np.random.Generator,
           seeds: Sequence[Sequence[int]] = (), fallback: Sequence[Sequence[int]] = (),
           on_iteration: Callable[[dict[str, Any]], None] | None = None) -> Evolution:
    """Algorithm 2: P_0 = the `seeds` predicted within the tolerance (the base) plus uniform draws under the
    constraint; for i = 1..Q: score P_{i-1}, Topk = the k best of Topk ∪ P_{i-1} (ties: first scored first),
    and, except after the last scoring, P_i = (P-k')/2 crossover children ∪ the rest mutation children ∪ Topk,
    where k' = |Topk| (with one member, all children are mutations; mutation also fills what crossover could
    not draw within its bound, as when few distinct children of k' parents exist). New configurations are never ones
    already scored or drawn. `fallback` configurations join P_0 only if no other feasible one was found.
    UserInputError when P_0 is empty."""
    L = space.n_layers
    seen: set[bytes] = set()
    ev = Evolution([], {}, {}, {}, {})
    seed_rows = np.array(seeds, dtype=np.int64).reshape(-1, L)
    seed_pred = sampler.predict(seed_rows)
    feasible = sampler.within(seed_pred)
    ev.seeded = [bool(f) for f in feasible]
    pop, pop_pred = [], []
    for row, p, ok in zip(seed_rows, seed_pred, feasible, strict=True):
        if ok and row.tobytes() not in seen:
            seen.add(row.tobytes())
            pop.append(row)
            pop_pred.append(float(p))
    drawn, drawn_pred, counts = sampler.draw(lambda b: rng.integers(0, space.n_ops, size=(b, L)),
                                             population - len(pop), seen, "init")
    current = np.concatenate([np.array(pop, dtype=np.int64).reshape(-1, L), drawn])
    current_pred = np.concatenate([np.array(pop_pred), drawn_pred])
    if not len(current) and len(fallback):
        rows = np.array(fallback, dtype=np.int64).reshape(-1, L)
        values = sampler.predict(rows)
        ok = sampler.within(values)
        current, current_pred = rows[ok][:population], values[ok][:population]
    if not len(current):
        raise NoFeasibleError(f"no channel configuration predicted within ±{100 * sampler.tolerance:g}% of the "
                             f"target {sampler.target:.4g} was found in {counts.draws:,} draws")
    new_counts = {"init": counts}
    for i in range(1, iterations + 1):
        t0 = time.perf_counter()
        s = np.asarray(score(current), dtype=float)
        s = np.where(np.isnan(s), -np.inf, s)
        fresh = 0
        for row, v, p in zip(current, s, current_pred, strict=True):
            key = row.tobytes()
            if key not in ev.order:
                ev.order[key], ev.archs[key] = len(ev.order), row.copy()
                fresh += 1
            ev.scores[key], ev.predicted[key] = float(v), float(p)
        ev.populations.append(current.copy())
        pool = list(dict.fromkeys(ev.top + [row.tobytes() for row in current]))
        ev.top = sorted(pool, key=lambda k: (-ev.scores[k], ev.order[k]))[:top_k]
        rec = {"iteration": i, "population": len(current), "new_evaluations": fresh,
               "best_bte": _finite(ev.scores[ev.top[0]]), "mean_bte": _finite(float(np.mean(s))),
               "feasible_draws": {k: c.accepted for k, c in new_counts.items()},
               "draws": {k: c.draws for k, c in new_counts.items()},
               "short": sum(c.short for c in new_counts.values())}
        if i < iterations:
            top = np.array([ev.archs[k] for k in ev.top])
            n_new = population - len(top)
            n_cross = n_new // 2 if len(top) >= 2 else 0
            cx, cx_pred, c_cx = sampler.draw(partial(crossover, top, rate=rate, rng=rng), n_cross, seen,
                                             "crossover")
            mu, mu_pred, c_mu = sampler.draw(partial(mutate, top, rate=rate, n_ops=space.n_ops, rng=rng),
                                             n_new - len(cx), seen, "mutation")  # and crossover's shortfall
            new_counts = {"crossover": c_cx, "mutation": c_mu}
            current = np.concatenate([cx, mu, top])
            current_pred = np.concatenate([cx_pred, mu_pred, [ev.predicted[k] for k in ev.top]])
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        ev.history.append(rec)
        if on_iteration is not None:
            on_iteration(rec)
    return ev


def ladder(lo_arch: Sequence[int], hi_arch: Sequence[int]) -> np.ndarray:
    """The configurations from `lo_arch` to `hi_arch`, one layer switched at a time ([L+1, L]): with a latency
    that grows layer by layer, they step through the reachable range in small steps (the fallback seeds when
    uniform draws find nothing near a target in the range's tails)."""
    lo, hi = np.asarray(lo_arch, dtype=np.int64), np.asarray(hi_arch, dtype=np.int64)
    rows = [lo.copy()]
    for layer in range(len(lo)):
        nxt = rows[-1].copy()
        nxt[layer] = hi[layer]
        rows.append(nxt)
    return np.array(rows)


def _total(counts: dict[str, Counts]) -> Counts:
    total = Counts()
    for c in counts.values():
        total.add(c)
    return total


def check_reach(reach: Any, target: float, tolerance: float, unit: str, base_id: str) -> None:
    """UserInputError naming the reachable range when no configuration can be within ±tolerance of target."""
    if target * (1 + tolerance) < reach.lo or target * (1 - tolerance) > reach.hi:
        raise UserInputError(f"target {target:.4g} {unit} cannot be met: the predictor puts channel configurations "
                             f"of base {base_id} at {reach.lo:.4g}-{reach.hi:.4g} {unit} ({reach.method}), none "
                             f"within ±{100 * tolerance:g}% of the target")


def fit_search(p: Any) -> tuple[Any, dict[str, float]]:
    """Run the search `p` (a validated hwsearch.lightnas_channels.LightNASChannels): (its result, BTE by arch
    id of every configuration scored)."""
    import torch

    from hwsearch.bte import DEFAULT_LR, DEFAULT_NEGATIVE
    from hwsearch.cost import as_predict_model, reachable_range
    from hwsearch.data import digits_proxy
    from hwsearch.lightnas_channels import channel_space
    from hwsearch.lightnas_channels_result import LightNASChannelsResult
    from hwsearch.result import UNITS

    start = time.perf_counter()
    cost = as_predict_model(p.predictor, p.metric)
    space = channel_space(p.base, cost.space, cost.space_config)
    unit = UNITS[p.metric]
    reach = reachable_range(cost, space, samples=p.reach_samples, seed=p.seed)
    check_reach(reach, p.target, p.tolerance, unit, space.base_id)
    train, _ = digits_proxy(resolution=p.resolution, seed=p.seed)
    x, y = train.images[:p.images], train.labels[:p.images]
    negative = p.negative or DEFAULT_NEGATIVE
    lr = p.lr if p.lr is not None else DEFAULT_LR
    threads = torch.get_num_threads()
    if p.threads is not None:
        torch.set_num_threads(p.threads)
    score = bte_scorer(space, x, y, epochs=p.epochs, batch_size=p.batch_size, negative=negative, seed=p.seed, lr=lr)
    sampler = Sampler(space, cost, p.target, p.tolerance, p.max_draws, p.draw_batch)
    base = (_one(),) * space.n_layers  # the stage-1 network
    bar = None
    if p.progress:
        from hwsearch.lightnas_engine import Progress

        bar = Progress(p.iterations, "LightNAS channels",
                       lambda row: f"best BTE {row['best_bte'] if row['best_bte'] is not None else float('nan'):.4g}")
    try:
        ev = evolve(space, sampler, score, population=p.population, iterations=p.iterations, top_k=p.top_k,
                    rate=p.rate, rng=np.random.default_rng(p.seed), seeds=[base] if p.seed_base else [],
                    fallback=ladder(reach.lo_arch, reach.hi_arch), on_iteration=bar.advance if bar else None)
        base_bte = float(score(np.array([base]))[0])  # cached when the base was in P_0
    except NoFeasibleError as e:
        raise NoFeasibleError(f"{e}: the predictor's range is {reach.lo:.4g}-{reach.hi:.4g} {unit}; raise "
                              "--max-draws or --latency-tolerance") from None
    finally:
        if bar is not None:
            bar.close()
        torch.set_num_threads(threads)
    base_pred = float(sampler.predict(np.array([base]))[0])
    best = ev.top[0]
    arch = tuple(int(a) for a in ev.archs[best])
    top = [{"arch": [int(a) for a in ev.archs[k]], "arch_id": space.arch_id(tuple(ev.archs[k])),
            "bte": _finite(ev.scores[k]), "predicted": ev.predicted[k]} for k in ev.top]
    counts = {k: asdict(c) for k, c in sampler.counts.items()}
    result = LightNASChannelsResult(
        search=p.name, space=space.name, space_config=space.config, arch=list(arch), arch_id=space.arch_id(arch),
        target=float(p.target), metric=p.metric, unit=unit, predicted=ev.predicted[best],
        wall_s=time.perf_counter() - start, params=p._json_params(),
        predictor={"space": cost.space, "space_config": cost.space_config, "source": cost.source,
                   "device": cost.device_name},
        scales=list(space.scales(arch)), live_layers=list(space.live_layers),
        hidden_widths=list(space.hidden_widths(arch)),
        base={"arch_id": space.base_id, "space": space.base_space.name, "space_config": space.base_space.config,
              "channel_arch_id": space.arch_id(base), "bte": _finite(base_bte), "predicted": base_pred,
              "in_population": bool(p.seed_base and ev.seeded and ev.seeded[0])},
        bte=_finite(ev.scores[best]),
        bte_setup={"data": train.name, "images": len(y), "resolution": p.resolution, "epochs": p.epochs,
                   "batch_size": p.batch_size, "batches": len(y) // p.batch_size, "lr": lr, "negative": negative,
                   "loss": "logged training loss", "seed": p.seed},
        algorithm={"population": p.population, "iterations": p.iterations, "top_k": p.top_k, "rate": p.rate,
                   "crossover": "uniform: each entry from the second parent with probability r",
                   "mutation": f"each entry resampled uniformly over the {space.n_ops} scales with probability r",
                   "populations_scored": len(ev.populations)},
        sampling={"tolerance": p.tolerance, "max_draws": p.max_draws, "draw_batch": p.draw_batch, "kinds": counts,
                  "total": asdict(_total(sampler.counts)), "predictor_queries": sampler.queries,
                  "predictor_ms_per_query": 1e3 * sampler.predict_s / max(sampler.queries, 1)},
        reachable=reach.to_dict(), history=ev.history, evaluations=score.evaluations, cache_hits=score.hits,
        bte_failures=score.failures, bte_s=round(score.seconds, 2), top=top, seed=p.seed)
    scores = {space.arch_id(tuple(k)): v for k, v in score.cache.items()}
    return result, scores


def _one() -> int:
    from spaces.mbconv_channels import ONE

    return ONE
