"""The pure parts of the leave-one-out transfer benchmark (benchmarks/fewshot_transfer.py): HELP's device
families, which devices a meta-training may see when one device or family is held out, and the aggregation
that names the worst device and family.

Why a module: a user's board is rarely one of HELP's devices, so the benchmark holds devices out of
meta-training. Which devices leak into training decides what the figures mean: a GPU at batch 1 held out
while the same GPU at batch 32 trains is not a new board, so batch-size siblings go out together. These
rules are small and easy to get wrong, so they live here, tested, apart from the script, with the tables
and the samples-vs-accuracy figure the script prints and draws.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from predictors.metrics import acc_within, mape, spearman
from spaces.errors import UserInputError

# Families, in the order meta-valid devices are drawn from them. GPU devices are "<gpu>_<batch>" (batch 1, 32
# and 256 on NB201, 1, 32 and 64 on FBNet); the batch-size variants of one GPU are siblings.
GPUS = ("1080ti", "2080ti", "titan_rtx", "titanx", "titanxp")
FAMILY_DEVICES: dict[str, tuple[str, ...]] = {
    "desktop_gpu": tuple(f"{g}_{b}" for g in GPUS for b in (1, 32, 64, 256)),
    "desktop_cpu": ("gold_6226", "gold_6240", "silver_4114", "silver_4210r"),
    "phone": ("essential_ph_1", "pixel2", "pixel3", "samsung_a50", "samsung_s7"),
    "embedded_cpu": ("raspi4",),
    "asic_fpga": ("eyeriss", "fpga"),
}
FAMILIES: tuple[str, ...] = tuple(FAMILY_DEVICES)
FAMILY_OF: dict[str, str] = {d: f for f, ds in FAMILY_DEVICES.items() for d in ds}
METHODS = ("meta", "gnn", "gbdt")  # the benchmark's columns: meta-learned, then the supervised baselines
N_VALID = 4  # meta-valid devices per meta-training (HELP's protocol uses 4)


def family(device: str) -> str:
    """The family of a HELP device; UserInputError naming the known ones for anything else."""
    try:
        return FAMILY_OF[device]
    except KeyError:
        raise UserInputError(f"unknown HELP device {device!r}; known families: "
                             + "; ".join(f"{f}: {', '.join(ds)}" for f, ds in FAMILY_DEVICES.items())) from None


def report_group(device: str) -> str:
    """The row a device is summarised in: its family, with desktop GPUs split by batch (batch 1 behaves
    unlike batch 256: launch overheads against throughput)."""
    f = family(device)
    return f"{f}_b{device.rsplit('_', 1)[1]}" if f == "desktop_gpu" else f


def board(device: str) -> str:
    """The physical board: the GPU's name for its batch-size variants, else the device itself."""
    return device.rsplit("_", 1)[0] if family(device) == "desktop_gpu" else device


def siblings(device: str, devices: Iterable[str]) -> list[str]:
    """`device` and every other of `devices` on the same board (batch-size variants of one GPU)."""
    b = board(device)
    return [d for d in devices if board(d) == b]


def lodo_groups(devices: Sequence[str]) -> dict[str, list[str]]:
    """Leave-one-device-out: {board: its devices}, held out together (one meta-training serves them)."""
    groups: dict[str, list[str]] = {}
    for d in devices:
        groups.setdefault(board(d), []).append(d)
    return groups


def lofo_groups(devices: Sequence[str]) -> dict[str, list[str]]:
    """Leave-one-family-out: {"family-<name>": its devices} for each family present."""
    groups: dict[str, list[str]] = {}
    for d in devices:
        groups.setdefault(f"family-{family(d)}", []).append(d)
    return {k: groups[k] for k in (f"family-{f}" for f in FAMILIES) if k in groups}


def split(held_out: Sequence[str], devices: Sequence[str], n_valid: int = N_VALID) -> tuple[list[str], list[str]]:
    """(train, valid) source devices when `held_out` is the target: every device not held out and not a
    sibling of a held-out one. Meta-valid: round robin over the families in FAMILIES order, the first
    remaining device (sorted) of each, skipping a family whose last training device it would take, up to
    `n_valid`: deterministic, spread over families, and every family left keeps a training device."""
    out = {s for d in held_out for s in siblings(d, devices)}
    rest = [d for d in devices if d not in out]
    pools = {f: sorted(d for d in rest if family(d) == f) for f in FAMILIES}
    valid: list[str] = []
    while len(valid) < n_valid:
        picked = False
        for f in FAMILIES:
            if len(valid) < n_valid and len(pools[f]) >= 2:
                valid.append(pools[f].pop(0))
                picked = True
        if not picked:
            break
    train = [d for d in rest if d not in valid]
    return train, valid


def n_draws(k: int, pool_size: int, draws: int) -> int:
    """Sample draws at K: one where K takes the whole pool (every draw would be the same)."""
    return 1 if k >= pool_size else draws


