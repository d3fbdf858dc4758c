"""`edgeprof search ftso` as a user types it on the tiny NB201 config: without a predictor (the summary: β, the
topology, the ops), with a lookup-table predictor of local-cpu and a latency budget (checked against brute
force over the kept edges), --verify through the pipeline on a fake board, and refusals naming the option."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli

CONFIG = {"C": 4, "N": 1, "resolution": 16}
TABLE = np.array([[0.0, 0.05, 0.45, 0.95, 0.30], [0.0, 0.05, 0.35, 0.80, 0.25], [0.0, 0.05, 0.50, 1.00, 0.35],
                  [0.0, 0.05, 0.40, 0.90, 0.30], [0.0, 0.05, 0.30, 0.70, 0.20], [0.0, 0.05, 0.55, 1.10, 0.40]])
SMALL = ("--proxy-n", "60", "--batch-size", "16", "--iterations", "2")
STRENGTH = {"skip_connect": 0, "avg_pool_3x3": 1, "nor_conv_1x1": 2, "nor_conv_3x3": 3}


def _latency(arch) -> float:
    return 1.0 + float(TABLE[np.arange(6), list(arch)].sum())


@pytest.fixture(scope="module")
def lut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lookup-table latency predictor of local-cpu on the tiny NB201 config, fitted on 300 cells."""
    from predictors.io import save_predictor
    from predictors.registry import create_predictor
    from spaces import create_space

    space = create_space("nb201", **CONFIG)
    archs = space.sample_unique(300, np.random.default_rng(0))
    pred = create_predictor("lut", space="nb201", space_config=CONFIG).fit(
        [space.arch_id(a) for a in archs], np.array([_latency(a) for a in archs]))
    return save_predictor(pred, tmp_path_factory.mktemp("ftso") / "lut", devices=["local-cpu"])


def test_without_a_predictor_prints_beta_topology_and_ops(capsys, tmp_path):
    out = tmp_path / "f.json"
    argv = ("search", "ftso", "--space-config", json.dumps(CONFIG), *SMALL, "--out", out)
    code, stdout, _ = cli(capsys, *argv, "--json")
    assert code == 0
    res = json.loads(stdout)
    assert res["search"] == "ftso" and res["space_config"]["C"] == 4 and res["predicted"] is None
    assert res["iterations"] == 2 and len(res["kept"]) == 5 and res["operator"] == "replace"
    assert [op == "nor_conv_3x3" for op in res["ops"]] == [e in res["kept"] for e in range(6)]
    assert json.loads(out.read_text())["arch_id"] == res["arch_id"]
    code, _, err = cli(capsys, *argv)
    assert code == 0 and "topology (skip_connect, 2 iteration(s), beta linear)" in err
    assert "(dropped)" in err and "[replace]" in err and "tied" in err  # skip on NB201: node 3's inputs tie


@pytest.mark.parametrize("budget", ["2.2", "3.3"])
def test_latency_budget_takes_the_strongest_ops_within_it(capsys, tmp_path, lut, budget):
    from predictors.io import load_predictor
    from spaces import create_space

    out = tmp_path / "f.json"
    code, stdout, err = cli(capsys, "search", "ftso", "--device", "local-cpu", "--predictor", lut,
                            "--max-latency-ms", budget, *SMALL, "--out", out, "--json")
    assert code == 0, err
    res = json.loads(stdout)
    assert res["operator"] == "budget" and res["feasible"] and res["predicted"] <= float(budget)
    assert abs(res["predicted"] - _latency(res["arch"])) < 1e-3  # the LUT reproduces the additive truth
    space, pred = create_space("nb201", **CONFIG), load_predictor(lut)
    kept, best = res["kept"], -1
    for combo in itertools.product((1, 2, 3, 4), repeat=len(kept)):  # brute force with the saved predictor
        arch = [0] * 6
        for e, op in zip(kept, combo, strict=True):
            arch[e] = op
        if float(pred.predict([space.arch_id(arch)])[0]) <= float(budget):
            best = max(best, sum(STRENGTH[space.ops[op]] for op in combo))
    assert sum(STRENGTH[res["ops"][e]] for e in kept) == best == res["budget"]["strength"]


def test_verify_measures_the_found_cell(capsys, tmp_path, lut, monkeypatch):
    """--verify through hwsearch.pipeline: the found cell measured in --rounds jobs on a fake board 10% slower
    than the table, the rows stored in --db."""
    from hwsearch import pipeline
    from profiler.store import Store
    from profiler.testing.fake_board import fake_measure_rounds

    calls: list[str] = []
    monkeypatch.setattr(pipeline, "measure_rounds", fake_measure_rounds(calls, lambda a: 1.1 * _latency(a)))
    out, db = tmp_path / "f.json", tmp_path / "d.db"
    code, _, err = cli(capsys, "search", "ftso", "--device", "local-cpu", "--predictor", lut, "--max-latency-ms",
                       "3", *SMALL, "--verify", "--rounds", "2", "--db", db, "--out", out)
    assert code == 0, err
    res = json.loads(out.read_text())
    assert calls == [res["arch_id"]]
    assert res["verify"]["rounds"] == 2 and res["verify"]["median"] == pytest.approx(1.1 * _latency(res["arch"]))
    assert res["verify"]["predictor_error"] == pytest.approx(1 / 1.1 - 1, abs=1e-3)
    assert "measured on local-cpu" in err
    with Store(db) as store:  # the rounds are rows of the dataset
        assert [r["arch_id"] for r in store.rows(status="ok")] == [res["arch_id"]] * 2


@pytest.mark.parametrize(("argv", "words"), [
    (("--keep", "0"), ["--keep must be at least 1"]),
    (("--iterations", "0"), ["--iterations must be at least 1"]),
    (("--op-iterations", "3"), ["--op-iterations", "--operator gradient"]),
    (("--tie-tol", "-1"), ["--tie-tol"]),
    (("--space-config", "{C: 4}"), ["--space-config is not JSON"]),
    (("--space-config", '{"C": 0}'), ["--space-config"]),
    (("--max-latency-ms", "3"), ["search ftso needs", "--predictor"]),
    (("--verify",), ["search ftso needs --device"]),
    (("--proxy-n", "3"), ["--proxy-n must be at least 10"]),
    (("--topology-op", "sep_conv_3x3"), ["--topology-op"]),
    (("--operator", "random"), ["--operator"]),
])
def test_bad_options_exit_2_naming_them(capsys, tmp_path, argv, words):
    try:
        code, _, err = cli(capsys, "search", "ftso", "--proxy-n", "60", *argv, "--out", tmp_path / "x.json")
    except SystemExit as e:  # argparse's own refusal
        code, err = e.code, capsys.readouterr().err
    assert code == 2 and all(w in err for w in words), err
    assert "Traceback" not in err


def test_gradient_with_a_budget_is_refused(capsys, tmp_path, lut):
    code, _, err = cli(capsys, "search", "ftso", "--device", "local-cpu", "--predictor", lut, "--max-latency-ms",
                       "3", "--operator", "gradient", "--out", tmp_path / "x.json")
    assert code == 2 and "--operator gradient and a latency budget" in err, err
