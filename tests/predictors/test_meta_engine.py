"""The MAML engine (predictors/maml.py): inner loops, learned rates, state round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from predictors.maml import MAML, engine_state, load_engine_state, mlp, rate_for


def _data(n: int = 20, d: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = x @ torch.randn(d, 1, generator=g) + 0.3
    return x, y


def _mse(engine: MAML, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    return float(((engine.forward_with(params, x) - y) ** 2).mean().detach())


def test_sgd_inner_steps_lower_the_support_loss() -> None:
    torch.manual_seed(0)
    engine = MAML(lambda: mlp(5, [16]), inner_lr=0.05, inner_steps=5)
    x, y = _data()
    before = _mse(engine, engine.params(), x, y)
    after = _mse(engine, engine.adapt(x, y, create_graph=False), x, y)
    assert after < before


def test_adapt_leaves_the_meta_parameters_alone() -> None:
    torch.manual_seed(0)
    engine = MAML(lambda: mlp(5, [8]), inner_lr=0.1, inner_steps=3)
    init = {n: p.detach().clone() for n, p in engine.params().items()}
    engine.adapt(*_data(), create_graph=False)
    assert all(torch.equal(init[n], p) for n, p in engine.params().items())


def test_outer_loss_reaches_meta_parameters_and_learned_rates() -> None:
    torch.manual_seed(0)
    engine = MAML(lambda: mlp(5, [8]), inner_lr=0.05, inner_steps=2, learn_inner_lr=True)
    x, y = _data()
    engine.task_loss(x[:10], y[:10], x[10:], y[10:]).backward()
    assert engine.model[0].weight.grad is not None and engine.model[0].weight.grad.abs().sum() > 0
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in engine.lrs.values())


def test_fixed_rates_are_not_trained() -> None:
    engine = MAML(lambda: mlp(5, [8]), learn_inner_lr=False)
    assert not any(v.requires_grad for v in engine.lrs.values())


def test_adapt_names_restrict_the_inner_loop() -> None:
    torch.manual_seed(0)
    engine = MAML(lambda: mlp(5, [8]), inner_lr=0.1, inner_steps=2, adapt_names=["2.weight", "2.bias"])
    adapted = engine.adapt(*_data(), create_graph=False)
    assert torch.equal(adapted["0.weight"], engine.params()["0.weight"])
    assert not torch.equal(adapted["2.weight"], engine.params()["2.weight"])
    with pytest.raises(ValueError, match="no such parameter"):
        MAML(lambda: mlp(5, [8]), adapt_names=["nope"])


def test_gauss_newton_step_solves_a_linear_model_exactly() -> None:
    """With a wide prior, one Gauss-Newton step is ordinary least squares."""
    engine = MAML(lambda: nn.Linear(5, 1), inner_lr=1e4, inner_steps=1, inner="gauss-newton")
    x, y = _data()
    adapted = engine.adapt(x, y, create_graph=False)
    got = np.r_[adapted["weight"].detach().numpy().ravel(), adapted["bias"].detach().numpy()]
    want = np.linalg.lstsq(np.c_[x.numpy(), np.ones(len(x))], y.numpy().ravel(), rcond=None)[0]
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_gauss_newton_prior_shrinks_towards_the_meta_init() -> None:
    x, y = _data()
    wide = MAML(lambda: nn.Linear(5, 1), inner_lr=1e4, inner="gauss-newton")
    narrow = MAML(lambda: nn.Linear(5, 1), inner_lr=1e-4, inner="gauss-newton")
    narrow.load_state_dict(wide.state_dict() | {k: v for k, v in narrow.state_dict().items() if k.startswith("lrs")})
    moved_narrow = (narrow.adapt(x, y, create_graph=False)["weight"] - narrow.params()["weight"]).abs().sum()
    moved_wide = (wide.adapt(x, y, create_graph=False)["weight"] - wide.params()["weight"]).abs().sum()
    assert moved_narrow < 0.01 * moved_wide


def test_gauss_newton_is_differentiable_in_the_meta_parameters() -> None:
    torch.manual_seed(0)
    engine = MAML(lambda: mlp(5, [8]), inner_lr=1.0, inner="gauss-newton", learn_inner_lr=True,
                  adapt_names=["2.weight", "2.bias"])
    x, y = _data()
    engine.task_loss(x[:10], y[:10], x[10:], y[10:]).backward()
    assert engine.model[0].weight.grad.abs().sum() > 0
    assert engine.lrs["2__weight"].grad.abs().sum() > 0


def test_bad_engine_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="inner must be"):
        MAML(lambda: mlp(5, [8]), inner="adam")
    with pytest.raises(ValueError, match="inner_steps"):
        MAML(lambda: mlp(5, [8]), inner_steps=-1)


def test_rate_for_takes_the_longest_prefix() -> None:
    rates = {"": 0.001, "V": 100.0, "mlp.4": 0.1}
    assert rate_for(rates, "V") == 100.0
    assert rate_for(rates, "mlp.4.bias") == 0.1
    assert rate_for(rates, "mlp.0.weight") == 0.001
    assert rate_for(0.5, "anything") == 0.5
    with pytest.raises(ValueError, match="no entry"):
        rate_for({"V": 1.0}, "b")


def test_engine_state_round_trip() -> None:
    torch.manual_seed(0)
    a = MAML(lambda: mlp(5, [8]), learn_inner_lr=True)
    with torch.no_grad():
        for v in a.lrs.values():
            v.uniform_(0.01, 0.1)
    arrays = engine_state(a)
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    torch.manual_seed(1)
    b = MAML(lambda: mlp(5, [8]), learn_inner_lr=True)
    load_engine_state(b, arrays)
    x, y = _data()
    pa, pb = a.adapt(x, y, create_graph=False), b.adapt(x, y, create_graph=False)
    assert all(torch.allclose(pa[n], pb[n]) for n in pa)
    with pytest.raises(ValueError, match="no array"):
        load_engine_state(b, {k: v for k, v in arrays.items() if not k.startswith("lr.")})


def test_torch_threads_sets_and_restores_the_thread_count() -> None:
    from predictors.maml import torch_threads

    before = torch.get_num_threads()
    seen = []

    @torch_threads(1)
    def work() -> None:
        seen.append(torch.get_num_threads())
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        work()
    assert seen == [1] and torch.get_num_threads() == before
