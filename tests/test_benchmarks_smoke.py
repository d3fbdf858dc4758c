"""Every benchmark in benchmarks/ runs at its smoke size, so a benchmark that stops working fails CI.

Each script is found by listing the folder (a helper module meant for import only starts with `_`), run
as `python <script> --quick --json` in a temporary folder with its own cache, and its JSON must hold the
figures listed in EXPECTED as finite numbers. A new benchmark therefore needs a `--quick` option and an
entry here. Smoke figures say nothing about the targets; they show that the whole path still runs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
HELP_DIR = REPO.parent / "shared" / "data" / "HELP" / "data"
BENCH = REPO / "benchmarks"
BENCHMARKS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))
NEEDS_HELP = {"help_nb201", "help_fbnet", "supervised_nb201", "lightnas_nb201_tables", "surgenas_nb201",
              "zeroshot_search", "fewshot_transfer"}
NEEDS_SSHD = {"transport_overhead", "fault_drills"}
# Run at smoke size by a test of their own, which checks more than the figures (each drill's target): not twice.
RUN_BY = {"fault_drills": "tests/ssh/test_fault_drills.py"}
# Dotted paths into the JSON; `*` stands for every element of a list or value of a dict (at least one).
EXPECTED: dict[str, tuple[str, ...]] = {
    "agent_fidelity": ("ratio.median", "ratio.share_within_15pct", "rho_between_passes.min",
                       "rho_agent_vs_reference", "latency_ms.agent_min", "per_model.*.agent_ms",
                       "per_model.*.reference_ms", "wall_s"),
    "transport_overhead": ("local_median_s", "ssh_median_s", "ratio_ssh_over_local", "per_model_overhead_ms",
                           "models_per_hour.ssh"),
    "help_nb201": ("per_device.*", "mean", "help_mean", "wall_s"),
    "fewshot_transfer": ("spaces.*.lodo.per_device.*.meta.*.spearman", "spaces.*.lodo.per_device.*.gnn.*.spearman",
                         "spaces.*.lodo.per_device.*.gbdt.*.spearman",
                         "spaces.*.lodo.per_device.*.select.*.*.spearman",
                         "spaces.*.lodo.summary.meta.*.spearman.worst", "spaces.*.lodo.curve.meta_mean.*",
                         "spaces.*.lodo.target.worst", "wall_s"),
    "help_fbnet": ("per_device.*", "mean", "help_mean", "wall_s"),
    "supervised_nb201": ("results.*.*.spearman", "results.*.*.acc10", "results.*.*.mape",
                         "summary.gnn.mean_spearman", "wall_s"),
    "local_cpu": ("results.*.spearman", "results.*.acc10", "results.*.mape", "latency_ms.median", "measure_s"),
    "throughput": ("rows.*.archs_per_s", "rows.*.forward_ms", "rows.*.encode_ids_archs_per_s"),
    "lightnas_targets": ("runs.*.target_ms", "runs.*.measured_ms", "runs.*.predicted_ms",
                         "runs.*.trust.measured_ms", "runs.*.ensemble.measured_ms", "runs.*.remedy.measured_ms",
                         "runs.*.remedy_trust.measured_ms", "summary.remedy_trust.mean_abs_error", "wall_s"),
    "surgenas_targets": ("runs.*.target_ms", "runs.*.surgenas.measured_ms", "runs.*.surgenas.trials",
                         "summary.surgenas.max_abs_error", "wall_s"),
    "lightnas_nb201_tables": ("runs.*.target_ms", "runs.*.measured_ms", "runs.*.predicted_ms",
                              "runs.*.judged.radius2_open.error_vs_target", "runs.*.judged.trust_open.error_vs_target",
                              "runs.*.judged.remedy_open.accuracy", "runs.*.judged.remedy_trust_open.error_vs_target",
                              "runs.*.remedy.disagreement", "summary.remedy_trust_open.mean_abs_error",
                              "summary.remedy_trust_open.regret_mean", "wall_s"),
    "surgenas_fairness": ("sampling.*.count_min", "sampling.*.count_max", "sampling.*.grad_nonzero_share",
                          "summary.count_min", "summary.real_grad_nonzero_share_min",
                          "real_iterations.*.iterations.*.alpha_grad_norm", "search.alpha_grad_norm_max", "wall_s"),
    "surgenas_nb201": ("space.best_accuracy", "space.mean_accuracy", "beta0.runs.*.accuracy", "beta0.runs.*.skip",
                       "ablation_no_identity.runs.*.skip", "targets.*.target_ms", "targets.*.judged.surgenas.latency",
                       "targets.*.judged.lightnas.latency", "targets.*.surgenas.evaluations.evaluations", "wall_s"),
    "comfort_zone_local": ("conv.latency_range_ms.*", "conv.zone.cells", "conv.zone.channel_gain",
                           "conv.roofline.peak_mac_s", "width.steps.*.latency_ms", "width.phi",
                           "width.scaled_measured_ms", "width.scaled_vs_base", "wall_s"),
    # rho is left out: at smoke size the B accuracies may tie (all at chance), where rho is undefined (NaN)
    "domino_accuracy": ("summary.*.rmse_mean", "runs.*.*.rmse", "task_a.accuracy_mean", "task_b.accuracy_mean",
                        "task_a.n", "task_b.n", "fit_s", "wall_s"),
    "domino_speedup": ("networks.*.convs", "networks.*.mflops", "networks.*.latency_ms.*", "networks.*.speedup.*",
                       "wall_s"),
    "tpc_table8": ("networks.*.algorithm1", "networks.*.table8", "networks.*.paper", "networks.*.gap_table8",
                   "kendall_tau.*", "fast_path.*.archs_per_ms", "wall_s"),
    "proxy_correlation": ("proxies.params.spearman", "proxies.params.kendall", "proxies.params.top_spearman",
                          "proxies.params.top_kendall", "proxies.params.naslib.spearman_vs_ours",
                          "proxies.params.naslib.naslib_spearman", "proxies.params.best_by_proxy.accuracy",
                          "proxies.params.best_by_proxy.gt_best", "proxies.tpc.spearman", "proxies.flops.spearman",
                          "proxies.*.time_per_cell_s", "n_cells_fast", "n_sampled", "wall_s"),
    "zeroshot_search": ("boards.*.predictor.heldout_spearman", "boards.*.budgets.*.target_ms",
                        "boards.*.budgets.*.runs.*.latency", "boards.*.budgets.*.runs.*.accuracy",
                        "boards.*.budgets.*.runs.*.regret_at_target", "boards.*.budgets.*.runs.*.evaluations",
                        "boards.*.budgets.*.runs.zeroshot_tpc.predicted",
                        "boards.*.budgets.*.runs.ftso_budget.latency", "boards.*.budgets.*.runs.lightnas.latency",
                        "boards.*.budgets.*.runs.surgenas.latency", "summary.*.accuracy_mean",
                        "best_by_proxy.tpc.accuracy", "best_by_proxy.params.accuracy",
                        "best_by_proxy.ground_truth.accuracy", "local_cpu.target_ms",
                        "local_cpu.searched.predicted_ms", "local_cpu.searched.measured_ms",
                        "local_cpu.candidates.*.measured", "wall_s"),
    "domino_search": ("latency_predictor.rows.*.mlp.rmse_ms", "latency_predictor.rows.*.flops_linear.rmse_ms",
                      "latency_predictor.latency_ms.max", "search.evaluations", "search.hypervolume",
                      "search.random_hypervolume",
                      "verify.mean_abs_predictor_error", "verify.rmse_ms", "budgets.*.domino.measured_ms",
                      "budgets.*.domino.accuracy", "accuracy_gain_mean", "wall_s"),
    "reparam_exactness": ("blocks.*.fixed.max_abs", "blocks.*.fixed.rel", "blocks.*.fixed.rel_fp64",
                          "blocks.*.plain.rel", "blocks.*.plain.rel_interior", "blocks.*.pro.rel",
                          "networks.*.fixed_rel", "networks.*.fixed_rel_fp64", "networks.*.plain_rel",
                          "networks.*.fp32_rounding_rel", "max_rel_fixed", "max_rel_plain", "wall_s"),
    "bte_correlation": ("rows.bte_signed@2.spearman", "rows.tse@2.spearman", "rows.params.spearman",
                        "rows.*.time_per_cell_s", "summary.2.tse_spearman", "n_cells", "wall_s"),
    "lightnas_channels": ("target_ms", "runs.*.measured_ms", "runs.*.error", "runs.*.predicted_ms",
                          "runs.*.accuracy.mean", "runs.*.bte", "runs.*.wall_s",
                          "channel_predictor.held_out.mape", "wall_s"),
    "fault_drills": ("kinds.*.runs", "kinds.*.completed_one_run", "kinds.*.lost", "kinds.*.duplicated",
                     "kinds.*.remeasured", "kinds.*.faults", "kinds.*.wall_ratio", "baseline_wall_s", "wall_s"),
}


def values_at(data: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(concrete path, value) of every match of a dotted path; KeyError naming the first missing part."""
    head, _, rest = path.partition(".")

    def children() -> Iterator[tuple[str, Any]]:
        if head != "*":
            if not isinstance(data, dict) or head not in data:
                raise KeyError(f"no {head!r} (keys: {sorted(data) if isinstance(data, dict) else type(data).__name__})")
            yield head, data[head]
        elif isinstance(data, dict):
            yield from ((str(k), v) for k, v in data.items())
        elif isinstance(data, list):
            yield from ((str(i), v) for i, v in enumerate(data))
        else:
            raise KeyError(f"'*' over a {type(data).__name__}")

    found = False
    for key, child in children():
        found = True
        if rest:
            yield from ((f"{key}.{p}", v) for p, v in values_at(child, rest))
        else:
            yield key, child
    if not found:
        raise KeyError(f"{head!r} matched nothing (empty)")


