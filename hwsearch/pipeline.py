"""Search → verify → close the loop: the one library path behind `edgeprof search NAME`, the demo and the
benchmarks.

Any registered search returns a `SearchResult` (an arch of a space, its target and prediction). `verify`
measures that network on the device through the agent in `rounds` separate jobs (one round on a shared
machine can move by 10% or more); `close_loop_on_device` keeps measuring the neighbours the measurements
point to while it misses the target (`hwsearch.close_loop`); `verify_result` does what a `VerifyPlan` asks
and returns the result's JSON with the verification (and the closed loop) in it; `search_and_verify` is the
whole path from parsed options, for the CLI. Measuring needs `profiler` (and the exporters: torch); they are
imported when something is measured.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwsearch.result import UNITS, SearchContractError, SearchResult
from spaces import SearchSpace, create_space
from spaces.errors import RuntimeFailure, UserInputError

if TYPE_CHECKING:
    import argparse

    from profiler.config import DeviceConfig
    from profiler.store import Store

Log = Callable[[str], None]
# A fresh progress context per agent job; it yields the profile session's callbacks (or None).
ProgressFactory = Callable[[], AbstractContextManager[Any]]


def _quiet(_: str) -> None:
    """The default log: say nothing."""


@contextmanager
def _no_progress() -> Iterator[None]:
    yield None


def check_predictor(card: dict[str, Any], path: str, device: str | None, metric: str) -> None:
    """A predictor serves the device(s) it was trained or adapted on, and the quantity it predicts."""
    devices = list(card.get("devices") or [])
    if device is not None and devices and device not in devices:
        raise UserInputError(f"{path} was trained for {', '.join(devices)}, not {device}: train or adapt a "
                             f"predictor on {device}'s measurements (edgeprof train ... --device {device})")
    quantity = card.get("quantity", "latency")
    if quantity == "accuracy":
        what = " on ".join(str(card[k]) for k in ("metric", "task") if card.get(k))
        raise UserInputError(f"{path} predicts accuracy ({what or 'of a task'}), not {metric}: a search takes "
                             f"a {metric} predictor of the device as --predictor (an accuracy predictor goes "
                             "where a search asks for one, e.g. `search random --accuracy-predictor`)")
    if quantity != metric:
        flag = "--target-ms" if quantity == "latency" else "--target-mj"
        raise UserInputError(f"{path} predicts {quantity}, not {metric}: use {flag}, or train a {metric} "
                             f"predictor (edgeprof train ... --quantity {metric})")


def load_checked_predictor(path: str | Path, device: str | None, metric: str) -> Any:
    """A saved predictor, refused when it is for another device or quantity (`check_predictor`)."""
    from predictors.evaluation import refusing_unadapted
    from predictors.io import load_predictor

    pred = load_predictor(path)
    check_predictor(getattr(pred, "card_", None) or {}, str(path), device, metric)
    adapted = getattr(pred, "check_is_adapted", None)  # a meta-trained predictor must be adapted first
    if adapted is not None:
        with refusing_unadapted(path):
            adapted()
    return pred


@dataclass(frozen=True)
class SearchSetup:
    """What every search gets besides its own options: the device's predictor (loaded), the target in the
    metric's unit, the device, and whether to show progress (off under --json). A search that can run without
    a target or a predictor (SurgeNAS at a fixed β) gets None there."""

    predictor: Any
    target: float | None
    metric: str = "latency"
    device: str | None = None
    predictor_path: str | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        if self.metric not in UNITS:
            raise UserInputError(f"metric must be one of {', '.join(UNITS)}, got {self.metric!r}")
        t = self.target
        positive = isinstance(t, numbers.Real) and not isinstance(t, bool) and math.isfinite(t) and t > 0
        if t is not None and not positive:
            raise UserInputError(f"the target must be a positive number of {self.unit}, got {t!r}")

    @property
    def unit(self) -> str:
        return UNITS[self.metric]

    @property
    def space(self) -> SearchSpace:
        """The predictor's space (with its config): the one the search explores."""
        if self.predictor is None:
            raise UserInputError("no predictor, so no space: the search must name its space")
        return create_space(self.predictor.space, **(self.predictor.space_config or {}))

    @classmethod
    def load(cls, predictor_path: str | Path | None, target: float | str | None, metric: str = "latency",
             device: str | None = None, progress: bool = False, db: str | Path | None = None) -> SearchSetup:
        """Load and check the predictor at `predictor_path` for `device` and `metric`. A target "pNN" is the
        NN-th percentile of what `db` measured of the predictor's space on `device` (`percentile_target`).
        Without a predictor path the setup has none (and then no target)."""
        if predictor_path is None:
            if target is not None:
                raise UserInputError("a target needs a predictor of the device (--predictor)")
            return cls(None, None, metric, device, None, progress)
        pred = load_checked_predictor(predictor_path, device, metric)
        if isinstance(target, str):
            if db is None or device is None:
                raise UserInputError(f"a percentile target ({target}) needs the device and the dataset (--db)")
            target = percentile_target(db, device, pred, metric, parse_percentile(target))
        return cls(pred, target, metric, device, str(predictor_path), progress)


