"""Gumbel single-path sampling, the temperature schedule and the argmax derivation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from hwsearch.gumbel import FBNET_DECAY, arch_onehot, derive_arch, hard_gumbel, ordered_samples, tau_schedule


def test_sample_is_one_hot_per_layer():
    alpha = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    sample = hard_gumbel(alpha, 1.0, torch.Generator().manual_seed(1))
    assert sample.shape == (6, 5)
    assert set(sample.detach().unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(sample.detach().sum(-1), torch.ones(6))


def test_same_seed_same_paths_and_noise_varies():
    alpha = torch.zeros(21, 7)
    a = [hard_gumbel(alpha, 5.0, g).argmax(-1) for g in [torch.Generator().manual_seed(3)] * 4]
    b = [hard_gumbel(alpha, 5.0, g).argmax(-1) for g in [torch.Generator().manual_seed(3)] * 4]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(a[0], x) for x in a[1:])  # successive draws differ


@pytest.mark.parametrize("literal", [False, True])
def test_straight_through_gradient_reaches_alpha(literal):
    alpha = torch.zeros(4, 3, requires_grad=True)
    weights = torch.tensor([1.0, 2.0, 3.0])
    sample = hard_gumbel(alpha, 2.0, torch.Generator().manual_seed(0), literal=literal)
    (sample * weights).sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0
    # the forward value stays exactly one-hot although the gradient is the soft sample's
    assert torch.equal(sample.detach(), torch.nn.functional.one_hot(sample.argmax(-1), 3).float())


def test_literal_form_differs_from_standard():
    """A converged row (α = 10 on op 0, K = 7): the standard form picks op 0 almost always, the thesis'
    literal eq. 4.7 (noise on probabilities) only ~e/(e+6) = 31% of the time."""
    alpha = torch.zeros(1, 7)
    alpha[0, 0] = 10.0
    gen_std, gen_lit = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    n = 2000
    std = sum(int(hard_gumbel(alpha, 1.0, gen_std)[0, 0]) for _ in range(n)) / n
    lit = sum(int(hard_gumbel(alpha, 1.0, gen_lit, literal=True)[0, 0]) for _ in range(n)) / n
    assert std > 0.99
    assert abs(lit - math.e / (math.e + 6)) < 0.04


def test_tau_schedule_fbnet_decay():
    taus = [tau_schedule(e, 10) for e in range(10)]
    assert taus[0] == 5.0
    assert taus[1] == pytest.approx(5.0 * math.exp(-0.045))
    assert pytest.approx(0.956, abs=1e-3) == FBNET_DECAY
    assert all(a > b for a, b in itertools.pairwise(taus))


def test_tau_schedule_towards_zero():
    taus = [tau_schedule(e, 8, tau0=5.0, tau_end=0.05) for e in range(8)]
    assert taus[0] == 5.0 and taus[-1] == pytest.approx(0.05)
    assert all(a > b for a, b in itertools.pairwise(taus))
    with pytest.raises(ValueError, match="epoch"):
        tau_schedule(8, 8)
    with pytest.raises(ValueError, match="tau_end"):
        tau_schedule(0, 8, tau_end=6.0)


def test_derive_arch_and_onehot():
    alpha = torch.tensor([[0.1, 0.9, 0.0], [2.0, -1.0, 0.5]])
    assert derive_arch(alpha) == (1, 0)
    torch.testing.assert_close(arch_onehot((1, 0), 3), torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="layers, ops"):
        derive_arch(torch.zeros(3))


@pytest.mark.parametrize(("layers", "ops", "seed"), [(21, 7, 0), (6, 5, 1), (3, 2, 7)])
def test_ordered_samples_cover_every_layer_op_exactly_once(layers, ops, seed):
    """SurgeNAS fairness: K samples per iteration, together one of every (layer, op), on any α and seed."""
    g = torch.Generator().manual_seed(seed)
    alpha = torch.randn(layers, ops, generator=g) * 3  # strongly preferred ops must still yield their turn
    samples = ordered_samples(alpha, 0.5, g)
    assert len(samples) == ops
    for s in samples:
        assert set(s.detach().unique().tolist()) <= {0.0, 1.0}
        torch.testing.assert_close(s.detach().sum(-1), torch.ones(layers))
    torch.testing.assert_close(sum(s.detach() for s in samples), torch.ones(layers, ops))


def test_ordered_samples_gradient_reaches_every_op_and_follows_alpha():
    alpha = torch.zeros(5, 4, requires_grad=True)
    weights = torch.arange(20, dtype=torch.float32).reshape(5, 4)
    samples = ordered_samples(alpha, 1.0, torch.Generator().manual_seed(0))
    sum((s * weights).sum() for s in samples[:-1]).backward()
    assert alpha.grad is not None and torch.isfinite(alpha.grad).all()
    assert (alpha.grad.abs() > 0).all()
    # the first draw follows α: a strongly preferred op is drawn first
    strong = torch.zeros(5, 4)
    strong[:, 2] = 20.0
    first = ordered_samples(strong, 1.0, torch.Generator().manual_seed(1))[0]
    assert first.argmax(-1).tolist() == [2] * 5


def test_ordered_samples_refuses_bad_input():
    with pytest.raises(ValueError, match="tau"):
        ordered_samples(torch.zeros(2, 3), 0.0, torch.Generator())
    with pytest.raises(ValueError, match="layers, ops"):
        ordered_samples(torch.zeros(3), 1.0, torch.Generator())


def test_ordered_samples_are_fair_on_any_seed_and_alpha():
    """200 iterations on mbconv's 21x7 and nb201's 6x5 with random, peaked α and τ from 1 to 0.05: every
    (layer, op) drawn exactly once per iteration, whatever the noise."""
    for layers, ops in ((21, 7), (6, 5)):
        g = torch.Generator().manual_seed(layers)
        counts = torch.zeros(layers, ops)
        for it in range(200):
            alpha = torch.randn(layers, ops, generator=g) * (1 + it % 7)
            tau = 0.05 ** (it / 199)
            counts += sum(s.detach() for s in ordered_samples(alpha, tau, g))
        assert torch.equal(counts, torch.full((layers, ops), 200.0))
