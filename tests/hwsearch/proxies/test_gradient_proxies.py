"""The gradient proxies (grad_norm, snip, grasp, fisher, synflow, jacob_cov): each scores real networks of two
spaces to a finite, seed-determined value, leaves the model as it was, matches its formula computed by hand
(numpy backprop on a small MLP, closed forms), and SynFlow matches NASLib's stored per-cell values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from proxy_helpers import naslib_cells, needs_naslib
from torch import nn

from hwsearch.proxies import ProxyBatch, ProxyFailure, create_proxy, make_batch, proxy_class, score_arch
from spaces import create_space

NAMES = ("grad_norm", "snip", "grasp", "fisher", "synflow", "jacob_cov")
DATA_PROXIES = tuple(n for n in NAMES if n != "synflow")
def _batch(space, kind="digits", size=16, seed=0):
    return make_batch(kind, space.input_shape(1), size, seed, num_classes=space.num_classes)


def test_registered_with_their_flags():
    for name in NAMES:
        assert proxy_class(name).name == name
    assert proxy_class("synflow").data_free and not proxy_class("synflow").needs_labels
    assert not proxy_class("jacob_cov").data_free and not proxy_class("jacob_cov").needs_labels
    for name in ("grad_norm", "snip", "grasp", "fisher"):
        cls = proxy_class(name)
        assert cls.needs_labels and not cls.data_free and cls.higher_is_better
    assert create_proxy("synflow").describe()["params"] == {"bn": False, "log": True}


@pytest.mark.parametrize("name", NAMES)
def test_scores_nb201_and_mbconv_to_finite_seeded_values(name, nb_small, mb_small):
    proxy = create_proxy(name)
    nb_arch = (3, 1, 2, 3, 4, 3)
    mb_arch = mb_small.sample_unique(1, np.random.default_rng(0))[0]
    for space, arch in ((nb_small, nb_arch), (mb_small, mb_arch)):
        batch = _batch(space, size=8 if space is mb_small else 16)
        first = score_arch(proxy, space, arch, batch, seed=0)
        assert isinstance(first, float) and math.isfinite(first)
        assert score_arch(proxy, space, arch, batch, seed=0) == first
        assert score_arch(proxy, space, arch, batch, seed=1) != first  # another init


@pytest.mark.parametrize("name", NAMES)
def test_default_nb201_cell(name):
    space = create_space("nb201", num_classes=100)
    value = score_arch(create_proxy(name), space, (3, 3, 3, 3, 3, 3), _batch(space, "gaussian", size=8), seed=0)
    assert math.isfinite(value)


@pytest.mark.parametrize("name", DATA_PROXIES)
def test_model_left_as_it_was(name, nb_small):
    from hwsearch.proxies import build_for_proxy

    model = build_for_proxy(nb_small, (3, 1, 2, 3, 4, 3), seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    create_proxy(name).score(model, _batch(nb_small))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats included
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training


def test_a_network_that_ignores_its_input_fails_with_its_name(nb_small):
    """The all-`none` cell cuts every path: the input gradients are zero and their correlation undefined."""
    with pytest.raises(ProxyFailure, match=r"jacob_cov.*\|none~0\|.*constant"):
        score_arch(create_proxy("jacob_cov"), nb_small, (0,) * 6, _batch(nb_small), seed=0)


# --- the formulas by hand: a 2-layer tanh MLP in float64, backpropagated in numpy ---------------------

class MLP(nn.Sequential):
    def __init__(self, d: int = 5, h: int = 4, k: int = 3) -> None:
        super().__init__(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, k))


@pytest.fixture()
def mlp_case():
    torch.manual_seed(3)
    model = MLP().double().train()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(6, 5, generator=gen)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    return model, ProxyBatch(x, y, "gaussian", "test", 3)


def _numpy(model):
    return [t.detach().numpy().astype(np.float64) for t in (model[0].weight, model[0].bias,
                                                             model[2].weight, model[2].bias)]


def _backprop(w1, b1, w2, b2, x, y):
    """Activations and weight gradients of mean CE, by hand: pre-activations a, z and their gradients."""
    a = x @ w1.T + b1
    h = np.tanh(a)
    z = h @ w2.T + b2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(z.shape[1])[y]) / len(x)
    da = (dz @ w2) * (1 - h**2)
    return {"a": a, "z": z, "da": da, "dz": dz, "dw1": da.T @ x, "dw2": dz.T @ h}


def test_grad_norm_snip_fisher_by_hand(mlp_case):
    model, batch = mlp_case
    w1, b1, w2, b2 = _numpy(model)
    x, y = batch.x.numpy().astype(np.float64), batch.y.numpy()
    g = _backprop(w1, b1, w2, b2, x, y)
    grad_norm = np.linalg.norm(g["dw1"]) + np.linalg.norm(g["dw2"])
    snip = np.abs(w1 * g["dw1"]).sum() + np.abs(w2 * g["dw2"]).sum()
    fisher = (0.5 * ((g["a"] * g["da"]) ** 2).mean(0)).sum() * w1.shape[1] \
        + (0.5 * ((g["z"] * g["dz"]) ** 2).mean(0)).sum() * w2.shape[1]
    assert create_proxy("grad_norm").score(model, batch) == pytest.approx(grad_norm, rel=1e-9)
    assert create_proxy("snip").score(model, batch) == pytest.approx(snip, rel=1e-9)
    assert create_proxy("fisher").score(model, batch) == pytest.approx(fisher, rel=1e-9)


def test_grasp_by_finite_differences(mlp_case):
    """Hg by central differences of the hand gradient along g (weights only, biases fixed): −Σ θ⊙Hg."""
    model, batch = mlp_case
    w1, b1, w2, b2 = _numpy(model)
    x, y = batch.x.numpy().astype(np.float64), batch.y.numpy()
    g = _backprop(w1, b1, w2, b2, x, y)
    eps = 1e-5

    def grad_at(s):
        h = _backprop(w1 + s * g["dw1"], b1, w2 + s * g["dw2"], b2, x, y)
        return h["dw1"], h["dw2"]

    (p1, p2), (m1, m2) = grad_at(eps), grad_at(-eps)
    hg1, hg2 = (p1 - m1) / (2 * eps), (p2 - m2) / (2 * eps)
    expected = -(w1 * hg1).sum() - (w2 * hg2).sum()
    assert create_proxy("grasp").score(model, batch) == pytest.approx(expected, rel=1e-6)


def test_jacob_cov_by_hand(mlp_case):
    """J_i = ∂Σ_k z_ik/∂x_i = ((1ᵀW2) ⊙ (1 − h_i²)) W1; score −Σ[log(λ+k) + 1/(λ+k)] of corrcoef(J)."""
    model, batch = mlp_case
    w1, b1, w2, _ = _numpy(model)
    x = batch.x.numpy().astype(np.float64)
    h = np.tanh(x @ w1.T + b1)
    jac = (w2.sum(0) * (1 - h**2)) @ w1
    lam = np.linalg.eigvals(np.corrcoef(jac)).real
    expected = -np.sum(np.log(lam + 1e-5) + 1 / (lam + 1e-5))
    assert create_proxy("jacob_cov").score(model, batch) == pytest.approx(expected, rel=1e-6)


def test_synflow_closed_form_for_two_linear_layers():
    """No biases, all-ones input: R = 1ᵀ|W2||W1|1 and Σ|θ⊙∂R/∂θ| = 2R (each layer contributes R). The BN in
    between is removed (the original variant); the model keeps its signs."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(7, 5, bias=False), nn.BatchNorm1d(5), nn.Linear(5, 3, bias=False))
    with torch.no_grad():
        model[1].running_mean.fill_(10.0)  # would change R if BN stayed
    signs = [torch.sign(p).clone() for p in model.parameters()]
    batch = ProxyBatch(torch.randn(4, 7), torch.zeros(4, dtype=torch.long), "gaussian", "test", 3)
    w1 = model[0].weight.detach().double().abs().numpy()
    w2 = model[2].weight.detach().double().abs().numpy()
    r = np.ones(3) @ w2 @ w1 @ np.ones(7)
    assert create_proxy("synflow").score(model, batch) == pytest.approx(math.log(2 * r), rel=1e-12)
    assert create_proxy("synflow", log=False).score(model, batch) == pytest.approx(2 * r, rel=1e-12)
    assert all(torch.equal(torch.sign(p), s) for p, s in zip(model.parameters(), signs, strict=True))
    model.eval()  # the BN-kept variant (synflow_bn) reads the running statistics here: another value
    assert create_proxy("synflow", bn=True).score(model, batch) != pytest.approx(math.log(2 * r))


@needs_naslib
def test_synflow_matches_naslib_per_cell():
    """NASLib stores log(synflow) of its own random init (BN-free, float64), so values agree up to the init:
    measured over 50 cells x 3 seeds, Spearman 0.998-0.999 and |Δ log| <= 0.28 (median 0.01-0.02). The bounds
    (0.98, 0.75, 0.1) leave room for other inits and would fail on a wrong form (raw sum: Δ ~ 1e19; BN kept,
    or the NB201-string edge order: ranks scramble)."""
    from scipy.stats import spearmanr

    cells = list(naslib_cells().values())[:30]
    space = create_space("nb201", num_classes=100)
    batch = _batch(space, "gaussian", size=2)
    proxy = create_proxy("synflow")
    ref = np.array([c["synflow"]["score"] for _, c in cells])
    ours = np.array([score_arch(proxy, space, arch, batch, seed=0) for arch, _ in cells])
    assert spearmanr(ours, ref)[0] > 0.98
    assert np.abs(ours - ref).max() < 0.75
    assert np.median(np.abs(ours - ref)) < 0.1