def parse_percentile(spec: str) -> float:
    """'p50' -> 50.0; anything else, or a percentile outside (0, 100), is a UserInputError."""
    text = spec.strip().lower()
    try:
        q = float(text[1:]) if text.startswith("p") else math.nan
    except ValueError:
        q = math.nan
    if not 0 < q < 100:
        raise UserInputError(f"a target is a positive number or a percentile p1..p99 of the device's "
                             f"measurements, got {spec!r}")
    return q


def percentile_target(db: str | Path, device: str, predictor: Any, metric: str, q: float) -> float:
    """The q-th percentile of `device`'s measured medians (or energies) of the predictor's space in `db`:
    a target the device is known to reach, whatever its speed, so an example or a benchmark need not guess
    milliseconds for a machine it has not seen."""
    from predictors.data import load_xy
    from profiler.store import Store

    setting = measured_setting(device)
    with Store(db, readonly=True) as store:  # a target read from a read-only dataset works
        _, values = load_xy(store, device, predictor.space, space_config=predictor.space_config or None,
                            quantity=metric, **setting)
    return float(np.percentile(values, q))


def measured_setting(device: str) -> dict[str, Any]:
    """The setting `--verify` measures `device` with (its config's backend and precision, batch 1), so a
    percentile target and the verification read the same rows of a device measured under several; {} for a
    device with no config (an imported table), whose only setting is then taken."""
    from profiler.config import find_config, resolve_device

    if find_config(device) is None:
        return {}
    return resolve_device(device).setting()  # a broken config is an error here as everywhere


@dataclass(frozen=True)
class VerifyPlan:
    """How a found network is verified on `device` (a device config name or file): `rounds` agent jobs per
    network; with `correct` > 0 the closed loop may measure up to that many more networks, accepting a
    relative miss of `tolerance`. `loop_predictor` (default: the search's) judges the loop's candidates:
    the loop wants per-network accuracy (a GNN), the search smooth gradients (an MLP). Measurements are
    stored in `db`; `protocol` overrides the device's measurement protocol (a smoke run's short one)."""

    device: str
    db: str | Path
    rounds: int = 5
    correct: int = 0
    tolerance: float = 0.02
    loop_predictor: Any = None
    protocol: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise UserInputError(f"--rounds must be at least 1, got {self.rounds!r}")
        if isinstance(self.correct, bool) or not isinstance(self.correct, int) or self.correct < 0:
            raise UserInputError(f"--correct must be 0 or more, got {self.correct!r}")
        if not (isinstance(self.tolerance, numbers.Real) and 0 < self.tolerance < 1):
            raise UserInputError(f"--tolerance must be a fraction in (0, 1), got {self.tolerance!r}")

    def device_config(self) -> DeviceConfig:
        """The device's config (an unknown device is refused here, naming the known ones)."""
        from profiler.config import resolve_device

        return resolve_device(self.device)


def result_space(result: SearchResult) -> SearchSpace:
    return create_space(result.space, **(result.space_config or {}))