def non_finite(data: Any, where: str = "") -> list[str]:
    """Paths of every NaN or infinite number anywhere in the JSON."""
    if isinstance(data, float):
        return [] if math.isfinite(data) else [where]
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in non_finite(v, f"{where}.{k}".lstrip("."))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in non_finite(v, f"{where}.{i}".lstrip("."))]
    return []


def test_values_at_and_non_finite_report_what_is_wrong() -> None:
    data = {"a": [{"x": 1.0}, {"x": 2}], "b": {"d1": 0.5, "d2": float("nan")}, "e": []}
    assert [v for _, v in values_at(data, "a.*.x")] == [1.0, 2]
    assert non_finite(data) == ["b.d2"]
    with pytest.raises(KeyError, match="'y'"):
        list(values_at(data, "a.*.y"))
    with pytest.raises(KeyError, match="matched nothing"):
        list(values_at(data, "e.*"))


def test_every_benchmark_has_expected_figures() -> None:
    """Fast check (no run): each script is listed in EXPECTED, and EXPECTED names no benchmark that is gone.
    (A script without --quick fails the slow test: argparse refuses the option.)"""
    names = {p.stem for p in BENCHMARKS}
    assert names, f"no benchmarks found in {BENCH}"
    assert sorted(names - set(EXPECTED)) == [], "add the benchmark's expected figures to EXPECTED"
    assert sorted(set(EXPECTED) - names) == [], "EXPECTED lists benchmarks that no longer exist"


