"""Zero-shot proxies against ground truth: score cells of a space with proxies (a resumable per-cell cache), and
rank-correlate the scores with the true accuracies and with NASLib's reference scores (the survey's §4 protocol).

Scoring is slow (a network built and scored per cell and proxy), so every value is appended to a JSONL cache
(`ScoreCache`) the moment it is computed, keyed by everything that changes it (proxy and its parameters, arch,
batch kind and size, seed, space config); a rerun reads it back and computes only what is missing, and an
interrupted run keeps every line written. A proxy that fails on a network records why (the cache keeps the
failure, so a rerun does not retry a deterministic error) and the others go on.

The metrics are pure: Spearman ρ and Kendall τ (scipy) of the oriented values (higher = predicted more
accurate) against the truth over all cells with both numbers and over the top fraction by true accuracy
(survey: top 5 %). NASLib's `zc_nasbench201.json` gives, for ~725 cells per task, the zero-cost-nas reference
scores computed on real CIFAR batches: we compare ranks only (ρ of ours vs theirs on common cells, and ρ of
theirs vs the truth).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spaces.errors import UserInputError

if TYPE_CHECKING:
    from hwsearch.proxies import Proxy, ProxyBatch
    from profiler.store import Store
    from spaces import SearchSpace

DEFAULT_NASLIB = Path(__file__).resolve().parents[2] / "shared" / "data" / "NASLib-zc" / "zc_nasbench201.json"
# Our proxy name -> NASLib's key (the others are the same name; proxies NASLib lacks have no entry there).
NASLIB_NAMES = {"jacob_cov": "jacov", "naswot": "nwot"}
# NASLib's op order in its `arch` tuples (SOURCES.md §3). Its edges are in NASLib's EDGE_LIST order, (1,2),
# (1,3), (1,4), (2,3), (2,4), (3,4) (nodes from 1), which is not the NB201 string's (1,2), (1,3), (2,3), (1,4), ...:
# ours takes the tuple's entries in this order (SOURCES.md says "the same order"; SynFlow, which sees the
# topology, matches NASLib's per-cell values to rho 0.999 this way and 0.92 read as the string's order).
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
NASLIB_EDGES = (0, 1, 3, 2, 4, 5)
Progress = Callable[[int, int, str], None]


def _no_progress(done: int, total: int, note: str = "") -> None:
    pass


# --- the cache ---------------------------------------------------------------------------------------------

class ScoreCache:
    """A JSONL file of per-cell proxy values: one line per (proxy, params, arch, batch kind, batch size, seed,
    space config), appended and flushed as soon as it is computed. `path` None keeps them in memory only.
    A torn last line (a killed write) is skipped on reading."""

    def __init__(self, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.is_file():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                        self.entries[self.key_of(rec)] = rec
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue

    @staticmethod
    def key_of(rec: Mapping[str, Any]) -> str:
        return json.dumps([rec["proxy"], rec["params"], rec["arch"], rec["batch"], rec["batch_size"], rec["seed"],
                           rec["space_config"]], sort_keys=True, default=str)

    def get(self, rec: Mapping[str, Any]) -> dict[str, Any] | None:
        return self.entries.get(self.key_of(rec))

    def add(self, recs: Sequence[dict[str, Any]]) -> None:
        """Remember `recs` and append them to the file (one write, flushed)."""
        for rec in recs:
            self.entries[self.key_of(rec)] = rec
        if self.path is not None and recs:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write("".join(json.dumps(r, default=str) + "\n" for r in recs))
                f.flush()


def _key(proxy: Proxy, arch_id: str, batch: ProxyBatch | None, seed: int, config: dict[str, Any]) -> dict[str, Any]:
    """The cache key of one value. A data-free proxy's value does not depend on the images: its key says
    batch None (so digits and gaussian runs share it) but keeps the batch size (SynFlow reads the shape)."""
    return {"proxy": proxy.name, "params": proxy.describe()["params"], "arch": arch_id,
            "batch": None if batch is None or proxy.data_free else batch.kind,
            "batch_size": None if batch is None else batch.size, "seed": int(seed), "space_config": config}


def _overrides_fast(proxy: Proxy) -> bool:
    from hwsearch.proxies import Proxy as Base

    return type(proxy).fast_scores is not Base.fast_scores


def _has_fast_path(proxy: Proxy, space: SearchSpace, arch: Sequence[int]) -> bool:
    """Whether `proxy` scores archs of `space` without building them (asked on one arch)."""
    return _overrides_fast(proxy) and proxy.fast_scores(space, [arch]) is not None


def score_cells(proxies: Sequence[Proxy], space: SearchSpace, arch_ids: Sequence[str], batch: ProxyBatch | None,
                seed: int = 0, cache: ScoreCache | None = None, progress: Progress = _no_progress,
                cells_for: Callable[[Proxy], Sequence[str]] | None = None) -> dict[str, dict[str, Any]]:
    """Each proxy's values of `arch_ids` (or of `cells_for(proxy)`), reusing and filling `cache`.

    Returns {proxy name: {"values": {arch_id: value or NaN}, "errors": {arch_id: message}, "time_s": {arch_id:
    seconds}, "computed": n, "cached": n, "fast": bool}}. A proxy with a fast path (`fast_scores`) scores its
    missing cells in one call (time per cell = the call's time / cells)."""
    from hwsearch.proxies import ProxyFailure, score_arch

    cache = cache if cache is not None else ScoreCache()
    config = dict(space.config)
    out: dict[str, dict[str, Any]] = {}
    plan = []
    for proxy in proxies:
        ids = list(cells_for(proxy) if cells_for else arch_ids)
        res: dict[str, Any] = {"values": {}, "errors": {}, "time_s": {}, "computed": 0, "cached": 0}
        out[proxy.name] = res
        missing = []
        for a in ids:
            rec = cache.get(_key(proxy, a, batch, seed, config))
            if rec is None:
                missing.append(a)
            else:
                _take(res, rec)
                res["cached"] += 1
        # probed (one cell) only when there is work: a rerun from the cache calls no proxy at all
        res["fast"] = (_has_fast_path(proxy, space, space.parse(missing[0])) if missing
                       else _overrides_fast(proxy))
        plan.append((proxy, res, missing))
    # progress counts the networks to build and score: the cached values and the fast paths take no time
    total, done = sum(len(m) for _, res, m in plan if not res["fast"]), 0
    progress(0, total, "")
    for proxy, res, missing in plan:
        if not missing:
            continue
        archs = [space.parse(a) for a in missing]
        if res["fast"]:
            t0 = time.perf_counter()
            vals = np.asarray(proxy.fast_scores(space, archs), dtype=float).reshape(-1)
            per = (time.perf_counter() - t0) / len(archs)
            recs = [{**_key(proxy, a, batch, seed, config), "value": _finite(v), "time_s": per,
                     "error": None if not math.isnan(v) else "not a number"}
                    for a, v in zip(missing, vals, strict=True)]
            cache.add(recs)
            for rec in recs:
                _take(res, rec)
            res["computed"] += len(recs)
            progress(done, total, f"{proxy.name} (fast path, {len(recs)} cells)")
            continue
        for a, arch in zip(missing, archs, strict=True):
            t0 = time.perf_counter()
            try:
                value, error = score_arch(proxy, space, arch, batch, seed), None
            except ProxyFailure as e:
                value, error = None, str(e)
            rec = {**_key(proxy, a, batch, seed, config), "value": _finite(value) if value is not None else None,
                   "time_s": time.perf_counter() - t0, "error": error}
            cache.add([rec])
            _take(res, rec)
            res["computed"] += 1
            done += 1
            progress(done, total, proxy.name)
    return out


def _finite(v: Any) -> float | None:
    """The value to cache: None for NaN; ±inf kept (NASWOT and Zen give a cell cut off from its input log 0 =
    -inf, the reference's value: it ranks that chance-level cell last, which dropping it would hide)."""
    v = float(v)
    return None if math.isnan(v) else v


def _take(res: dict[str, Any], rec: Mapping[str, Any]) -> None:
    a = rec["arch"]
    res["values"][a] = float("nan") if rec.get("value") is None else float(rec["value"])
    res["time_s"][a] = float(rec.get("time_s") or 0.0)
    if rec.get("error"):
        res["errors"][a] = rec["error"]


# --- pure metrics ------------------------------------------------------------------------------------------

def _clean(pred: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = np.asarray(pred, dtype=float).reshape(-1), np.asarray(truth, dtype=float).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"pred and truth differ in length ({p.size} vs {t.size})")
    ok = ~np.isnan(p) & np.isfinite(t)  # an infinite proxy value still ranks (first or last)
    return p[ok], t[ok]


def _rank(fn: str, pred: Any, truth: Any) -> float:
    """scipy.stats' `fn` (spearmanr, kendalltau) over the pairs where `_clean` keeps both; NaN with fewer than
    3 pairs or a constant side."""
    from scipy import stats

    p, t = _clean(pred, truth)
    if p.size < 3 or len(np.unique(p)) < 2 or np.ptp(t) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(getattr(stats, fn)(p, t).statistic)


def spearman(pred: Any, truth: Any) -> float:
    """Spearman ρ over the pairs where both are known (an infinite value ranks); NaN where undefined."""
    return _rank("spearmanr", pred, truth)


def kendall(pred: Any, truth: Any) -> float:
    """Kendall τ-b over the pairs where both are known (an infinite value ranks); NaN where undefined."""
    return _rank("kendalltau", pred, truth)


def top_indices(truth: Any, fraction: float) -> np.ndarray:
    """Indices of the best `fraction` of the cells by true accuracy (at least 3, ties broken by position),
    among cells with a finite truth."""
    t = np.asarray(truth, dtype=float).reshape(-1)
    if not 0 < fraction <= 1:
        raise UserInputError(f"the top fraction must be in (0, 1], got {fraction!r}")
    ok = np.flatnonzero(np.isfinite(t))
    k = min(ok.size, max(3, int(math.ceil(fraction * ok.size))))
    order = ok[np.argsort(-t[ok], kind="stable")]
    return np.sort(order[:k])


def correlations(values: Any, truth: Any, higher_is_better: bool = True, top: float = 0.05) -> dict[str, Any]:
    """ρ and τ of `values` (oriented: negated where lower is better) against `truth` over all cells and over
    the top `top` fraction by truth. NaN-safe: a cell whose value or truth is NaN is left out (and counted);
    an infinite value ranks."""
    v = np.asarray(values, dtype=float).reshape(-1)
    v = v if higher_is_better else -v
    t = np.asarray(truth, dtype=float).reshape(-1)
    idx = top_indices(t, top)
    n_ok = int((~np.isnan(v) & np.isfinite(t)).sum())
    return {"n": n_ok, "n_missing": int(v.size - n_ok), "spearman": spearman(v, t), "kendall": kendall(v, t),
            "top": {"fraction": top, "n": int((~np.isnan(v[idx])).sum()), "spearman": spearman(v[idx], t[idx]),
                    "kendall": kendall(v[idx], t[idx])}}


# --- NASLib's reference scores -----------------------------------------------------------------------------

def naslib_arch_id(arch: Any) -> str:
    """Our NB201 arch id of a NASLib `arch` (a 6-tuple, or its string, of NASLib op indices)."""
    from spaces.nb201 import OPS, nb201

    if isinstance(arch, str):
        arch = [int(x) for x in arch.strip("()[] ").split(",")]
    ops = [int(i) for i in arch]
    return nb201().arch_id(tuple(OPS.index(NASLIB_OPS[ops[e]]) for e in NASLIB_EDGES))


def load_naslib(path: str | Path, task: str) -> dict[str, dict[str, float]]:
    """{our arch id: {NASLib proxy name: score, ..., "val_accuracy": v}} of `task` in NASLib's
    zc_nasbench201.json; UserInputError naming the file or the tasks it has."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserInputError(f"--naslib {path}: cannot read NASLib's scores ({e})") from None
    if task not in data:
        raise UserInputError(f"--naslib {path}: no task {task!r} (it has {', '.join(sorted(data))})")
    out: dict[str, dict[str, float]] = {}
    for cell in data[task].values():
        row = {k: float(v["score"]) for k, v in cell.items() if isinstance(v, dict) and "score" in v}
        row["val_accuracy"] = float(cell.get("val_accuracy", math.nan))
        out[naslib_arch_id(cell["arch"])] = row
    return out


def naslib_comparison(name: str, values: Mapping[str, float], truth: Mapping[str, float],
                      naslib: Mapping[str, Mapping[str, float]]) -> dict[str, Any] | None:
    """ρ of our raw values vs NASLib's for proxy `name` on the cells both scored, and NASLib's own ρ and τ vs
    `truth` on all its cells; None when NASLib has no such proxy."""
    key = NASLIB_NAMES.get(name, name)
    theirs = {a: row[key] for a, row in naslib.items() if key in row}
    if not theirs:
        return None
    common = [a for a in values if a in theirs and math.isfinite(values[a])]
    with_truth = [a for a in theirs if a in truth]
    t_vals = [theirs[a] for a in with_truth]
    return {"naslib_name": key, "n_common": len(common),
            "spearman_vs_ours": spearman([values[a] for a in common], [theirs[a] for a in common]),
            "naslib_n": len(with_truth), "naslib_spearman": spearman(t_vals, [truth[a] for a in with_truth]),
            "naslib_kendall": kendall(t_vals, [truth[a] for a in with_truth])}


# --- the store side ----------------------------------------------------------------------------------------

def accuracy_space(store: Store, space: str, task: str, metric: str = "test_accuracy",
                   source: str | None = None) -> tuple[SearchSpace, dict[str, float]]:
    """The space built with the network config of the store's accuracy records (NB201 CIFAR-100: num_classes
    100) and {arch id: accuracy}; UserInputError naming what the store holds when it has none."""
    from profiler.accuracy import accuracy_summary
    from spaces import create_space

    truth = store.accuracies(space, task, metric, source)
    if not truth:
        held = [f"{r['space']}/{r['task']}/{r['metric']} ({r['n']})" for r in accuracy_summary(store)]
        raise UserInputError(f"{store.path}: no {metric} records of space {space!r} on task {task!r} (it holds "
                             f"{', '.join(held) or 'none'}); import them, e.g. `edgeprof dataset import "
                             f"nb201-accuracy ../shared/data/NB201-accuracy/{task}.csv --db {store.path}`")
    sql = "SELECT DISTINCT space_config FROM accuracies WHERE space=? AND task=? AND metric=?"
    configs = [json.loads(r[0]) for r in store.db.execute(sql, (space, task, metric))]
    if len(configs) > 1:
        raise UserInputError(f"{store.path}: {space} {task} records come from several network configs "
                             f"({configs}); the proxies need one")
    return create_space(space, **configs[0]), truth


def sample_cells(arch_ids: Sequence[str], n: int | None, seed: int = 0, prefer: Sequence[str] = ()) -> list[str]:
    """`n` of `arch_ids` drawn with `seed` (all for None), the ones in `prefer` first (NASLib's cells, so
    that the reference comparison has cells in common), in a stable order."""
    ids = sorted(arch_ids)
    if n is None or n >= len(ids):
        return ids
    if isinstance(n, bool) or not isinstance(n, int) or n < 3:
        raise UserInputError(f"--n must be an int >= 3 or 'all', got {n!r}")
    have = set(ids)
    first = sorted(a for a in dict.fromkeys(prefer) if a in have)
    rng = np.random.default_rng(seed)
    if len(first) >= n:
        return sorted(rng.choice(first, n, replace=False).tolist())
    rest = sorted(have - set(first))
    return sorted(first + rng.choice(rest, n - len(first), replace=False).tolist())


def parse_n(text: str) -> int | None:
    """--n: a count >= 3 or 'all' (None); UserInputError naming the value otherwise."""
    if str(text).strip().lower() == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise UserInputError(f"--n must be a number of cells (>= 3) or 'all', got {text!r}") from None
    if n < 3:
        raise UserInputError(f"--n must be at least 3 (a rank correlation needs 3 cells), got {n}")
    return n


def default_proxy_names() -> list[str]:
    """The registered proxies that score an untrained network (not the training ones, `Proxy.trains`)."""
    from hwsearch.proxies import list_proxies, proxy_class

    return [n for n in list_proxies() if not proxy_class(n).trains]


def create_proxies(names: Sequence[str] | None) -> list[Proxy]:
    """The named proxies (for None, every registered one that does not train: BTE and TSE train each network
    for seconds, so they are asked for by name); an unknown name is the registry's error (exit 2)."""
    from hwsearch.proxies import create_proxy

    names = default_proxy_names() if not names else list(dict.fromkeys(names))
    if not names:
        raise UserInputError("no proxy is registered")
    return [create_proxy(n) for n in names]


