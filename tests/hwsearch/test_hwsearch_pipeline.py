"""hwsearch.pipeline: the verification record, the store's prior measurements, the closed loop around any
search's result (the board replaced by a biased table), and the contracts a search and its options meet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from agents.protocol import RESULT_SCHEMA
from hwsearch import SearchContractError, SearchResult, lut_cost_model, pipeline
from hwsearch.cost import as_predict_model, predict_archs
from hwsearch.pipeline import (
    SearchSetup,
    VerifyPlan,
    check_predictor,
    check_result,
    known_measurements,
    verification,
    verify_result,
)
from profiler.config import resolve_device
from profiler.store import ModelRecord, Store
from spaces import create_space
from spaces.errors import UserInputError
from spaces.nb201 import OPS


def test_verification_is_the_median_of_the_rounds() -> None:
    v = verification("dev", [10.0, 12.0, 11.0], target=10.0, predicted=9.9)
    assert v["median"] == 11.0 and v["rounds"] == 3 and v["spread"] == pytest.approx(2 / 11)
    assert v["error_vs_target"] == pytest.approx(0.1) and v["predictor_error"] == pytest.approx(9.9 / 11 - 1)


def _row(job: str, task: str, sha: str, median: float, backend: str = "onnxruntime", status: str = "ok"
         ) -> dict[str, Any]:
    ok = status == "ok"
    return {"schema": RESULT_SCHEMA, "job_id": job, "task_id": task, "model_sha256": sha, "device": "local-cpu",
            "backend": backend, "precision": "fp32", "batch": 1, "status": status,
            "error": None if ok else {"type": "X", "message": "y"},
            "latency_ms": {"median": median} if ok else None, "energy": None}


def test_known_measurements_are_one_setting_of_the_space(tmp_path: Path) -> None:
    """The loop's prior: the device config's backend and precision, batch 1 and the space's own config; a
    network measured twice counts at its median; errors, other backends and other configs do not count."""
    space = create_space("nb201")
    archs = space.sample_unique(4, np.random.default_rng(0))
    ids = [space.arch_id(a) for a in archs]
    with Store(tmp_path / "d.db") as store:
        store.add_device("local-cpu", "cpu", {})
        store.add_models([ModelRecord("a" * 64, "nb201", space.config, ids[0]),
                          ModelRecord("b" * 64, "nb201", space.config, ids[1]),
                          ModelRecord("c" * 64, "nb201", {**space.config, "C": 8}, ids[2]),
                          ModelRecord("d" * 64, "nb201", space.config, ids[3])])
        store.add_results([_row("j1", "t1", "a" * 64, 2.0), _row("j2", "t1", "a" * 64, 3.0),
                           _row("j2", "t2", "a" * 64, 9.0), _row("j3", "t1", "b" * 64, 5.0, backend="torch"),
                           _row("j3", "t2", "c" * 64, 6.0), _row("j3", "t3", "d" * 64, 0.0, status="error")])
        known = known_measurements(store, resolve_device("local-cpu"), space, "latency")
        assert known == [(tuple(archs[0]), 3.0)]
        assert store.job_costs("j2") == [3.0, 9.0] and store.job_costs("j3", "energy") == [None, None]
        with pytest.raises(ValueError, match="quantity"):
            store.job_costs("j1", "power")


@pytest.fixture
def lut_result() -> tuple[SearchResult, Any, dict[tuple[int, ...], float]]:
    """A search's result under a LUT predictor of NB201, and a 'board' whose conv3x3 edges cost 40% more."""
    space = create_space("nb201")
    table = np.random.default_rng(0).uniform(0.2, 1.0, size=(space.n_layers, space.n_ops))
    model = lut_cost_model(table, space, base=1.0)
    conv3 = OPS.index("nor_conv_3x3")
    arch = (conv3,) * space.n_layers
    predicted = float(predict_archs(model, space, [arch])[0])
    board = {}

    def measured(a: tuple[int, ...]) -> float:
        return board.setdefault(a, 1.0 + sum(table[i, op] * (1.4 if op == conv3 else 1.0) for i, op in enumerate(a)))

    result = SearchResult(search="test", space="nb201", space_config=space.config, arch=list(arch),
                          arch_id=space.arch_id(arch), target=predicted, metric="latency", unit="ms",
                          predicted=predicted)
    return result, model, measured


