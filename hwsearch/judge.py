"""A search judged on both axes: the found network's latency (or energy) against its target, and its accuracy
against the true accuracy/cost Pareto front of the whole space on one device.

`load_table` joins a device's per-arch medians from the store (`predictors.data`) with the store's accuracy
records of a task (`Store.accuracies`) into a `SpaceTable`; `judge` turns one saved search result (its JSON)
and a table into numbers (pure); `plot_search_report` draws the space as a cloud, the front as a step line,
the targets and the found networks. The CLI (`edgeprof report search`) and the benchmarks share these.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwsearch.pareto import best_under, hypervolume, pareto_front, regret
from hwsearch.result import UNITS, save_figure
from spaces.errors import UserInputError

if TYPE_CHECKING:  # the store pulls in sqlite and the profiler: only load_table needs it
    from profiler.store import Store



@dataclass
class SpaceTable:
    """The archs of `space` with both a measured cost on `device` (median latency in ms, or energy in mJ) and an
    accuracy record of `task`/`metric` (percent): `arch_ids`, `cost`, `accuracy` are aligned. `cost_of` and
    `accuracy_of` keep every arch of either side (a found arch may have one and not the other).
    `front`: indices of the non-dominated archs, by cost ascending."""

    device: str
    space: str
    task: str
    metric: str
    quantity: str
    arch_ids: list[str]
    cost: np.ndarray
    accuracy: np.ndarray
    cost_of: dict[str, float]
    accuracy_of: dict[str, float]
    setting: dict[str, Any] = field(default_factory=dict)
    front: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if self.quantity not in UNITS:
            raise ValueError(f"quantity must be one of {', '.join(UNITS)}, got {self.quantity!r}")
        self.cost = np.asarray(self.cost, dtype=float)
        self.accuracy = np.asarray(self.accuracy, dtype=float)
        if not (len(self.arch_ids) == self.cost.size == self.accuracy.size) or self.cost.ndim != 1:
            raise ValueError(f"arch_ids, cost and accuracy differ in length ({len(self.arch_ids)}, "
                             f"{self.cost.size}, {self.accuracy.size})")
        if not self.arch_ids:
            raise ValueError("a SpaceTable needs at least one arch with both a cost and an accuracy")
        self.front = pareto_front(self.cost, self.accuracy)

    @classmethod
    def from_maps(cls, device: str, space: str, task: str, metric: str, quantity: str,
                  cost_of: dict[str, float], accuracy_of: dict[str, float],
                  setting: dict[str, Any] | None = None) -> SpaceTable:
        """Join {arch: cost} and {arch: accuracy} on the arch id (in `cost_of`'s order); UserInputError naming
        both sides when no arch has both."""
        ids = [a for a in cost_of if a in accuracy_of]
        if not ids:
            raise UserInputError(
                f"no arch of space {space!r} has both a {quantity} on {device} ({len(cost_of)} archs, e.g. "
                f"{_example(cost_of)}) and a {task} {metric} record ({len(accuracy_of)} archs, e.g. "
                f"{_example(accuracy_of)}): the two sides name their archs differently?")
        return cls(device, space, task, metric, quantity, ids, np.array([cost_of[a] for a in ids]),
                   np.array([accuracy_of[a] for a in ids]), dict(cost_of), dict(accuracy_of), setting or {})

    @property
    def unit(self) -> str:
        return UNITS[self.quantity]

    @property
    def n(self) -> int:
        """How many archs have both a cost and an accuracy."""
        return len(self.arch_ids)

    def reference_point(self) -> tuple[float, float]:
        """(cost, accuracy) the hypervolume is measured from: the slowest and the least accurate arch of the
        table, so every arch counts and the figure compares across searches on the same table."""
        return float(self.cost.max()), float(self.accuracy.min())

    def summary(self) -> dict[str, Any]:
        """The table in a few numbers (JSON): sizes, cost range, the front and its hypervolume."""
        ref_cost, ref_acc = self.reference_point()
        f = self.front
        return {"device": self.device, "space": self.space, "task": self.task, "metric": self.metric,
                "quantity": self.quantity, "unit": self.unit, "setting": self.setting,
                "n": self.n, "n_cost": len(self.cost_of), "n_accuracy": len(self.accuracy_of),
                "cost_min": float(self.cost.min()), "cost_max": float(self.cost.max()),
                "best_accuracy": float(self.accuracy.max()),
                "front": {"n": int(f.size),
                          "hypervolume": float(hypervolume(self.cost[f], self.accuracy[f], ref_cost, ref_acc)),
                          "reference": {"cost": ref_cost, "accuracy": ref_acc},
                          "hypervolume_unit": f"{self.unit} x accuracy points"}}


def _example(d: dict[str, Any]) -> str:
    return repr(next(iter(d))) if d else "none"


def load_table(store: Store, device: str, space: str, task: str, metric: str = "test_accuracy",
               quantity: str = "latency", backend: str | None = None, precision: str | None = None,
               batch: int | None = None, space_config: dict[str, Any] | None = None,
               source: str | None = None) -> SpaceTable:
    """The SpaceTable of `device`'s measurements of `space` (per-arch medians, one setting: see
    `predictors.data.load_with_settings`, whose errors name the devices and settings the store has) and the
    store's accuracy records of `task`/`metric`. UserInputError listing what the store holds when it has no
    accuracy of that space, task and metric."""
    from predictors.data import load_accuracy, load_with_settings, setting_config

    ids, y, setting = load_with_settings(store, [device], space, backend, precision, batch, space_config,
                                         quantity)[device]
    acc_ids, acc = load_accuracy(store, space, task, metric, source)  # its error lists what the store holds
    described = {"space_config": setting_config(setting), "backend": setting[1], "precision": setting[2],
                 "batch": setting[3]}
    return SpaceTable.from_maps(device, space, task, metric, quantity,
                                dict(zip(ids, (float(v) for v in y), strict=True)),
                                dict(zip(acc_ids, (float(v) for v in acc), strict=True)), described)


def arch_short(space: str, arch_id: str, width: int = 22) -> str:
    """A short name for a legend: NB201's benchmark index ('#9930') where the space has one, else the id,
    cut to `width` characters."""
    from spaces import create_space

    try:
        s = create_space(space)
        if hasattr(s, "index"):
            return f"#{s.index(s.parse(arch_id))}"
    except (ValueError, KeyError):  # a label only: an unknown space (UnknownNameError) or id keeps the id
        pass
    return arch_id if len(arch_id) <= width else arch_id[: width - 1] + "…"


def _num(x: Any) -> float | None:
    """A finite float, or None (JSON null) for NaN, None or anything not a number (a hand-edited JSON)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _measured(result: dict[str, Any], device: str) -> tuple[float | None, str | None]:
    """The result's own measurement on `device` (verify.median), or (None, why not) when it has none there."""
    v = result.get("verify")
    if not isinstance(v, dict) or _num(v.get("median")) is None:
        return None, None
    if v.get("device") != device:
        return None, f"the result was measured on {v.get('device')!r}, not {device!r}: the table's value is used"
    return float(v["median"]), None


