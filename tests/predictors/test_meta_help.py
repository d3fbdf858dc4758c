"""HelpPredictor / HelpEnsemble on synthetic devices: adaptation, input checks, persistence.

Synthetic devices: latency = c0 + sum over edges of w_e * cost[op_e], with device-specific op costs,
edge weights and scale, plus 2% noise; what HELP's devices look like in the NB201 tables (where a
device is mostly a table of op costs). The real-data check is marked slow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from predictors.base import InvalidParameterError, NotFittedError
from predictors.fewshot import FewShotTask
from predictors.hardware_adaptive import HELP_NB201_REFERENCE
from predictors.help import HelpPredictor
from predictors.help_ensemble import HelpEnsemble
from predictors.metrics import spearman
from spaces import create_space

SPACE = create_space("nb201")
REFS = [SPACE.arch_id(SPACE.from_index(i)) for i in HELP_NB201_REFERENCE]
_rng = np.random.default_rng(0)
_idx = [int(i) for i in _rng.choice(SPACE.size, 500, replace=False) if int(i) not in HELP_NB201_REFERENCE]
POOL = [SPACE.arch_id(SPACE.from_index(i)) for i in _idx[:250]]
QUERY = [SPACE.arch_id(SPACE.from_index(i)) for i in _idx[250:450]]
BASE_COST = np.array([0.02, 0.2, 1.0, 3.0, 0.6])

TINY = {"hidden": (32, 32), "meta_iters": 150, "meta_batch": 2, "n_query": 64, "inner_steps": 2,
        "outer_lr": 3e-3, "valid_every": 50}
ADDITIVE = {"model": "additive", "hidden": (), "rank": 1, "inner": "gauss-newton", "inner_steps": 1,
            "inner_lr": 100.0, "adapt_params": ["V", "b"], "target": "raw", "meta_iters": 30, "valid_every": 10}


def device(seed: int) -> dict[str, float]:
    r = np.random.default_rng(seed)
    cost = BASE_COST * np.exp(r.normal(0, 0.4, 5))
    edge = 1 + 0.1 * r.normal(size=6)
    scale, c0 = 10 ** r.uniform(0, 2), r.uniform(0.5, 2)
    out = {}
    for a in POOL + QUERY + REFS:
        arch = np.asarray(SPACE.parse(a))
        out[a] = scale * (c0 + float(edge @ cost[arch])) * float(np.exp(r.normal(0, 0.02)))
    return out


SOURCES = {f"src{i}": device(i) for i in range(6)}
TARGET = device(100)
VALID = device(200)


def tasks() -> dict[str, tuple[list[str], np.ndarray]]:
    ids = POOL + REFS
    return {name: (ids, np.array([lat[a] for a in ids])) for name, lat in SOURCES.items()}


def valid_tasks() -> dict[str, FewShotTask]:
    support = POOL[:10]
    return {"v": FewShotTask(support, np.array([VALID[a] for a in support]), QUERY,
                             np.array([VALID[a] for a in QUERY]), {a: VALID[a] for a in REFS})}


def target_rho(pred: HelpPredictor | HelpEnsemble, k: int = 10, seed: int = 0) -> float:
    support = list(np.random.default_rng(seed).choice(POOL, k, replace=False))
    pred.adapt(support, np.array([TARGET[a] for a in support]), reference={a: TARGET[a] for a in REFS})
    return spearman(pred.predict(QUERY), np.array([TARGET[a] for a in QUERY]))


@pytest.fixture(scope="module")
def mlp_pred() -> HelpPredictor:
    return HelpPredictor(reference=REFS, **TINY).meta_fit(tasks(), valid_tasks())


def test_mlp_member_adapts_to_an_unseen_device(mlp_pred: HelpPredictor) -> None:
    rho = target_rho(mlp_pred)
    assert rho > 0.9
    assert 1 <= mlp_pred.meta_iter_ <= TINY["meta_iters"] and mlp_pred.valid_score_ > 0.8


def test_additive_member_is_near_exact_on_additive_devices() -> None:
    pred = HelpPredictor(reference=REFS, **ADDITIVE).meta_fit(tasks())
    assert target_rho(pred) > 0.97


def test_predictions_are_positive_ms_on_the_target_scale(mlp_pred: HelpPredictor) -> None:
    target_rho(mlp_pred)
    pred, true = mlp_pred.predict(QUERY), np.array([TARGET[a] for a in QUERY])
    assert np.all(pred > 0)
    assert 0.5 < np.median(pred / true) < 2.0


def test_reference_archs_among_the_samples_count_as_reference(mlp_pred: HelpPredictor) -> None:
    ids = POOL[:10] + REFS
    mlp_pred.adapt(ids, np.array([TARGET[a] for a in ids]))
    a = mlp_pred.predict(QUERY)
    mlp_pred.adapt(POOL[:10], np.array([TARGET[a] for a in POOL[:10]]), reference={r: TARGET[r] for r in REFS})
    np.testing.assert_allclose(a, mlp_pred.predict(QUERY), rtol=1e-5)


def test_missing_reference_or_too_few_samples_are_clear_errors(mlp_pred: HelpPredictor) -> None:
    y = np.array([TARGET[a] for a in POOL[:10]])
    with pytest.raises(ValueError, match="reference archs are missing"):
        mlp_pred.adapt(POOL[:10], y)
    with pytest.raises(ValueError, match="reference archs are missing"):
        mlp_pred.adapt(POOL[:10], y, reference={a: TARGET[a] for a in REFS[:9]})
    no_ref = HelpPredictor(reference=REFS, **{**TINY, "meta_iters": 2}, adapt_on_reference=False)
    no_ref.meta_fit(tasks())
    with pytest.raises(ValueError, match="need at least 2"):
        no_ref.adapt(POOL[:1], y[:1], reference={a: TARGET[a] for a in REFS})
    with pytest.raises(ValueError, match="positive"):
        mlp_pred.adapt(POOL[:10], -y, reference={a: TARGET[a] for a in REFS})


def test_order_of_calls_is_enforced() -> None:
    pred = HelpPredictor(reference=REFS, **TINY)
    with pytest.raises(NotFittedError, match="meta_fit"):
        pred.predict(QUERY)
    with pytest.raises(NotFittedError, match="meta_fit"):
        pred.adapt(POOL[:10], np.ones(10), reference=dict.fromkeys(REFS, 1.0))
    with pytest.raises(NotImplementedError, match="meta_fit"):
        pred.fit(POOL, np.ones(len(POOL)))
    pred.set_params(meta_iters=1).meta_fit(tasks())
    with pytest.raises(NotFittedError, match="adapt"):
        pred.predict(QUERY)


def test_source_tasks_must_include_the_reference_archs() -> None:
    lat = SOURCES["src0"]
    with pytest.raises(ValueError, match="src0.*reference archs are missing"):
        HelpPredictor(reference=REFS, **TINY).meta_fit({"src0": (POOL, np.array([lat[a] for a in POOL]))})


def test_bad_parameters_are_named() -> None:
    with pytest.raises(InvalidParameterError, match="target"):
        HelpPredictor(reference=REFS, target="sqrt").meta_fit(tasks())
    with pytest.raises(InvalidParameterError, match="adapt_params"):
        HelpPredictor(reference=REFS, **{**TINY, "adapt_params": ["nope"]}).meta_fit(tasks())
    with pytest.raises(InvalidParameterError, match="reference"):
        HelpPredictor(space="fbnet").reference_ids()


def test_default_reference_is_helps_nb201_set() -> None:
    assert HelpPredictor().reference_ids() == REFS


def test_meta_fit_leaves_the_global_torch_rng_and_threads_alone() -> None:
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        HelpPredictor(reference=REFS, **{**TINY, "meta_iters": 3}).meta_fit(tasks())
        assert torch.equal(state, torch.get_rng_state()) and torch.get_num_threads() == 2  # one thread inside only
    finally:
        torch.set_num_threads(threads)


def test_meta_fit_is_reproducible() -> None:
    kw = {**TINY, "meta_iters": 20}
    a = HelpPredictor(reference=REFS, **kw).meta_fit(tasks())
    b = HelpPredictor(reference=REFS, **kw).meta_fit(tasks())
    assert target_rho(a) == target_rho(b)
    np.testing.assert_array_equal(a.predict(QUERY), b.predict(QUERY))


def test_state_round_trip_is_plain_arrays_and_json(mlp_pred: HelpPredictor) -> None:
    import json

    target_rho(mlp_pred)
    arrays, extra = mlp_pred.state()
    assert all(isinstance(v, np.ndarray) and not v.dtype.hasobject and "/" not in k for k, v in arrays.items())
    json.dumps(extra)
    back = HelpPredictor.from_state(mlp_pred.get_params(), arrays, extra)
    np.testing.assert_allclose(back.predict(QUERY), mlp_pred.predict(QUERY), rtol=1e-6)
    assert back.meta_iter_ == mlp_pred.meta_iter_


def test_ensemble_blends_members_and_round_trips_through_io(tmp_path: Path) -> None:
    from predictors import io
    ens = HelpEnsemble(reference=REFS, members=[{**TINY, "meta_iters": 60}, ADDITIVE])
    ens.meta_fit(tasks(), valid_tasks())
    assert ens.weights_.sum() == pytest.approx(1.0) and len(ens.weights_) == 2
    assert target_rho(ens) > 0.95
    folder = io.save_predictor(ens, tmp_path / "ens", devices="target")
    back = io.load_predictor(folder)
    assert type(back) is HelpEnsemble and back.kind == "help-ensemble"
    np.testing.assert_allclose(back.predict(QUERY), ens.predict(QUERY), rtol=1e-6)


def test_saved_meta_trained_predictor_adapts_after_loading(tmp_path: Path, mlp_pred: HelpPredictor) -> None:
    from predictors import io
    mlp_pred.__dict__.pop("adapted_", None)
    back = io.load_predictor(io.save_predictor(mlp_pred, tmp_path / "help"))
    assert back.kind == "help" and not getattr(back, "adapted_", False)
    assert target_rho(back) == pytest.approx(target_rho(mlp_pred), abs=1e-9)


def test_ensemble_members_may_not_override_shared_settings() -> None:
    with pytest.raises(InvalidParameterError, match="ensemble sets"):
        HelpEnsemble(reference=REFS, members=[{"space": "fbnet"}]).meta_fit(tasks())


def test_ensemble_and_single_share_the_hardware_adaptive_interface(tmp_path: Path) -> None:
    """What `edgeprof adapt` calls works on both kinds, before and after a save (the ensemble lacked
    reference_ids once, and the README's few-shot flow crashed on it)."""
    from predictors import io
    from predictors.hardware_adaptive import HardwareAdaptivePredictor

    single = HelpPredictor(reference=REFS[:5])
    ens = HelpEnsemble(reference=REFS[:5], members=[{**TINY, "meta_iters": 2}, {**TINY, "meta_iters": 2}])
    for pred in (single, ens):
        assert isinstance(pred, HardwareAdaptivePredictor) and pred.reference_ids() == REFS[:5]
    assert HelpEnsemble().reference_ids() == REFS  # HELP's NB201 set by default, as a single predictor
    ens.meta_fit(tasks())
    assert ens.valid_score_ is None  # no meta-valid devices
    back = io.load_predictor(io.save_predictor(ens, tmp_path / "ens"))
    assert isinstance(back, HardwareAdaptivePredictor) and back.reference_ids() == REFS[:5]
    assert back.feature_spec()["device_embedding"]["reference_archs"] == REFS[:5]


def test_ensemble_encodes_each_arch_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Members, validation rounds and blend-weight choice read one shared encoding cache."""
    calls: list[str] = []
    parse = type(SPACE).parse
    monkeypatch.setattr(type(SPACE), "parse", lambda self, a: (calls.append(a), parse(self, a))[1])
    ens = HelpEnsemble(reference=REFS, members=[{**TINY, "meta_iters": 4, "valid_every": 2}] * 3)
    ens.meta_fit(tasks(), valid_tasks())
    ens.adapt(POOL[:10], np.array([TARGET[a] for a in POOL[:10]]), {a: TARGET[a] for a in REFS})
    ens.predict(QUERY)
    distinct = set(POOL) | set(REFS) | set(QUERY)
    assert sorted(calls) == sorted(distinct)


# --- real data -------------------------------------------------------------------------------------------------

HELP_NB201 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "HELP" / "data" / "nasbench201"


@pytest.mark.slow
@pytest.mark.skipif(not (HELP_NB201 / "latency" / "raspi4.pt").exists(), reason="HELP data not found")
def test_help_protocol_on_two_real_test_devices() -> None:
    """A short meta-training on HELP's 9 source devices already ranks titan_rtx_256 and gold_6226 well."""
    from spaces.fbnet import load_plain_torch_file

    lat = {d: np.asarray(load_plain_torch_file(HELP_NB201 / "latency" / f"{d}.pt"), dtype=np.float64)
           for d in ("1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r", "samsung_a50",
                     "pixel3", "essential_ph_1", "samsung_s7", "titan_rtx_256", "gold_6226")}
    ids = [SPACE.arch_id(SPACE.from_index(i)) for i in range(1900)] + REFS
    ref_rows = list(HELP_NB201_REFERENCE)

    def trimmed(d: str, lo: int, hi: int) -> np.ndarray:
        idx = np.arange(lo, hi)
        order = idx[np.argsort(lat[d][idx], kind="stable")]
        return order[len(idx) // 10: len(idx) * 9 // 10]

    source = {}
    for d in list(lat)[:9]:
        rows = list(trimmed(d, 0, 900))
        source[d] = ([ids[r] for r in rows] + REFS, np.r_[lat[d][rows], lat[d][ref_rows]])
    pred = HelpPredictor(meta_iters=300).meta_fit(source)
    for d in ("titan_rtx_256", "gold_6226"):
        s = np.random.default_rng(0).choice(trimmed(d, 0, 900), 10, replace=False)
        q = trimmed(d, 900, 1900)
        pred.adapt([ids[r] for r in s], lat[d][s], reference=dict(zip(REFS, lat[d][ref_rows], strict=True)))
        assert spearman(pred.predict([ids[r] for r in q]), lat[d][q]) > 0.95
