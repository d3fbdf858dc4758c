"""`edgeprof search random` end to end: the result file and JSON, the infeasible target, a refused accuracy
predictor, and the common `--verify` measuring the found network on this CPU through the agent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli, run_here

REPO = Path(__file__).resolve().parents[2]
TINY = {"C": 4, "N": 1, "resolution": 16}  # a tiny NB201: quick to export and measure


def edgeprof(*args: str) -> subprocess.CompletedProcess[str]:
    """The command in this process (cli_helpers.run_here): these tests check exit codes and output, not startup."""
    return run_here(*args)


@pytest.fixture(scope="module")
def lut(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path, float]:
    """A lookup-table predictor of the tiny NB201 for local-cpu (fitted on 40 cells of a made-up additive
    latency: the search only needs a ranking), its folder, and a target inside what it predicts."""
    from predictors.io import save_predictor
    from predictors.registry import create_predictor
    from spaces import create_space

    space = create_space("nb201", **TINY)
    archs = space.sample_unique(40, np.random.default_rng(1))
    table = np.random.default_rng(0).uniform(0.1, 1.0, size=(space.n_layers, space.n_ops))
    y = [1.0 + float(table[np.arange(space.n_layers), list(a)].sum()) for a in archs]
    pred = create_predictor("lut", space="nb201", space_config=TINY).fit([space.arch_id(a) for a in archs],
                                                                         np.array(y))
    folder = save_predictor(pred, tmp_path_factory.mktemp("random") / "lut-cpu", devices=["local-cpu"])
    return pred, folder, float(np.median(y))


def test_search_random_writes_the_result(lut, tmp_path: Path) -> None:
    _, predictor, target = lut
    out = tmp_path / "r.json"
    r = edgeprof("search", "random", "--device", "local-cpu", "--predictor", str(predictor), "--target-ms",
                 f"{target:.4f}", "--n", "50", "--seed", "2", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    res, saved = json.loads(r.stdout), json.loads(out.read_text())
    assert res["arch_id"] == saved["arch_id"] and res["plot"] is None and "warning" not in r.stderr
    assert saved["search"] == "random" and saved["space"] == "nb201" and saved["device"] == "local-cpu"
    assert saved["n"] == saved["evaluations"] == 50 and saved["params"]["seed"] == 2
    assert saved["feasible"] and 0 < saved["n_feasible"] <= 50 and saved["predicted"] <= saved["target"]
    assert saved["proxy"] == "params" and saved["proxy_value"] > 0
    from spaces import create_space

    space = create_space("nb201", **TINY)
    assert space.arch_id(space.validate(saved["arch"])) == saved["arch_id"]


def test_an_unreachable_target_keeps_the_cheapest_and_warns(lut, tmp_path: Path, capsys) -> None:
    _, predictor, target = lut
    code, out, err = cli(capsys, "search", "random", "--device", "local-cpu", "--predictor", str(predictor),
                         "--target-ms", f"{target / 100:.6f}", "--n", "50", "--out", str(tmp_path / "r.json"),
                         "--json")
    assert code == 0, err
    res = json.loads(out)
    assert not res["feasible"] and res["n_feasible"] == 0 and res["predicted"] > res["target"]
    assert "warning: random search: none of the 50 sampled networks" in err and "Traceback" not in err
    # without --json the summary says how the network was chosen
    code, _, err = cli(capsys, "search", "random", "--device", "local-cpu", "--predictor", str(predictor),
                       "--target-ms", f"{target / 100:.6f}", "--n", "50", "--out", str(tmp_path / "r.json"))
    assert code == 0 and "50 networks sampled, 0 predicted within the target; kept the predicted-cheapest" in err
    code, _, err = cli(capsys, "search", "random", "--device", "local-cpu", "--predictor", str(predictor),
                       "--target-ms", f"{target:.4f}", "--n", "50", "--out", str(tmp_path / "r.json"))
    assert code == 0 and "predicted within the target; kept the best by params (" in err, err


def test_bad_options_are_named(lut, tmp_path: Path, capsys) -> None:
    _, predictor, target = lut
    out = tmp_path / "r.json"
    common = ("search", "random", "--device", "local-cpu", "--predictor", str(predictor), "--target-ms",
              f"{target:.4f}", "--out", str(out))
    code, _, err = cli(capsys, *common, "--accuracy-predictor", str(predictor))  # a latency predictor
    assert code == 2 and "predicts latency, not accuracy" in err and predictor.name in err
    code, _, err = cli(capsys, *common, "--n", "0")
    assert code == 2 and "'n'" in err and "Traceback" not in err
    assert not out.exists()


def test_search_random_verify_on_this_cpu(lut, fast_cpu_config: Path, tmp_path: Path, capsys) -> None:
    """The common --verify: the found network measured once by the agent (a short protocol)."""
    from predictors.io import save_predictor

    pred, _, target = lut
    predictor = save_predictor(pred, tmp_path / "lut-fast", devices=[str(fast_cpu_config)])
    db, out = tmp_path / "d.db", tmp_path / "r.json"
    code, _, err = cli(capsys, "search", "random", "--device", str(fast_cpu_config), "--predictor",
                       str(predictor), "--target-ms", f"{target:.4f}", "--n", "20", "--verify", "--rounds", "1",
                       "--db", str(db), "--out", str(out), "--json")
    assert code == 0, err
    res = json.loads(out.read_text())
    v = res["verify"]
    assert v["device"] == "fast-cpu" and v["rounds"] == 1 and len(v["values"]) == 1 and v["median"] > 0
    assert v["error_vs_target"] == pytest.approx(v["median"] / res["target"] - 1.0)
    summary = json.loads(cli(capsys, "dataset", "summary", "--db", str(db), "--json")[1])
    (group,) = summary["groups"]
    assert group["device"] == "fast-cpu" and group["space"] == "nb201" and group["ok"] == 1