def evaluate(proxies: Sequence[Proxy], space: SearchSpace, truth: Mapping[str, float], arch_ids: Sequence[str],
             batch_kind: str = "digits", batch_size: int = 64, seed: int = 0, top: float = 0.05,
             cache: ScoreCache | None = None, naslib: Mapping[str, Mapping[str, float]] | None = None,
             progress: Progress = _no_progress) -> dict[str, Any]:
    """Score `arch_ids` with every proxy and correlate with `truth` (and NASLib's scores when given): the
    JSON-ready result, one entry per proxy (see `proxy_row`)."""
    from hwsearch.proxies import make_batch

    # made even for data-free proxies: SynFlow reads its shape (their cache key leaves the images out)
    batch = make_batch(batch_kind, space.input_shape(), batch_size, seed,
                       num_classes=int(space.config.get("num_classes", 10)))
    t0 = time.perf_counter()
    scored = score_cells(proxies, space, arch_ids, batch, seed, cache, progress)
    rows = [proxy_row(p, scored[p.name], truth, top, naslib) for p in proxies]
    return {"space": space.name, "space_config": dict(space.config), "n_cells": len(arch_ids),
            "batch": batch.describe(), "seed": seed, "top": top,
            "scores_file": None if cache is None or cache.path is None else str(cache.path),
            "computed": sum(r["computed"] for r in rows), "cached": sum(r["cached"] for r in rows),
            "wall_s": time.perf_counter() - t0, "proxies": rows}


def proxy_row(proxy: Proxy, scored: Mapping[str, Any], truth: Mapping[str, float], top: float,
              naslib: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Any]:
    """One proxy's figures: correlations all and top, time per cell, failures (count and the first few
    messages), and the NASLib comparison."""
    values = scored["values"]
    ids = [a for a in values if a in truth]
    corr = correlations([values[a] for a in ids], [truth[a] for a in ids], proxy.higher_is_better, top)
    times = list(scored["time_s"].values())
    errors = scored["errors"]
    return {"name": proxy.name, "data_free": proxy.data_free, "higher_is_better": proxy.higher_is_better,
            "params": proxy.describe()["params"], "fast": scored["fast"], **corr,
            "time_per_cell_s": float(np.mean(times)) if times else float("nan"),
            "n_failed": len(errors), "failures": [f"{a}: {m}" for a, m in list(errors.items())[:5]],
            "computed": scored["computed"], "cached": scored["cached"],
            "naslib": naslib_comparison(proxy.name, values, truth, naslib) if naslib else None}


def json_ready(x: Any) -> Any:
    """`x` with every NaN or infinity as None (JSON has no NaN)."""
    if isinstance(x, dict):
        return {k: json_ready(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_ready(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x