def _snapshot(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


def _sshd_available() -> bool:
    return any(os.access(p, os.X_OK) for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd")) or bool(
        shutil.which("sshd"))


@pytest.mark.slow
@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_runs_at_smoke_size(script: Path, tmp_path: Path) -> None:
    name = script.stem
    if name in RUN_BY:
        assert (REPO / RUN_BY[name]).is_file()
        pytest.skip(f"{RUN_BY[name]} runs it with --quick --json and checks its figures")
    if name in NEEDS_HELP and not HELP_DIR.is_dir():
        pytest.skip(f"HELP data not found at {HELP_DIR}")
    if name in NEEDS_SSHD and not _sshd_available():
        pytest.skip("sshd is not installed (Debian package openssh-server)")
    out_before = _snapshot(BENCH / "out")
    # the autouse fixture points XDG_CACHE_HOME/XDG_CONFIG_HOME at a temporary folder; the child inherits it
    proc = subprocess.run([sys.executable, str(script), "--quick", "--json"], cwd=tmp_path, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"{name} --quick --json exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        pytest.fail(f"{name}: stdout is not one JSON document ({e}):\n{proc.stdout[-2000:]}")
    assert non_finite(data) == [], f"{name}: NaN or infinite figures"
    for path in EXPECTED.get(name, ()):
        try:
            found = list(values_at(data, path))
        except KeyError as e:
            pytest.fail(f"{name}: {path}: {e}")
        bad = [(p, v) for p, v in found
               if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)]
        assert bad == [], f"{name}: {path}: not finite numbers: {bad[:5]}"
    assert _snapshot(BENCH / "out") == out_before, f"{name} --quick wrote into benchmarks/out"