def measure_rounds(config: DeviceConfig, space: SearchSpace, arch: tuple[int, ...] | list[int], metric: str,
                   rounds: int, store: Store, log: Log = _quiet, progress: ProgressFactory = _no_progress,
                   protocol: dict[str, Any] | None = None) -> list[float]:
    """One network measured on the device in `rounds` separate agent jobs: each job's median latency (ms)
    or energy (mJ). Every round is a new measurement row in the store. `protocol`: overrides of the
    device's measurement protocol."""
    from profiler.session import profile  # the exporters (torch): only when something is measured

    arch = tuple(int(a) for a in arch)
    values: list[float] = []
    for i in range(rounds):
        log(f"measuring {space.arch_id(arch)}: round {i + 1}/{rounds} on {config.name}")
        with progress() as bars:
            rep = profile(config, space, n=1, seed=0, batch=1, store=store, progress=bars, archs=[arch],
                          remeasure=True, protocol_overrides=protocol)
        if rep.interrupted:
            raise KeyboardInterrupt
        if rep.errors:
            e = rep.errors[0]
            raise RuntimeFailure(f"verification on {config.name} failed: {e.get('type')}: {e.get('message')}")
        costs = store.job_costs(rep.job_id, metric)
        if not costs:
            raise RuntimeFailure(f"verification on {config.name}: job {rep.job_id} stored no ok measurement of "
                               f"{space.arch_id(arch)}")
        if costs[0] is None:
            why = "no power meter?" if metric == "energy" else "the backend records none"
            raise RuntimeFailure(f"{config.name} measured no {metric} for the network ({why})")
        values.append(costs[0])
    return values


def verification(device: str, values: list[float], target: float | None,
                 predicted: float | None) -> dict[str, Any]:
    """The median of the round medians, its error against the target and the predictor's against it (None
    where the search had no target or no predictor) (pure)."""
    median = float(np.median(values))
    return {"device": device, "rounds": len(values), "values": values, "median": median,
            "spread": float((max(values) - min(values)) / median),
            "error_vs_target": None if target is None else median / target - 1.0,
            "predictor_error": None if predicted is None else predicted / median - 1.0}


def known_measurements(store: Store, config: DeviceConfig, space: SearchSpace,
                       metric: str) -> list[tuple[tuple[int, ...], float]]:
    """(arch, cost) of every network of `space` the store measured on the device under the setting the
    verification measures with (the device config's backend and precision, batch 1): the loop's prior probes."""
    costs = store.arch_costs(config.name, space.name, space.config, quantity=metric, **config.setting())
    return [(space.parse(a), v) for a, v in costs.items()]


def verify(result: SearchResult, plan: VerifyPlan, log: Log = _quiet,
           progress: ProgressFactory = _no_progress) -> dict[str, Any]:
    """Measure the result's network on the device in `plan.rounds` jobs (see `verification`)."""
    from profiler.store import Store

    config = plan.device_config()
    with Store(plan.db) as store:
        values = measure_rounds(config, result_space(result), result.arch, result.metric, plan.rounds, store,
                                log, progress, plan.protocol)
    return verification(config.name, values, result.target, result.predicted)


def close_loop_on_device(result: SearchResult, plan: VerifyPlan, predictor: Any = None, log: Log = _quiet,
                         progress: ProgressFactory = _no_progress) -> tuple[dict[str, Any], dict[str, Any]]:
    """Measure the found network and, while it misses the target by more than `plan.tolerance`, up to
    `plan.correct` neighbours the measurements point to (`hwsearch.close_loop`), the store's earlier
    measurements of the space on the device counting as probes. Returns the loop's record (with the
    predictor that judged the candidates) and the verification of the network it settles on, always a
    measured one.

    `predictor`: the search's (any fitted predictor of the result's space); `plan.loop_predictor` replaces
    it as the judge of the candidates."""
    import torch

    from hwsearch.correct import close_loop
    from hwsearch.cost import as_predict_model, check_space
    from profiler.store import Store

    judge = plan.loop_predictor if plan.loop_predictor is not None else predictor
    if result.target is None:
        raise UserInputError("closing the loop (--correct) needs a target to close it on (--target-ms/--target-mj)")
    if judge is None:
        raise ValueError("close_loop_on_device needs the search's predictor (or plan.loop_predictor)")
    space = result_space(result)
    model = as_predict_model(judge, result.metric)
    check_space(model, space)
    alpha = None if result.alpha is None else torch.tensor(result.alpha, dtype=torch.float32)
    config = plan.device_config()
    measured: dict[tuple[int, ...], list[float]] = {}
    with Store(plan.db) as store:
        def measure(arch: tuple[int, ...]) -> float:
            measured[arch] = measure_rounds(config, space, arch, result.metric, plan.rounds, store, log, progress,
                                            plan.protocol)
            return float(np.median(measured[arch]))

        def report(p: Any) -> None:
            log(f"  {space.arch_id(p.arch)}: measured {p.measured:.4g}, predicted {p.predicted:.4g} "
                f"({100 * p.gap(result.target):+.2f}% from the target)")

        loop = close_loop(result.arch, model, space, result.target, measure, alpha=alpha,
                          tolerance=plan.tolerance, max_measurements=1 + plan.correct, on_probe=report,
                          known=known_measurements(store, config, space, result.metric))
    record = {**loop.to_dict(), "predictor": model.source}
    return record, verification(config.name, measured[loop.arch], result.target, loop.predicted)