def params_hash(params: Any) -> str:
    """A short stable hash of JSON-able parameters (a changed default gives another cache folder)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _mean(values: Iterable[float]) -> float:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def aggregate(per_device: Mapping[str, float], higher_is_better: bool = True) -> dict[str, Any]:
    """Mean, worst device, per-family means (families and report groups) and the worst family of
    {device: metric}. "Worst" is the lowest value when higher is better (rho, Acc@10), else the highest."""
    if not per_device:
        raise ValueError("aggregate: no devices")
    pick = min if higher_is_better else max
    worst = pick(per_device, key=lambda d: per_device[d])
    fams: dict[str, list[float]] = {}
    groups: dict[str, list[float]] = {}
    for d, v in per_device.items():
        fams.setdefault(family(d), []).append(v)
        groups.setdefault(report_group(d), []).append(v)
    fam_mean = {f: _mean(v) for f, v in fams.items()}
    group_mean = {g: _mean(v) for g, v in groups.items()}
    worst_family = pick(fam_mean, key=lambda f: fam_mean[f])
    worst_group = pick(group_mean, key=lambda g: group_mean[g])
    return {"mean": _mean(per_device.values()), "worst_device": worst, "worst": float(per_device[worst]),
            "family_mean": fam_mean, "worst_family": worst_family, "worst_family_value": fam_mean[worst_family],
            "group_mean": group_mean, "worst_group": worst_group, "worst_group_value": group_mean[worst_group]}


def stops_paying(ks: Sequence[int], meta: Sequence[float], baseline: Sequence[float], margin: float = 0.0
                 ) -> int | None:
    """The smallest K from which the baseline's mean rho is at least the meta predictor's minus `margin`
    at that K and every larger one (where meta-learning stops paying); None if it never catches up."""
    order = np.argsort(ks)
    hit = None
    for i in order[::-1]:
        if baseline[i] >= meta[i] - margin:
            hit = int(ks[i])
        else:
            break
    return hit


def target_met(worst: float, mean: float, worst_min: float = 0.90, mean_min: float = 0.95) -> bool:
    """The issue's target at K = 10: worst device rho >= 0.90 and mean >= 0.95."""
    return bool(worst >= worst_min and mean >= mean_min)


def scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Spearman rho, Acc@10 (share within 10%) and MAPE (%) of predictions on a query."""
    return {"spearman": spearman(pred, true), "acc10": acc_within(pred, true, 0.10), "mape": mape(pred, true)}


def mean_scores(runs: list[dict[str, float]], k_used: int) -> dict[str, Any]:
    """The draws' mean of each metric, rho's spread, the number of draws and the K actually used."""
    out: dict[str, Any] = {m: float(np.mean([r[m] for r in runs])) for m in ("spearman", "acc10", "mape")}
    out["spearman_std"] = float(np.std([r["spearman"] for r in runs]))
    return {**out, "draws": len(runs), "k_used": k_used}


def summarise(per_device: dict[str, dict[str, Any]], ks: Sequence[int], rules: Sequence[str],
              select_ks: Sequence[int]) -> dict[str, Any]:
    """Per method and K: mean, worst device and family for rho, Acc@10 and MAPE; the curve; the target."""
    summary: dict[str, Any] = {}
    cols = [(m, k) for m in METHODS for k in ks] + [(f"select:{r}", k) for r in rules for k in select_ks]
    for method, k in cols:
        def get(d: str, metric: str, method: str = method, k: int = k) -> float:
            res = per_device[d]
            cell = res["select"][method[7:]] if method.startswith("select:") else res[method]
            return cell[str(k)][metric]
        devs = [d for d in per_device if (method.split(":")[0] in ("meta", "select") or method in per_device[d])]
        if not devs:
            continue
        summary.setdefault(method, {})[str(k)] = {
            "spearman": aggregate({d: get(d, "spearman") for d in devs}),
            "acc10": aggregate({d: get(d, "acc10") for d in devs}),
            "mape": aggregate({d: get(d, "mape") for d in devs}, higher_is_better=False)}
    curve: dict[str, Any] = {"ks": list(ks)}
    for m in METHODS:
        if m in summary:
            curve[f"{m}_mean"] = [summary[m][str(k)]["spearman"]["mean"] for k in ks]
            curve[f"{m}_worst"] = [summary[m][str(k)]["spearman"]["worst"] for k in ks]
    for r in rules:
        curve[f"select:{r}_mean"] = [summary[f"select:{r}"][str(k)]["spearman"]["mean"] for k in select_ks]
    out: dict[str, Any] = {"summary": summary, "curve": curve}
    if "10" in summary.get("meta", {}):
        s = summary["meta"]["10"]["spearman"]
        out["target"] = {"k": 10, "worst": s["worst"], "worst_device": s["worst_device"], "mean": s["mean"],
                         "worst_family": s["worst_family"], "met": target_met(s["worst"], s["mean"])}
    out["stops_paying"] = {b: stops_paying(ks, curve["meta_mean"], curve[f"{b}_mean"])
                           for b in ("gnn", "gbdt") if f"{b}_mean" in curve}
    return out


def print_report(results: dict[str, Any], modes: Sequence[str], ks: Sequence[int], select_ks: Sequence[int],
                 file: Any) -> None:
    """Per-device table (rho / Acc@10 / MAPE per K per method), mean, worst device and family per K."""
    def p(*a: Any) -> None:
        print(*a, file=file)
    for space, res in results["spaces"].items():
        for mode in modes:
            if mode not in res:
                continue
            m = res[mode]
            title = "leave-one-device-out" if mode == "lodo" else "leave-one-family-out"
            p(f"\n== {space}, {title}: rho / Acc@10 % / MAPE % on the query, K target samples + 10 references ==")
            s = m["summary"]
            methods = [meth for meth in METHODS if meth in s]
            cols = [(meth, k) for k in ks for meth in methods]
            p(f"{'device':<15}" + "".join(f"{meth + '@' + str(k):>19}" for meth, k in cols))
            for d, r in sorted(m["per_device"].items(), key=lambda x: (FAMILY_OF[x[0]], x[0])):
                p(f"{d:<15}" + "".join(
                    "{:>19}".format(f"{c['spearman']:.3f}/{100 * c['acc10']:.0f}/{c['mape']:.1f}")
                    for c in (r[meth][str(k)] for meth, k in cols)))
            for meth in methods:
                for k in ks:
                    a = s[meth][str(k)]
                    p(f"  {meth:<5} K={k:<4} rho mean {a['spearman']['mean']:.3f}, worst {a['spearman']['worst']:.3f} "
                      f"({a['spearman']['worst_device']}), worst family {a['spearman']['worst_family']} "
                      f"{a['spearman']['worst_family_value']:.3f}; Acc@10 mean {100 * a['acc10']['mean']:.1f}% "
                      f"worst {100 * a['acc10']['worst']:.1f}% ({a['acc10']['worst_device']}); "
                      f"MAPE mean {a['mape']['mean']:.1f}% worst {a['mape']['worst']:.1f}% "
                      f"({a['mape']['worst_device']})")
            fam = s["meta"]["10"]["spearman"]["group_mean"] if "10" in s["meta"] else {}
            if fam:
                p("  meta K=10 rho by family: " + ", ".join(f"{g} {v:.3f}" for g, v in sorted(fam.items())))
            for rule in (r for r in results["select"] if f"select:{r}" in s):
                p(f"  select {rule:<12}: " + ", ".join(
                    f"K={k} rho mean {s['select:' + rule][str(k)]['spearman']['mean']:.3f} worst "
                    f"{s['select:' + rule][str(k)]['spearman']['worst']:.3f}" for k in select_ks))
            if "target" in m:
                t = m["target"]
                p(f"  target at K=10 (worst >= 0.90, mean >= 0.95): worst {t['worst']:.3f} ({t['worst_device']}), "
                  f"mean {t['mean']:.3f} -> {'met' if t['met'] else 'NOT met'}")
            if m["stops_paying"]:
                p("  meta-learning stops paying (baseline mean rho >= meta's from this K on): "
                  + ", ".join(f"{b} at K={v}" if v else f"{b} never (up to K={max(ks)})"
                              for b, v in m["stops_paying"].items()))
    p(f"\nwall {results['wall_s']:.0f} s")


def plot_curve(results: dict[str, Any], path: Path) -> None:
    """rho against K (log x) per space: meta mean and worst, GNN and GBDT means, each selection rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    spaces = [(s, r["lodo"]) for s, r in results["spaces"].items() if "lodo" in r]
    if not spaces:
        return
    fig, axes = plt.subplots(1, len(spaces), figsize=(6.5 * len(spaces), 4.6), squeeze=False)
    for ax, (space, m) in zip(axes[0], spaces, strict=True):
        c = m["curve"]
        ks = c["ks"]
        style = {"meta_mean": ("meta (HelpEnsemble) mean", "C0", "-", "o"),
                 "meta_worst": ("meta worst device", "C0", "--", "v"),
                 "gnn_mean": ("GNN mean", "C1", "-", "s"), "gbdt_mean": ("GBDT mean", "C2", "-", "^")}
        for key, (label, color, ls, mk) in style.items():
            if key in c:
                ax.plot(ks, c[key], ls, color=color, marker=mk, label=label)
        sel_ks = [int(k) for k in next(iter(m["summary"].get(f"select:{r}", {}) for r in results["select"]), {})]
        for i, r in enumerate(results["select"]):
            ax.plot(sel_ks, c[f"select:{r}_mean"], ":", color=f"C{3 + i}", marker="x", label=f"meta, {r} samples")
        ax.axhline(0.95, color="grey", lw=0.8, label="target: mean 0.95")
        ax.axhline(0.90, color="grey", lw=0.8, ls="--", label="target: worst 0.90 (at K = 10)")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(ks)
        ax.set_xticklabels([str(k) for k in ks])
        ax.set_xlabel("K measured networks on the held-out device (+10 references)")
        ax.set_ylabel("Spearman rho on the query")
        ax.set_title(f"{space}: leave-one-device-out, {len(m['per_device'])} devices")
        lo = min(min(v) for k, v in c.items() if k != "ks")
        ax.set_ylim(max(-1.0, lo - 0.05), 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