def judge(result: dict[str, Any], table: SpaceTable) -> dict[str, Any]:
    """One search result (its saved JSON) against the table: the found network's cost (measured on the
    table's device when the result was verified there, else the table's median) against the target, its
    accuracy, its regret (best accuracy at <= its cost - its accuracy) and what the space offers at the
    target (best accuracy at <= target, the front's arch there, the network's rank among the archs under it).
    Accuracy figures are in the table's unit (percent): regrets are accuracy points. Keys are named after the
    quantity: `latency` and `latency_source` ('measured' | 'table') for a latency result.
    `percentile_under_target`: the share (%) of the archs under the target no more accurate than it (100: none
    better). Figures that cannot be had are None, and `notes` says why. Pure."""
    q, unit = table.quantity, table.unit
    if result.get("space") != table.space:
        raise UserInputError(f"the result is of space {result.get('space')!r}, the table of {table.space!r}")
    if result.get("metric", "latency") != q:
        raise UserInputError(f"the result's target is on {result.get('metric')!r}, the table holds {q}")
    arch_id = str(result["arch_id"])
    target = None if result.get("target") is None else float(result["target"])
    notes: list[str] = []
    measured, why = _measured(result, table.device)
    if why:
        notes.append(why)
    in_table = table.cost_of.get(arch_id)
    cost = measured if measured is not None else in_table
    source = "measured" if measured is not None else ("table" if in_table is not None else None)
    if cost is None:
        notes.append(f"{arch_id} has no {q} on {table.device} in the table and the result has no measurement "
                     "there")
    elif measured is not None and in_table is not None and abs(measured / in_table - 1) > 0.1:
        notes.append(f"measured {measured:.4g} {unit} vs the table's {in_table:.4g} {unit} "
                     f"({100 * (measured / in_table - 1):+.0f}%): the regret mixes the two sources")
    config = result.get("space_config") or {}
    built = table.setting.get("space_config") or {}
    differ = sorted(k for k in config if k in built and config[k] != built[k])
    if differ and source == "table":
        notes.append("the table's networks are built with " + ", ".join(f"{k}={built[k]!r}" for k in differ)
                     + ", the result's with " + ", ".join(f"{k}={config[k]!r}" for k in differ)
                     + f": its {q} is the table's network's")
    acc = table.accuracy_of.get(arch_id)
    if acc is None:
        notes.append(f"no {table.task} {table.metric} record for {arch_id}: accuracy and regret unknown")

    best_t = None if target is None else _num(best_under(table.cost, table.accuracy, target))
    at_target = None
    if target is None:
        notes.append("the search had no target: nothing to judge at a target")
    elif best_t is None:
        notes.append(f"no arch of the table is under the target {target:g} {unit} (the cheapest: "
                     f"{table.cost.min():.4g} {unit})")
    else:
        f = table.front
        i = int(f[np.searchsorted(table.cost[f], target, side="right") - 1])
        at_target = {"arch_id": table.arch_ids[i], "short": arch_short(table.space, table.arch_ids[i]),
                     q: float(table.cost[i]), "accuracy": float(table.accuracy[i])}
    reg = None
    best_here = None
    if cost is not None:
        best_here = _num(best_under(table.cost, table.accuracy, cost))
        if acc is not None:
            reg = _num(regret(cost, acc, table.cost, table.accuracy))
        if best_here is None:
            notes.append(f"its {q} {cost:.4g} {unit} is below every arch of the table: no regret to compare")
    under = table.accuracy[table.cost <= target] if target is not None else np.empty(0)
    pct = None if acc is None or under.size == 0 else float(100 * np.mean(under <= acc))
    return {"search": result.get("search"), "arch_id": arch_id, "short": arch_short(table.space, arch_id),
            "space": table.space, "device": table.device, "quantity": q, "unit": unit,
            q: _num(cost), f"{q}_source": source, f"{q}_table": _num(in_table), f"{q}_measured": measured,
            "predicted": _num(result.get("predicted")), "target": target,
            "error_vs_target": None if cost is None or target is None else cost / target - 1.0,
            "within_target": None if cost is None or target is None else bool(cost <= target),
            "task": table.task, "metric": table.metric, "accuracy": _num(acc),
            "best_at_its_cost": best_here, "regret": reg,
            "best_at_target": best_t,
            "regret_at_target": None if acc is None or best_t is None else best_t - acc,
            "front_at_target": at_target,
            "n_under_target": None if target is None else int(under.size), "percentile_under_target": pct,
            "notes": notes}


MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")


def view_limits(table: SpaceTable, judged: Sequence[dict[str, Any]]) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) of the plot: the accuracy axis starts a little below the 5th percentile, so a few
    broken archs (NB201's cells without a path to the output sit at chance, 1%) do not squash the rest; the
    cost axis spans the archs shown. The targets and found networks always stay in view. Pure."""
    acc, cost = table.accuracy, table.cost
    top = float(acc.max())
    lo = float(np.percentile(acc, 5))
    y0 = lo - 0.05 * max(top - lo, 1e-9)
    ys = [a for j in judged if (a := j.get("accuracy")) is not None and j.get(table.quantity) is not None]
    y0 = min([y0, *ys])
    shown = cost[acc >= y0]
    xs = [float(j["target"]) for j in judged if j["target"] is not None]
    xs += [c for j in judged if (c := j.get(table.quantity)) is not None]
    x0, x1 = min([float(shown.min()), *xs]), max([float(shown.max()), *xs])
    pad_y = 0.04 * (top - y0)
    return x0, x1, y0 - pad_y, top + pad_y


def plot_search_report(table: SpaceTable, judged: Sequence[dict[str, Any]], path: str | Path,
                       title: str | None = None) -> Path:
    """A PNG at `path`: every arch of the table as a grey cloud, the true front as a step line, each target as
    a dashed vertical line with the front's best arch under it (a hollow star), each judged network as a big
    marker whose legend says its accuracy and regret. Archs far below the rest in accuracy are left out of the
    view and counted in the legend (`view_limits`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q, unit = table.quantity, table.unit
    x0, x1, y0, y1 = view_limits(table, judged)
    log = x1 / x0 > 10
    hidden = int((table.accuracy < y0).sum())
    fig, ax = plt.subplots(figsize=(8, 5.5))
    try:
        ax.scatter(table.cost, table.accuracy, s=3, c="0.55", alpha=0.3, lw=0, rasterized=True,
                   label=f"all {table.n:,} archs" + (f" ({hidden} below {y0:.0f}% not shown)" if hidden else ""))
        f = table.front
        fx = np.append(table.cost[f], max(x1, float(table.cost.max())))
        fy = np.append(table.accuracy[f], table.accuracy[f][-1])
        ax.step(fx, fy, where="post", color="black", lw=1.3, label=f"true Pareto front ({f.size} archs)")
        # red is the targets' colour; the found networks get the other tab10 colours
        colours = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 3]
        targets: dict[float, int] = {}
        for k, j in enumerate(judged):
            if j["target"] is not None:
                targets.setdefault(float(j["target"]), k)
        for n, (t, k) in enumerate(sorted(targets.items())):
            ax.axvline(t, ls="--", lw=1.2, color="tab:red", label="target" if n == 0 else None)
            ax.text(t, 0.02, f" target {t:g} {unit} ", transform=ax.get_xaxis_transform(), rotation=90,
                    ha="right", va="bottom", fontsize="small", color="tab:red",
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
            best = judged[k].get("front_at_target")
            if best:
                ax.scatter([best[q]], [best["accuracy"]], s=220, marker="*", facecolors="white",
                           edgecolors="tab:red", linewidths=1.5, zorder=4,
                           label=f"best at <= {t:g} {unit}: {best['short']}, {best[q]:.3g} {unit}, "
                                 f"acc {best['accuracy']:.2f}%")
        for k, j in enumerate(judged):
            c, a = j.get(q), j.get("accuracy")
            acc = "n/a" if a is None else f"{a:.2f}%"
            reg = "n/a" if j.get("regret") is None else f"{j['regret']:.2f} pp"
            where = "" if c is None else f"{c:.3g} {unit}, "
            label = f"{j.get('label') or j.get('search')} ({j['short']}): {where}acc {acc}, regret {reg}"
            style = {"marker": MARKERS[k % len(MARKERS)], "color": colours[k % len(colours)]}
            if c is None or a is None:
                ax.plot([], [], ls="", **style, label=label + " (not drawn)")
                continue
            ax.scatter([c], [a], s=150, edgecolors="black", linewidths=1.0, zorder=5, label=label, **style)
        if log:
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            ax.set_xscale("log")
            ax.set_xlim(x0 / 1.15, x1 * 1.15)
            # plain numbers at 1, 2, 3, 5 x 10^k: a reader wants "3 ms", not 10^0.5
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            pad = 0.03 * (x1 - x0)
            ax.set_xlim(x0 - pad, x1 + pad)
        ax.set_ylim(y0, y1)
        ax.set_xlabel(f"{q} on {table.device} ({unit}){', log scale' if log else ''}")
        ax.set_ylabel(f"{table.task} {table.metric.replace('_', ' ')} (%)")
        ax.set_title(title or f"{table.space} on {table.device}: {table.task} accuracy vs {q}")
        ax.grid(True, which="major", alpha=0.3)
        # under the axes, not on them: no corner of the space is sure to be empty at every zoom
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize="small", frameon=False)
        path = save_figure(fig, path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path