def adopt_closed_loop(res: dict[str, Any], loop: dict[str, Any], space: SearchSpace) -> None:
    """The network to use is the one the closed loop settled on: it becomes the result's arch, and the
    searched one is kept as `searched_arch` (in place)."""
    res["closed_loop"] = loop
    if loop["arch"] != res["arch"]:
        res["searched_arch"], res["searched_arch_id"] = res["arch"], res["arch_id"]
        res["arch"], res["arch_id"] = loop["arch"], space.arch_id(loop["arch"])
        res["predicted"] = loop["predicted"]
        res["relative_error"] = res["predicted"] / res["target"] - 1.0


def verify_result(result: SearchResult, plan: VerifyPlan, predictor: Any = None, log: Log = _quiet,
                  progress: ProgressFactory = _no_progress) -> dict[str, Any]:
    """`result.to_dict()` with `verify` and, when `plan.correct` > 0, the `closed_loop` (whose network then
    becomes the result's arch; docs/contracts.md)."""
    res = result.to_dict()
    if plan.correct:
        res["closed_loop"], res["verify"] = close_loop_on_device(result, plan, predictor, log, progress)
        adopt_closed_loop(res, res["closed_loop"], result_space(result))
    else:
        res["verify"] = verify(result, plan, log, progress)
    return res


def check_result(name: str, result: Any) -> SearchResult:
    """The result of search `name` if it meets the contract (a SearchResult whose arch belongs to its
    space); a SearchContractError naming the search and the field otherwise: a search's bug, not the user's."""
    problem = None if isinstance(result, SearchResult) else \
        f"returned {type(result).__name__}, not a hwsearch.SearchResult"
    if problem is None:
        try:
            result.check()
        except (ValueError, KeyError) as e:
            problem = f"broke the result contract: {e}"
    if problem is not None:
        raise SearchContractError(f"search {name!r} {problem} (see docs/contracts.md)")
    return result


def search_and_verify(name: str, args: argparse.Namespace, setup: SearchSetup, plan: VerifyPlan | None = None,
                      log: Log = _quiet, progress: ProgressFactory = _no_progress
                      ) -> tuple[SearchResult, dict[str, Any]] | None:
    """Run search `name` from its parsed options (`run_from_args(args, setup)`), then verify its network
    when `plan` is given. Returns the result and its JSON (with `device`, `predictor_path`, `search_s` and
    the verification), or None on a torchrun rank other than 0 (rank 0 verifies and writes)."""
    from hwsearch.registry import search_class

    cls = search_class(name)
    run = getattr(cls, "run_from_args", None)
    if not callable(run):
        raise UserInputError(f"search {name!r} declares no run_from_args(args, setup), so it runs from Python "
                             "only (see docs/contracts.md)")
    if plan is not None:
        plan.device_config()  # an unknown device fails now, not after the search
    t0 = time.perf_counter()
    result = run(args, setup)
    search_s = round(time.perf_counter() - t0, 1)
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    result = check_result(name, result)
    res = result.to_dict() if plan is None else verify_result(result, plan, setup.predictor, log, progress)
    after = getattr(cls, "after_search", None)  # a search's own step on the found network (SurgeNAS --scale)
    if callable(after):
        res.update(after(result, args, log, progress) or {})
    res.update(device=setup.device, predictor_path=setup.predictor_path, search_s=search_s)
    return result, res


def write_result(result: SearchResult, res: dict[str, Any], out: str | Path) -> tuple[Path, Path | None]:
    """`res` as JSON at `out`, and the search's plot beside it (.png) when it has one."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return out, result.plot(out.with_suffix(".png"))
