"""The predictor contract (predictors/base.py) for every registered kind, and what each supervised kind adds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from predictors.base import InvalidParameterError, NotFittedError
from predictors.baselines import arch_costs
from predictors.gnn import graph_map
from predictors.io import load_predictor, save_predictor
from predictors.registry import UnknownPredictorError, create_predictor, list_predictors, predictor_class
from spaces import create_space

# Small hyper-parameters per supervised kind, so each fit takes well under a second.
FAST = {
    "mlp": {"epochs": 5},
    "gnn": {"epochs": 3},
    "gcn": {"epochs": 3, "hidden": 32},
    "gbdt": {"n_estimators": 20, "max_depth": 3},
    "lut": {},
    "flops": {},
    "params": {},
}
SUPERVISED = sorted(FAST)
# One invalid value per kind: (parameter, value); the error must name the parameter.
INVALID = {
    "mlp": ("hidden", [128, 0]),
    "gnn": ("hidden", 0),
    "gcn": ("layers", 0),
    "gbdt": ("subsample", 0.0),
    "lut": ("space", "no-such-space"),
    "flops": ("seed", -1),
    "params": ("space_config", {"C": -4}),
}


def synthetic(space: str, n: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """n distinct archs with an additive latency (a known per-(layer, op) table plus 2 ms)."""
    sp = create_space(space)
    rng = np.random.default_rng(seed)
    table = rng.uniform(0.1, 1.0, size=(sp.n_layers, sp.n_ops))
    archs = sp.sample_unique(n, rng)
    y = np.array([2.0 + table[np.arange(sp.n_layers), a].sum() for a in archs])
    return [sp.arch_id(a) for a in archs], y, table


@pytest.fixture(scope="module")
def nb201_data() -> tuple[list[str], np.ndarray]:
    ids, y, _ = synthetic("nb201", 40)
    return ids, y


@pytest.fixture(scope="module")
def fitted(nb201_data):
    """One fitted predictor per supervised kind on the same 40 NB201 archs (fitted once per module)."""
    ids, y = nb201_data
    return {kind: create_predictor(kind, **FAST[kind]).fit(ids, y) for kind in SUPERVISED}


def test_registry_lists_the_supervised_kinds():
    assert set(SUPERVISED) <= set(list_predictors())
    assert list_predictors() == sorted(list_predictors())
    for kind in SUPERVISED:
        assert predictor_class(kind).kind == kind


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(UnknownPredictorError, match=r"unknown predictor kind 'gnnn'.*known: .*gnn.*did you mean 'gnn'"):
        create_predictor("gnnn")
    assert issubclass(UnknownPredictorError, KeyError)


def test_create_predictor_refuses_unknown_parameters():
    with pytest.raises(InvalidParameterError, match="'epoch'"):
        create_predictor("mlp", epoch=3)


@pytest.mark.parametrize("kind", list_predictors())
def test_params_clone_and_repr(kind):
    pred = create_predictor(kind)
    params = pred.get_params()
    assert list(params) == type(pred)._param_names()
    assert {"space", "space_config", "seed"} <= set(params)
    assert pred.set_params(seed=7) is pred and pred.get_params()["seed"] == 7
    twin = pred.clone()
    assert type(twin) is type(pred) and twin is not pred and twin.get_params() == pred.get_params()
    assert repr(pred).startswith(type(pred).__name__ + "(")
    with pytest.raises(InvalidParameterError, match="no_such_param"):
        pred.set_params(no_such_param=1)


@pytest.mark.parametrize("kind", list_predictors())
def test_predict_before_fit_raises(kind):
    with pytest.raises(NotFittedError):
        create_predictor(kind).predict(["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])


@pytest.mark.parametrize("kind", SUPERVISED)
def test_invalid_parameter_named_at_fit(kind, nb201_data):
    name, value = INVALID[kind]
    pred = create_predictor(kind, **FAST[kind]).set_params(**{name: value})
    with pytest.raises(InvalidParameterError, match=f"'{name}'"):
        pred.fit(*nb201_data)


@pytest.mark.parametrize("kind", SUPERVISED)
def test_fit_predict_and_input_checks(kind, fitted, nb201_data):
    ids, y = nb201_data
    pred = fitted[kind]
    out = pred.predict(ids)
    assert out.shape == (len(ids),) and out.dtype == np.float64 and np.all(np.isfinite(out))
    assert pred.clone().get_params() == pred.get_params() and not hasattr(pred.clone(), "fitted_")
    with pytest.raises(NotFittedError):
        pred.clone().predict(ids)
    fresh = create_predictor(kind, **FAST[kind])
    with pytest.raises(ValueError, match="latencies"):
        fresh.fit(ids, -y)
    with pytest.raises(ValueError, match="got 40 archs but 39"):
        fresh.fit(ids, y[:-1])


@pytest.mark.parametrize("kind", ["mlp", "gnn", "gbdt"])
def test_refit_is_seeded_and_forgets(kind, nb201_data):
    ids, y = nb201_data
    a = create_predictor(kind, **FAST[kind]).fit(ids, y)
    b = create_predictor(kind, **FAST[kind]).fit(ids[:20], y[:20]).fit(ids, y)  # the first fit is forgotten
    np.testing.assert_array_equal(a.predict(ids), b.predict(ids))
    state = torch.random.get_rng_state()
    create_predictor(kind, **FAST[kind], seed=1).fit(ids, y)
    assert torch.equal(state, torch.random.get_rng_state())  # fitting leaves torch's global RNG alone


@pytest.mark.parametrize("kind", SUPERVISED)
def test_save_load_round_trip(kind, fitted, nb201_data, tmp_path):
    ids, _ = nb201_data
    pred = fitted[kind]
    folder = save_predictor(pred, tmp_path / kind, metrics={"spearman": 0.9}, data_fingerprint="abc",
                            devices=["raspi4"])
    loaded = load_predictor(folder)
    assert type(loaded) is type(pred) and loaded.get_params() == pred.get_params()
    np.testing.assert_array_equal(loaded.predict(ids), pred.predict(ids))
    card = loaded.card_
    assert card["kind"] == kind and card["devices"] == ["raspi4"] and card["data_fingerprint"] == "abc"
    assert card["space"] == {"name": "nb201", "config": create_space("nb201").config}
    assert card["features"]["encoding"] in ("onehot", "costs")


def test_gbdt_loaded_predicts_exactly_as_sklearn(fitted, nb201_data, tmp_path):
    ids, _ = nb201_data
    pred = fitted["gbdt"]
    sp = create_space("nb201")
    others = [sp.arch_id(a) for a in sp.sample_unique(200, np.random.default_rng(5))]
    loaded = load_predictor(save_predictor(pred, tmp_path / "gbdt"))
    for batch in (ids, others):
        x = pred.encode(batch)
        np.testing.assert_array_equal(loaded.predict(batch), pred.scaler_.invert(pred.estimator_.predict(x)))
    assert not hasattr(loaded, "estimator_")  # the loaded one predicts from arrays only


def test_lut_recovers_an_additive_table():
    ids, y, table = synthetic("nb201", 120, seed=3)
    lut = create_predictor("lut").fit(ids, y)
    np.testing.assert_allclose(lut.predict(ids), y, rtol=1e-9)
    # reported with the cheapest op of each layer at 0: the offset is 2 ms plus the per-layer minima
    np.testing.assert_allclose(lut.table_ms_, table - table.min(axis=1, keepdims=True), atol=1e-9)
    assert lut.offset_ms_ == pytest.approx(2.0 + table.min(axis=1).sum())
    assert lut.table_ms_.min() == pytest.approx(0.0, abs=1e-12)


def test_cost_counts_on_meta_device_equal_the_space_counter():
    sp = create_space("nb201")
    arch = sp.from_index(123)
    assert arch_costs("nb201", None, sp.arch_id(arch)) == sp.costs(arch)


def test_flops_predictor_is_linear_in_flops(fitted, nb201_data):
    ids, _ = nb201_data
    pred = fitted["flops"]
    flops = np.array([arch_costs("nb201", None, a)["flops"] for a in ids])
    np.testing.assert_allclose(pred.predict(ids), pred.coef_[0] + pred.coef_[1] * flops)


def test_graph_map_reproduces_to_graph():
    for name in ("nb201", "mbconv-small", "fbnet"):
        sp = create_space(name)
        adj, base, weight = graph_map(sp)
        for arch in sp.sample_unique(5, np.random.default_rng(1)):
            a, feats = sp.to_graph(arch)
            np.testing.assert_array_equal(adj, a)
            np.testing.assert_allclose((base.reshape(-1) + sp.to_onehot(arch) @ weight).reshape(base.shape), feats)


@pytest.mark.parametrize(("kind", "space"), [("mlp", "nb201"), ("mlp", "mbconv-small"), ("gnn", "nb201"),
                                             ("gnn", "mbconv-small"), ("gcn", "mbconv-small")])
def test_torch_model_is_differentiable_in_the_onehot(kind, space):
    ids, y, _ = synthetic(space, 30)
    pred = create_predictor(kind, space=space, **FAST[kind]).fit(ids, y)
    model = pred.torch_model()
    onehot = torch.from_numpy(pred.encode(ids)).requires_grad_(True)
    ms = model(onehot)
    np.testing.assert_allclose(ms.detach().numpy(), pred.predict(ids), rtol=1e-5)
    ms.sum().backward()
    assert onehot.grad is not None and onehot.grad.shape == onehot.shape
    assert torch.all(torch.isfinite(onehot.grad)) and onehot.grad.abs().sum() > 0
    # a relaxed (soft) one-hot, as a differentiable search feeds it, works too; 300 rows also take the
    # graph nets' chunked path, which must give what the in-place no-grad path gives
    sp = create_space(space)
    gen = torch.Generator().manual_seed(0)
    soft = torch.softmax(torch.randn(300, sp.n_layers, sp.n_ops, generator=gen), dim=-1).reshape(300, -1)
    soft.requires_grad_(True)
    out = model(soft)
    out.sum().backward()
    assert soft.grad is not None and torch.all(torch.isfinite(soft.grad)) and soft.grad[-1].abs().sum() > 0
    with torch.inference_mode():
        np.testing.assert_allclose(model(soft).numpy(), out.detach().numpy(), rtol=1e-5)
        np.testing.assert_allclose(model(soft[-3:]).numpy(), out[-3:].detach().numpy(), rtol=1e-5)
    # the module is a copy: training it does not change the predictor
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    np.testing.assert_allclose(pred.torch_model()(onehot).detach().numpy(), pred.predict(ids), rtol=1e-5)