def test_closed_loop_around_any_result_adopts_a_measured_network(lut_result, tmp_path, monkeypatch) -> None:
    result, model, board = lut_result
    calls: list[tuple[tuple[int, ...], int]] = []

    def fake_rounds(config, space, arch, metric, rounds, store, log, progress, protocol):
        calls.append((tuple(arch), rounds))
        return [board(tuple(arch))] * rounds

    monkeypatch.setattr(pipeline, "measure_rounds", fake_rounds)
    plan = VerifyPlan("local-cpu", tmp_path / "d.db", rounds=2, correct=5, tolerance=0.03)
    lines: list[str] = []
    res = verify_result(result, plan, model, log=lines.append)
    loop, v = res["closed_loop"], res["verify"]
    assert abs(board(tuple(result.arch)) / result.target - 1) > 0.2  # the open loop misses
    assert loop["met"] and abs(v["error_vs_target"]) <= 0.03 and 2 <= loop["measurements"] <= 6
    assert [a for a, _ in calls] == [tuple(p["arch"]) for p in loop["probes"]] and {r for _, r in calls} == {2}
    assert res["arch"] == loop["arch"] != res["searched_arch"] == result.arch
    assert res["arch_id"] == create_space("nb201").arch_id(res["arch"]) and v["median"] == loop["measured"]
    assert loop["predictor"] == "lookup table" and len(lines) == loop["measurements"]  # one line per probe


def test_verify_only_measures_the_result_as_it_is(lut_result, tmp_path, monkeypatch) -> None:
    result, model, board = lut_result
    monkeypatch.setattr(pipeline, "measure_rounds",
                        lambda config, space, arch, *a: [board(tuple(arch)) * f for f in (0.99, 1.0, 1.02)])
    res = verify_result(result, VerifyPlan("local-cpu", tmp_path / "d.db", rounds=3), model)
    assert "closed_loop" not in res and res["arch"] == result.arch and res["verify"]["rounds"] == 3
    assert res["verify"]["median"] == pytest.approx(board(tuple(result.arch)))


@pytest.mark.parametrize(("kwargs", "flag"), [({"rounds": 0}, "--rounds"), ({"correct": -1}, "--correct"),
                                              ({"tolerance": 1.5}, "--tolerance"), ({"tolerance": 0}, "--tolerance")])
def test_verify_plan_names_the_bad_option(kwargs, flag) -> None:
    with pytest.raises(UserInputError, match=flag):
        VerifyPlan("local-cpu", "x.db", **kwargs)


def test_setup_and_predictor_checks_name_the_culprit(lut_result) -> None:
    _, model, _ = lut_result
    with pytest.raises(UserInputError, match="positive number of ms"):
        SearchSetup(model, target=-1.0)
    with pytest.raises(UserInputError, match="trained for raspi4, not xavier.*--device xavier"):
        check_predictor({"devices": ["raspi4"]}, "p", "xavier", "latency")
    with pytest.raises(UserInputError, match="predicts latency, not energy.*--target-ms"):
        check_predictor({"devices": ["raspi4"]}, "p", "raspi4", "energy")
    check_predictor({}, "p", "anything", "latency")  # a card without devices serves any device


def test_result_contract_is_checked(lut_result) -> None:
    result, _, _ = lut_result
    assert check_result("test", result) is result
    with pytest.raises(SearchContractError, match="'test' returned dict, not a hwsearch.SearchResult"):
        check_result("test", result.to_dict())
    short = SearchResult(**{**vars(result), "arch": result.arch[:-1]})
    with pytest.raises(SearchContractError, match="'test' broke the result contract.*nb201"):
        check_result("test", short)
    with pytest.raises(SearchContractError, match="arch_id"):
        check_result("test", SearchResult(**{**vars(result), "arch_id": "|none~0|+|none~0|none~1|+|x|"}))
    with pytest.raises(SearchContractError, match="predicted=nan"):
        check_result("test", SearchResult(**{**vars(result), "predicted": float("nan")}))


def test_predict_model_evaluates_a_predictor_without_gradients() -> None:
    """The loop can be judged by any fitted predictor (FLOPs here), not only a differentiable one."""
    from predictors.registry import create_predictor

    space = create_space("nb201")
    archs = space.sample_unique(12, np.random.default_rng(2))
    ids = [space.arch_id(a) for a in archs]
    pred = create_predictor("flops", space="nb201").fit(ids[:6], np.linspace(1.0, 3.0, 6))
    model = as_predict_model(pred)
    assert model.source == "flops predictor" and model.unit == "ms"
    got = predict_archs(model, space, np.array(archs[6:]))
    assert got == pytest.approx(pred.predict(ids[6:]), rel=1e-5)
    onehot = torch.zeros(1, space.n_layers * space.n_ops, requires_grad=True)
    assert not model(onehot).requires_grad  # evaluation only


