"""`edgeprof search domino` on mobilenetv2-small (a 17-bit grafting mask) with lookup-table predictors of a made-up
additive latency and accuracy: the set, picks and plot written, budgets and target, refusals naming the option,
and --verify measuring every Pareto member once through the pipeline (a fake board that stores its rows)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli

SPACE = "mobilenetv2-small"
RNG = np.random.default_rng(7)
W = RNG.uniform(0.1, 0.6, 17)  # ms a kept block costs over its grafted, merged form
G = W * RNG.uniform(0.3, 3.0, 17)  # accuracy points its non-linearity buys


def _truth(archs) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(archs, dtype=float).reshape(-1, 17)
    return 2.0 + x @ W, 50.0 + x @ G


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(latency predictor of local-cpu, accuracy predictor), lookup tables fitted on 150 masks."""
    from predictors.io import save_predictor
    from predictors.registry import create_predictor
    from spaces import create_space

    space = create_space(SPACE)
    archs = space.sample_unique(150, np.random.default_rng(0))
    ids = [space.arch_id(a) for a in archs]
    lat, acc = _truth(archs)
    root = tmp_path_factory.mktemp("domino")
    lat_dir = save_predictor(create_predictor("lut", space=SPACE).fit(ids, lat), root / "lat",
                             devices=["local-cpu"])
    acc_dir = save_predictor(create_predictor("lut", space=SPACE).fit(ids, acc), root / "acc",
                             quantity="accuracy", task="digits", metric="test_accuracy")
    return lat_dir, acc_dir


def _args(folders, out: Path, *extra: str) -> list[str]:
    lat, acc = folders
    return ["search", "domino", "--device", "local-cpu", "--space", SPACE, "--latency-predictor", str(lat),
            "--accuracy-predictor", str(acc), "--population", "20", "--generations", "10", "--seed", "1",
            "--out", str(out), *extra]


def test_writes_the_set_the_picks_and_the_plot(folders, tmp_path: Path, capsys) -> None:
    out = tmp_path / "pareto.json"
    code, stdout, err = cli(capsys, *_args(folders, out), "--json")
    assert code == 0, err
    shown, saved = json.loads(stdout), json.loads(out.read_text())
    assert shown["plot"] == str(out.with_suffix(".png")) and Path(shown["plot"]).stat().st_size > 10_000
    assert saved["search"] == "domino" and saved["space"] == SPACE and saved["device"] == "local-cpu"
    assert saved["params"]["population"] == 20 and saved["accuracy_predictor"] == f"{folders[1]} (digits)"
    lat = [m["predicted_ms"] for m in saved["pareto"]]
    assert lat == sorted(lat) and max(lat) <= saved["budgets"][-1] and len(saved["budgets"]) == 4
    assert [p["label"] for p in saved["picks"]] == ["A", "B", "C", "D"]
    assert all(p["predicted_ms"] <= p["budget_ms"] for p in saved["picks"])
    assert saved["arch_id"] == saved["picks"][-1]["arch_id"] and saved["target"] == saved["budgets"][-1]
    assert len(saved["arch_id"]) == 17 and set(saved["arch_id"]) <= {"0", "1"}
    assert saved["random"]["evaluations"] == saved["evaluations"] == len(saved["random_cloud"]["predicted_ms"])
    assert saved["hypervolume"] >= saved["random"]["hypervolume"] > 0
    assert "Pareto set:" not in err  # --json: the JSON alone, no summary
    code, _, err = cli(capsys, *_args(folders, out))  # the summary a user reads
    assert code == 0 and "Pareto set:" in err and "  D <= " in err and "for a target of" in err


def test_budgets_and_a_target(folders, tmp_path: Path, capsys) -> None:
    out = tmp_path / "p.json"
    code, _, err = cli(capsys, *_args(folders, out, "--budgets", "4,6", "--target-ms", "5", "--json"))
    assert code == 0, err
    saved = json.loads(out.read_text())
    assert saved["budgets"] == [4.0, 5.0, 6.0] and saved["target"] == 5.0
    assert saved["arch_id"] == saved["picks"][1]["arch_id"] and saved["predicted"] <= 5.0


@pytest.mark.parametrize(("change", "words"), [
    ({"--accuracy-predictor": "LAT"}, ["--accuracy-predictor", "predicts latency, not accuracy"]),
    ({"--accuracy-predictor": None}, ["needs --accuracy-predictor"]),
    ({"--latency-predictor": None}, ["search domino needs --latency-predictor"]),
    ({"--space": "mobilenetv2"}, ["--space mobilenetv2", "is for 'mobilenetv2-small'"]),
    ({"--budgets": "0.01"}, ["no network found within the largest budget, 0.01 ms", "the cheapest"]),
    ({"--budgets": "2,x"}, ["--budgets takes comma-separated numbers"]),
    ({"--population": "1"}, ["'population'"]),
    ({"--verify-max": "3"}, ["--verify-max", "without --verify"]),
])
def test_refusals_name_the_option(folders, tmp_path: Path, capsys, change, words) -> None:
    out = tmp_path / "p.json"
    argv = _args(folders, out)
    for option, value in change.items():
        if option in argv:
            i = argv.index(option)
            del argv[i:i + 2]
        if value is not None:
            argv += [option, str(folders[0]) if value == "LAT" else value]
    code, _, err = cli(capsys, *argv)
    assert code == 2 and all(w in err for w in words), err
    assert "Traceback" not in err and not out.exists()


def test_verify_measures_every_member_once(folders, tmp_path: Path, capsys, monkeypatch) -> None:
    """--verify through the pipeline: the pick verified by the common path, every other member by domino's
    after_search, each in --rounds jobs stored in --db; the board here is a fake 10% slower than predicted."""
    from hwsearch import pipeline
    from profiler.store import Store
    from profiler.testing.fake_board import fake_measure_rounds

    calls: list[str] = []
    board = fake_measure_rounds(calls, lambda arch: 1.1 * float(_truth([arch])[0][0]))
    monkeypatch.setattr(pipeline, "measure_rounds", board)
    out, db = tmp_path / "p.json", tmp_path / "d.db"
    code, _, err = cli(capsys, *_args(folders, out, "--verify", "--rounds", "2", "--db", str(db)))
    assert code == 0, err
    saved = json.loads(out.read_text())
    members = [m["arch_id"] for m in saved["pareto"]]
    assert calls[0] == saved["arch_id"] and sorted(calls) == sorted(members)  # each measured once
    with Store(db) as store:
        assert sorted(r["arch_id"] for r in store.rows(status="ok")) == sorted(members * 2)
    assert [r["arch_id"] for r in saved["pareto_verified"]] == members
    assert saved["verify"]["median"] == pytest.approx(1.1 * saved["predicted"], rel=1e-4)
    assert saved["pareto_verify"]["mean_abs_predictor_error"] == pytest.approx(1 - 1 / 1.1, rel=1e-3)
    assert f"measured {len(members)} of the {len(members)} Pareto members on local-cpu" in err
