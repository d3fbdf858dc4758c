"""The mlp-ensemble predictor: its mean and spread are the members', bootstrap makes members differ, it saves
and loads like any predictor, and gradients flow through its mean (what LightNAS differentiates)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from predictors.base import InvalidParameterError
from predictors.ensemble import MLPEnsemble, relative_spread
from predictors.io import load_predictor, save_predictor
from predictors.registry import create_predictor, list_predictors
from spaces import create_space

CONFIG = {"C": 4, "N": 1, "resolution": 16}


@pytest.fixture(scope="module")
def data():
    space = create_space("nb201", **CONFIG)
    archs = space.sample_unique(60, np.random.default_rng(0))
    ids = [space.arch_id(a) for a in archs]
    y = np.array([1.0 + 0.3 * sum(a) + 0.1 * a[0] * a[5] for a in archs])
    return ids, y


@pytest.fixture(scope="module")
def fitted(data):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return create_predictor("mlp-ensemble", space="nb201", space_config=CONFIG, epochs=15, members=3,
                                hidden=(16,)).fit(*data)
    finally:
        torch.set_num_threads(threads)


def test_registered_and_mean_and_spread_are_the_members(fitted, data):
    assert "mlp-ensemble" in list_predictors(supervised=True)
    ids = data[0][:10]
    members = fitted.member_predictions(ids)
    assert members.shape == (3, 10)
    np.testing.assert_allclose(fitted.predict(ids), members.mean(0), rtol=1e-6)
    np.testing.assert_allclose(fitted.disagreement(ids), members.std(0) / members.mean(0), rtol=1e-6)
    assert (fitted.disagreement(ids) > 0).all()  # bootstrap resamples and seeds make the members differ
    assert fitted.members_[0].seed == 0 and fitted.members_[2].seed == 2


def test_relative_spread_is_zero_when_members_agree():
    np.testing.assert_allclose(relative_spread(np.array([[2.0, 1.0], [2.0, 3.0]])), [0.0, 0.5])


def test_bootstrap_off_members_differ_by_seed_only(data):
    ens = MLPEnsemble(space="nb201", space_config=CONFIG, epochs=2, members=2, hidden=(8,), bootstrap=False)
    ens.fit(*data)
    one = create_predictor("mlp", space="nb201", space_config=CONFIG, epochs=2, hidden=(8,), seed=1).fit(*data)
    np.testing.assert_allclose(ens.member_predictions(data[0][:5])[1], one.predict(data[0][:5]), rtol=1e-6)


def test_save_load_round_trip(fitted, data, tmp_path):
    folder = save_predictor(fitted, tmp_path / "ens", devices="toy-cpu")
    loaded = load_predictor(folder)
    assert isinstance(loaded, MLPEnsemble) and loaded.members == 3
    np.testing.assert_allclose(loaded.member_predictions(data[0]), fitted.member_predictions(data[0]), rtol=1e-6)


def test_gradients_flow_through_the_mean(fitted, data):
    head = fitted.torch_model()
    x = torch.tensor(fitted.encode(data[0][:4]), requires_grad=True)
    out = head(x)
    np.testing.assert_allclose(out.detach().numpy(), fitted.predict(data[0][:4]), rtol=1e-5)
    assert head.member_predictions(x).shape == (3, 4)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize(("params", "name"), [({"members": 1}, "members"), ({"bootstrap": 1}, "bootstrap"),
                                              ({"epochs": 0}, "epochs")])
def test_invalid_parameters_are_named(data, params, name):
    with pytest.raises(InvalidParameterError, match=f"'{name}'"):
        MLPEnsemble(space="nb201", space_config=CONFIG, **params).fit(*data)