def test_a_percentile_target_is_read_from_the_device_measurements(tmp_path: Path) -> None:
    """`--target-ms p50`: the median over the device's measured networks of the predictor's space (one value
    per network: the median of its measurements), so a README example reaches on any machine."""
    space = create_space("nb201")
    archs = space.sample_unique(3, np.random.default_rng(1))
    with Store(tmp_path / "d.db") as store:
        store.add_device("local-cpu", "cpu", {})
        store.add_models([ModelRecord(c * 64, "nb201", space.config, space.arch_id(a))
                          for c, a in zip("abc", archs, strict=True)])
        store.add_results([_row("j1", "t1", "a" * 64, 2.0), _row("j1", "t2", "b" * 64, 4.0),
                           _row("j1", "t3", "c" * 64, 9.0), _row("j2", "t1", "c" * 64, 11.0)])
    pred = type("P", (), {"space": "nb201", "space_config": None})()
    assert pipeline.percentile_target(tmp_path / "d.db", "local-cpu", pred, "latency", 50) == 4.0
    assert pipeline.percentile_target(tmp_path / "d.db", "local-cpu", pred, "latency", 100 * 0.75) == 7.0
    assert pipeline.parse_percentile("P25") == 25.0
    for bad in ("p0", "p100", "px", "median"):
        with pytest.raises(UserInputError, match=f"percentile p1..p99 .*got {bad!r}"):
            pipeline.parse_percentile(bad)
    with pytest.raises(UserInputError, match="raspi4"):
        pipeline.percentile_target(tmp_path / "d.db", "raspi4", pred, "latency", 50)


def test_a_percentile_target_reads_the_setting_verify_measures(tmp_path: Path) -> None:
    """local-cpu measured under onnxruntime and torch: p50 reads the config's backend (onnxruntime), as the
    verification does, instead of refusing the device as ambiguous; a device without a config keeps its one."""
    space = create_space("nb201")
    archs = space.sample_unique(2, np.random.default_rng(2))
    with Store(tmp_path / "d.db") as store:
        store.add_device("local-cpu", "cpu", {})
        store.add_models([ModelRecord(c * 64, "nb201", space.config, space.arch_id(a))
                          for c, a in zip("ab", archs, strict=True)])
        store.add_results([_row("j1", "t1", "a" * 64, 2.0), _row("j1", "t2", "b" * 64, 4.0),
                           _row("j2", "t1", "a" * 64, 50.0, backend="torch")])
    pred = type("P", (), {"space": "nb201", "space_config": None})()
    assert pipeline.measured_setting("local-cpu") == {"backend": "onnxruntime", "precision": "fp32", "batch": 1}
    assert pipeline.measured_setting("raspi4") == {}
    assert pipeline.percentile_target(tmp_path / "d.db", "local-cpu", pred, "latency", 50) == 3.0


def test_a_meta_trained_predictor_not_yet_adapted_is_refused_with_the_next_step(tmp_path: Path) -> None:
    """`search --predictor help-meta` before `edgeprof adapt`: a UserInputError (exit 2) saying to adapt, not
    the predictor's NotFittedError escaping as a traceback."""
    from predictors.hardware_adaptive import HELP_NB201_REFERENCE
    from predictors.help import HelpPredictor
    from predictors.io import save_predictor

    space = create_space("nb201")
    refs = [space.arch_id(space.from_index(i)) for i in HELP_NB201_REFERENCE]
    pool = [space.arch_id(a) for a in space.sample_unique(40, np.random.default_rng(3))]
    rng = np.random.default_rng(4)
    tasks = {f"d{i}": (pool + refs, rng.uniform(1, 5, len(pool) + len(refs))) for i in range(3)}
    pred = HelpPredictor(reference=refs, hidden=(8,), meta_iters=2, meta_batch=2, n_query=8, inner_steps=1)
    save_predictor(pred.meta_fit(tasks), tmp_path / "help-meta", devices=["d0", "d1", "d2"])
    with pytest.raises(UserInputError, match=r"not adapted to a device yet: run `edgeprof adapt .*help-meta"):
        pipeline.load_checked_predictor(tmp_path / "help-meta", None, "latency")
