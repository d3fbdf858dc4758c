"""`edgeprof search zeroshot` end to end: the result file and its summary, the infeasible target, refused options,
and --verify --measure-final K measuring the K best candidates on a fake board and keeping the best by the
proxy that is measured within the target."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli

TINY = {"C": 4, "N": 1, "resolution": 16}


def _table_latency(table: np.ndarray, arch) -> float:
    return 1.0 + float(table[np.arange(len(arch)), list(arch)].sum())


@pytest.fixture(scope="module")
def lut(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path, np.ndarray]:
    """A lookup-table predictor of the tiny NB201 for local-cpu, fitted on 40 cells of a made-up additive latency
    (exact: the LUT recovers the table), its folder and the table."""
    from predictors.io import save_predictor
    from predictors.registry import create_predictor
    from spaces import create_space

    space = create_space("nb201", **TINY)
    archs = space.sample_unique(40, np.random.default_rng(1))
    table = np.random.default_rng(0).uniform(0.1, 1.0, size=(space.n_layers, space.n_ops))
    y = [_table_latency(table, a) for a in archs]
    pred = create_predictor("lut", space="nb201", space_config=TINY).fit([space.arch_id(a) for a in archs],
                                                                         np.array(y))
    folder = save_predictor(pred, tmp_path_factory.mktemp("zeroshot") / "lut-cpu", devices=["local-cpu"])
    return pred, folder, table


def _args(folder: Path, out: Path, target: float, *extra: str) -> list[str]:
    return ["search", "zeroshot", "--device", "local-cpu", "--predictor", str(folder), "--max-latency-ms",
            f"{target:.4f}", "--population", "16", "--iterations", "400", "--batch", "8", "--out", str(out), *extra]


def test_search_zeroshot_writes_the_result(lut, tmp_path: Path, capsys) -> None:
    pred, folder, _ = lut
    out = tmp_path / "r.json"
    code, stdout, err = cli(capsys, *_args(folder, out, 3.5, "--max-depth", "14", "--json"))
    assert code == 0, err
    res, saved = json.loads(stdout), json.loads(out.read_text())
    assert res["arch_id"] == saved["arch_id"] and saved["search"] == "zeroshot" and saved["device"] == "local-cpu"
    assert saved["feasible"] and saved["proxy"] == "tpc" and saved["iterations"] == 400
    assert saved["predicted"] <= 3.5 and saved["depth"] <= 14 and saved["constraints"]["max_depth"] == 14
    assert float(pred.predict([saved["arch_id"]])[0]) == pytest.approx(saved["predicted"], rel=1e-5)
    assert saved["predictor_queries"] > 0 and saved["predictor_ms_per_arch"] < 0.6
    assert res["plot"] and Path(res["plot"]).exists()
    code, _, err = cli(capsys, *_args(folder, out, 3.5, "--max-depth", "14"))  # the summary a user reads
    assert code == 0
    assert f"proxy tpc: {saved['proxy_value']:.6g}" in err and "constraints: latency <= 3.5 ms (predicted" in err
    assert "depth <= 14 (" in err and "400 iterations (50 generations of 8)" in err and " ms/arch" in err


def test_an_unreachable_target_warns(lut, tmp_path: Path, capsys) -> None:
    _, folder, table = lut
    cheapest = 1.0 + table.min(axis=1).sum()
    code, stdout, err = cli(capsys, *_args(folder, tmp_path / "r.json", cheapest * 0.8, "--json"))
    assert code == 0, err
    res = json.loads(stdout)
    assert not res["feasible"] and res["predicted"] == pytest.approx(cheapest, rel=1e-4)
    assert "warning: zeroshot search: the initial network" in err and "Traceback" not in err


@pytest.mark.parametrize(("extra", "words"), [
    (("--measure-final", "3"), ("--measure-final", "--verify")),
    (("--proxy", "nonesuch"), ("nonesuch",)),
    (("--population", "0"), ("'population'",)),
    (("--space", "mbconv"), ("--space mbconv", "'nb201'")),
])
def test_bad_options_are_named(lut, tmp_path: Path, capsys, extra, words) -> None:
    _, folder, _ = lut
    out = tmp_path / "r.json"
    code, _, err = cli(capsys, *_args(folder, out, 3.5, *extra))
    assert code == 2 and all(w in err for w in words), err
    assert "Traceback" not in err and not out.exists()


def test_without_a_predictor_it_searches_a_space_under_params(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.json"
    code, _, err = cli(capsys, "search", "zeroshot", "--space", "nb201", "--max-params", "0.3", "--population", "16",
                       "--iterations", "200", "--out", str(out))
    assert code == 0, err
    saved = json.loads(out.read_text())
    assert saved["space_config"]["C"] == 16 and saved["params_m"] <= 0.3 and saved["predicted"] is None


def test_verify_measure_final_keeps_the_best_measured_within(lut, tmp_path: Path, capsys, monkeypatch) -> None:
    """A fake board 8% slower than the table (the searched network 50%): the K best are measured (the searched
    one once, by the pipeline's --verify), and the kept network is the best by proxy whose measurement is within
    the target."""
    from hwsearch import pipeline
    from profiler.store import Store
    from profiler.testing.fake_board import fake_measure_rounds

    _, folder, table = lut
    out, db = tmp_path / "r.json", tmp_path / "d.db"
    assert cli(capsys, *_args(folder, out, 3.5))[0] == 0  # the same seed's searched network, unverified
    searched = tuple(json.loads(out.read_text())["arch"])
    calls: list[str] = []
    # the board is 8% slower than the table, and the searched network 50% (it misses the target there)
    board = fake_measure_rounds(calls, lambda a: (1.5 if a == searched else 1.08) * _table_latency(table, a))
    monkeypatch.setattr(pipeline, "measure_rounds", board)
    code, _, err = cli(capsys, *_args(folder, out, 3.5, "--verify", "--rounds", "2", "--db", str(db),
                                      "--measure-final", "4"))
    assert code == 0, err
    saved = json.loads(out.read_text())
    mf = saved["measure_final"]
    cands = mf["candidates"]
    assert len(cands) == 4 and mf["k"] == 4 and len(set(calls)) == 4 and len(calls) == 4  # each measured once
    assert all(c["measured"] == pytest.approx((1.5 if tuple(c["arch"]) == searched else 1.08) * c["predicted"],
                                              rel=1e-4) and len(c["values"]) == 2 for c in cands)
    assert tuple(cands[0]["arch"]) == searched
    within = [c for c in cands if c["measured"] <= 3.5]
    assert mf["within"] == len(within)
    want = within[0] if within else cands[0]
    assert saved["arch_id"] == mf["chosen"] == want["arch_id"] and saved["verify"]["median"] == want["measured"]
    assert want is not cands[0]  # the searched network misses on the board: it is kept as searched_arch
    assert saved["searched_arch_id"] == cands[0]["arch_id"] and saved["proxy_value"] == want["proxy_value"]
    with Store(db) as store:
        assert len(store.rows(status="ok")) == 8
    assert "measured the 4 best candidates on local-cpu" in cli(capsys, *_args(
        folder, out, 3.5, "--verify", "--rounds", "2", "--db", str(db), "--measure-final", "4"))[2]
