"""`predict --interval` and `evaluate` on an adapted few-shot predictor whose card holds its expected error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli

from predictors.hardware_adaptive import HELP_NB201_REFERENCE
from spaces import create_space

SP = create_space("nb201")
OTHERS = [i for i in range(0, 15625, 53) if i not in HELP_NB201_REFERENCE][:150]


def _latency(seed: int, arch: tuple[int, ...]) -> float:
    """A synthetic device: a cost per op summed over the cell's 6 edges, with an interaction term."""
    cost = np.random.default_rng(seed).uniform(0.1, 2.0, 5)
    return 1.0 + float(cost[list(arch)].sum()) + 0.3 * arch.count(3) * arch.count(1)


@pytest.fixture(scope="module")
def adapted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, dict]:
    """(db with 'board' measured on 150 archs + the references, an adapted HELP predictor with an expected error
    on its card, the same without one, the expected error)."""
    from predictors.help import HelpPredictor
    from predictors.io import save_predictor
    from predictors.uncertainty import expected_error
    from profiler.importing import imported_model, imported_result
    from profiler.store import Store

    root = tmp_path_factory.mktemp("interval")
    archs = {SP.arch_id(SP.from_index(i)): SP.from_index(i) for i in [*OTHERS, *HELP_NB201_REFERENCE]}
    db = root / "b.db"
    with Store(db) as store:
        models = [imported_model(SP, a) for a in archs.values()]
        store.add_device("board", "cpu", {})
        store.add_models(models)
        store.add_results([imported_result(job_id="board", task_id=str(k), model_sha256=m.sha256, device="board",
                                           median_ms=_latency(3, tuple(a)), environment={}, backend="onnxruntime",
                                           precision="fp32")
                           for k, (m, a) in enumerate(zip(models, archs.values(), strict=True))])
    ids = list(archs)
    tasks = {f"s{s}": (ids, np.array([_latency(s, tuple(archs[a])) for a in ids])) for s in (1, 2)}
    pred = HelpPredictor(hidden=[16], meta_iters=5, n_query=20, inner_steps=1).meta_fit(tasks)
    refs = pred.reference_ids()
    support = ids[:12]
    y = np.array([_latency(3, tuple(archs[a])) for a in support])
    reference = {r: _latency(3, tuple(archs[r])) for r in refs}
    e = expected_error(pred, support, y, reference)
    pred.adapt(support, y, reference)
    save_predictor(pred, root / "with", devices="board", train_archs=[*support, *refs], expected_error=e)
    save_predictor(pred, root / "without", devices="board", train_archs=[*support, *refs])
    return db, root / "with", root / "without", e


def test_predict_interval_json_and_text(adapted: tuple[Path, Path, Path, dict],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    _, with_e, _, e = adapted
    a1, a2 = SP.arch_id(SP.from_index(7)), SP.arch_id(SP.from_index(9000))
    code, out, err = cli(capsys, "predict", with_e, "--arch", a1, "--arch", a2, "--interval", "0.9", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["interval"]["level"] == 0.9 and res["interval"]["k"] == 12
    q = sorted(abs(r) for r in e["log_residuals"])[math.ceil(13 * 0.9) - 1]  # 12 residuals: the 12th smallest
    for row in res["predictions"]:
        p = row["predicted_ms"]
        assert row["lo_ms"] == pytest.approx(p * math.exp(-q)) and row["hi_ms"] == pytest.approx(p * math.exp(q))
        assert row["lo_ms"] < p < row["hi_ms"]
    code, out, err = cli(capsys, "predict", with_e, "--arch", a1, "--interval", "0.8")
    assert code == 0, err
    row = json.loads(cli(capsys, "predict", with_e, "--arch", a1, "--interval", "0.8", "--json")[1])["predictions"][0]
    assert f"{row['predicted_ms']:.4f} ms  (80% interval {row['lo_ms']:.4f} to {row['hi_ms']:.4f} ms)  {a1}" in out
    # without --interval the output is as before: no bounds
    row = json.loads(cli(capsys, "predict", with_e, "--arch", a1, "--json")[1])
    assert "interval" not in row and set(row["predictions"][0]) == {"arch_id", "predicted_ms"}


def test_predict_interval_refusals(adapted: tuple[Path, Path, Path, dict],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    _, with_e, without_e, _ = adapted
    arch = SP.arch_id(SP.from_index(7))
    code, _, err = cli(capsys, "predict", without_e, "--arch", arch, "--interval", "0.9")
    assert code == 2 and "has no expected error" in err and "edgeprof adapt" in err, err
    for bad in ("0", "1", "1.5", "-0.2"):
        code, _, err = cli(capsys, "predict", with_e, "--arch", arch, "--interval", bad)
        assert code == 2 and "between 0 and 1" in err, (bad, err)
    code, _, err = cli(capsys, "predict", with_e, "--arch", arch, "--interval", "0.95")
    assert code == 2 and "has 12, which support levels up to 0.923" in err and "Traceback" not in err, err


def test_evaluate_shows_the_expected_beside_the_measured_error(adapted: tuple[Path, Path, Path, dict],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    db, with_e, without_e, e = adapted
    code, out, err = cli(capsys, "evaluate", with_e, "--db", db, "--device", "board", "--json")
    assert code == 0, err
    res = json.loads(out)
    n = 150 - 12
    assert res["metrics"]["n"] == n
    assert res["expected_error"] == {k: v for k, v in e.items() if k != "log_residuals"}
    code, _, err = cli(capsys, "evaluate", with_e, "--db", db, "--device", "board")
    assert code == 0
    assert (f"expected MAPE {e['mape']:.1f}% (leave-one-out over 12 samples); measured MAPE "
            f"{res['metrics']['mape']:.1f}% on {n} archs") in err, err
    code, out, err = cli(capsys, "evaluate", without_e, "--db", db, "--device", "board", "--json")
    assert code == 0 and json.loads(out)["expected_error"] is None, err
    code, _, err = cli(capsys, "evaluate", without_e, "--db", db, "--device", "board")
    assert code == 0 and "expected MAPE" not in err
