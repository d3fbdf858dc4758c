"""NASWOT, Zen-score and the NTK condition number: they score our spaces' networks, repeat under a seed, and
agree with hand computations (the code kernel of one ReLU, Zen's two forwards with BN momentum, the NTK of a
linear model, per-sample gradients against autograd) and, for NASWOT, with NASLib's per-cell `nwot` by rank."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from proxy_helpers import naslib_cells, needs_naslib
from torch import nn

from hwsearch.proxies import create_proxy, list_proxies, make_batch, proxy_class, score_arch
from hwsearch.proxies.base import ProxyBatch, ProxyFailure
from spaces import create_space
from spaces.errors import UserInputError

NAMES = ("naswot", "zen", "ntk_cond")


def _batch(x: torch.Tensor) -> ProxyBatch:
    return ProxyBatch(x, torch.zeros(len(x), dtype=torch.long), "gaussian", "test tensor", 10)


def _arch(space, seed: int = 0):
    return space.sample_unique(1, np.random.default_rng(seed))[0]


def test_registered_with_their_flags():
    assert set(NAMES) <= set(list_proxies())
    assert proxy_class("zen").data_free and not proxy_class("naswot").data_free
    assert not proxy_class("ntk_cond").higher_is_better
    assert list(create_proxy("ntk_cond").oriented([2.0, 3.0])) == [-2.0, -3.0]


@pytest.mark.parametrize("name", NAMES)
def test_scores_an_nb201_cell_and_an_mbconv_network(name, nb_small, mb_small):
    proxy = create_proxy(name)
    nb = score_arch(proxy, nb_small, _arch(nb_small), make_batch("digits", (3, 32, 32), 16, num_classes=100))
    mb = score_arch(proxy, mb_small, _arch(mb_small), make_batch("gaussian", (3, 64, 64), 8))
    assert math.isfinite(nb) and math.isfinite(mb)


@pytest.mark.parametrize("name", NAMES)
def test_scores_a_default_config_cell(name):
    space = create_space("nb201", C=16, N=5, num_classes=100)
    arch = space.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|")
    assert math.isfinite(score_arch(create_proxy(name), space, arch, make_batch("gaussian", (3, 32, 32), 8)))


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_under_a_seed(name, nb_small):
    arch = _arch(nb_small, 1)
    batch = make_batch("gaussian", (3, 32, 32), 8, seed=3, num_classes=100)
    proxy = create_proxy(name)
    first = score_arch(proxy, nb_small, arch, batch, seed=5)
    assert score_arch(proxy, nb_small, arch, batch, seed=5) == first
    assert score_arch(proxy, nb_small, arch, batch, seed=6) != first


def test_a_cell_cut_off_from_its_input_scores_the_references_worst():
    """An NB201 cell whose output no path reaches outputs zeros: every ReLU code is the same for all samples
    (NASWOT's K is singular: -inf, numpy's slogdet in the reference), Zen's features do not move (log 0 = -inf),
    and the NTK is zero (0/0, NaN: the reference's 1e5)."""
    space = create_space("nb201", C=8, N=1, num_classes=100)
    arch = space.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|none~1|none~2|")
    batch = make_batch("gaussian", (3, 32, 32), 8, num_classes=100)
    assert score_arch(create_proxy("naswot"), space, arch, batch) == -math.inf
    assert score_arch(create_proxy("zen"), space, arch, batch) == -math.inf
    assert score_arch(create_proxy("ntk_cond"), space, arch, batch) == 1e5


# --- NASWOT -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("relu", [nn.ReLU(), nn.ReLU(inplace=True), nn.ReLU6(), nn.ReLU6(inplace=True)])
def test_naswot_kernel_of_one_relu_counts_agreeing_codes(relu):
    from hwsearch.proxies.naswot import naswot_kernel

    x = torch.randn(6, 40, generator=torch.Generator().manual_seed(0))
    codes = (x > 0).numpy()
    agree = np.array([[np.sum(codes[i] == codes[j]) for j in range(6)] for i in range(6)], dtype=float)
    k = naswot_kernel(nn.Sequential(nn.Linear(40, 40), relu, nn.Linear(40, 3))[1:], x.clone())
    np.testing.assert_array_equal(k.numpy(), agree)
    value = create_proxy("naswot").score(nn.Sequential(relu), _batch(x.clone()))
    assert value == pytest.approx(np.linalg.slogdet(agree)[1], rel=1e-12)


def test_naswot_counts_every_relu_call_and_refuses_a_network_without_relu_modules():
    from hwsearch.proxies.naswot import naswot_kernel

    x = torch.randn(5, 7)
    one = naswot_kernel(nn.Sequential(nn.ReLU()), x)
    two = naswot_kernel(nn.Sequential(nn.ReLU(), nn.Identity(), nn.ReLU()), x)
    torch.testing.assert_close(two, 2 * one)

    class Functional(nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return torch.relu(t)

    with pytest.raises(ValueError, match="no ReLU module"):
        create_proxy("naswot").score(Functional(), _batch(x))


def _naslib_cells(n: int):
    """n NASLib cifar100 cells (fixed pick) as our archs, with their `nwot` scores."""
    cells = naslib_cells()
    keys = sorted(cells)
    picked = [cells[keys[i]] for i in np.random.default_rng(0).choice(len(keys), n, replace=False)]
    return [arch for arch, _ in picked], np.array([cell["nwot"]["score"] for _, cell in picked])


@needs_naslib
@pytest.mark.parametrize("kind", ["digits", "gaussian"])
def test_naswot_ranks_cells_as_naslib_nwot_does(kind):
    """NASLib scored real CIFAR-100 batches and we have none: compare by rank. Small config (C=8, N=1) and a
    batch of 32 to stay fast; the default config's figures are in the closing note."""
    from scipy.stats import spearmanr

    space = create_space("nb201", C=8, N=1, num_classes=100)
    archs, ref = _naslib_cells(30)
    batch = make_batch(kind, (3, 32, 32), 32, seed=0, num_classes=100)
    ours = [score_arch(create_proxy("naswot"), space, a, batch) for a in archs]
    assert spearmanr(ours, ref)[0] > 0.8  # measured 0.93-0.95 (digits), 0.88-0.90 (gaussian) over seeds 0-2


# --- Zen-score ----------------------------------------------------------------------------------------------

def test_zen_of_a_toy_by_hand():
    """Conv 1x1 -> BN -> ReLU -> GAP -> FC: the score from the re-initialised weights, the same x and x2, and
    the running variance moved twice by momentum 0.1 from 1."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=True), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    shape = (6, 3, 5, 5)
    value = create_proxy("zen", seed=11).score(model, _batch(torch.zeros(shape)))

    gen = torch.Generator().manual_seed(11)
    w = torch.empty(4, 3, 1, 1).normal_(generator=gen)
    torch.empty(2, 4).normal_(generator=gen)  # the FC weight, drawn next in module order
    x, x2 = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    torch.testing.assert_close(model[0].weight, w)
    assert float(model[0].bias.detach().abs().sum()) == 0.0

    def features(t):
        y = torch.einsum("oc,bchw->bohw", w[:, :, 0, 0], t)
        mean, var = y.mean((0, 2, 3), keepdim=True), y.var((0, 2, 3), unbiased=False, keepdim=True)
        return torch.relu((y - mean) / torch.sqrt(var + 1e-5)), y.var((0, 2, 3), unbiased=True)

    f1, v1 = features(x)
    f2, v2 = features(x + 1e-2 * x2)
    delta = (f1 - f2).abs().sum((1, 2, 3)).mean()
    running = 0.9 * (0.9 * 1.0 + 0.1 * v1) + 0.1 * v2
    assert value == pytest.approx(float(torch.log(delta) + torch.log(torch.sqrt(running.mean()))), rel=1e-5)


def test_zen_reads_the_input_of_the_global_pool(nb_small):
    from hwsearch.proxies._activations import pre_gap_features

    model = nb_small.build(_arch(nb_small)).train()
    seen = []
    model.lastact.register_forward_hook(lambda _m, _a, out: seen.append(out))
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(pre_gap_features(model, x), seen[0])


def test_zen_refuses_a_network_without_a_global_pool_and_a_missing_batch():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    with pytest.raises(ValueError, match="no global average pool"):
        create_proxy("zen").score(model, _batch(torch.zeros(2, 3, 8, 8)))
    with pytest.raises(UserInputError, match="shape"):
        create_proxy("zen").score(model, None)
    with pytest.raises(UserInputError, match="repeat"):
        create_proxy("zen", repeat=0)


def test_zen_repeats_average_and_keep_the_running_variance(nb_small):
    """repeat=2 is the mean of two passes whose second starts from the running variance the first left."""
    arch = _arch(nb_small, 2)
    batch = make_batch("gaussian", (3, 32, 32), 8)
    model = nb_small.build(arch)
    two = create_proxy("zen", repeat=2, seed=4).score(model, batch)
    from hwsearch.proxies.zen import zen_once

    fresh = nb_small.build(arch)
    gen = torch.Generator().manual_seed(4)
    a = zen_once(fresh, tuple(batch.x.shape), gen, 1e-2)
    b = zen_once(fresh, tuple(batch.x.shape), gen, 1e-2)
    assert two == pytest.approx((a + b) / 2, rel=1e-6)


# --- NTK condition number -----------------------------------------------------------------------------------

@pytest.mark.parametrize("bn", ["frozen", "batch"])
def test_ntk_cond_of_a_linear_model_is_the_cond_of_x_xt(bn):
    """Logits W x + b summed: the weight gradient of sample i is x_i in every row of W (the bias is not a
    "weight"), so NTK = K * X X^T and its condition number is that of X X^T."""
    x = torch.randn(6, 10, generator=torch.Generator().manual_seed(1))
    value = create_proxy("ntk_cond", bn=bn).score(nn.Linear(10, 3), _batch(x))
    eig = np.linalg.eigvalsh(x.double().numpy() @ x.double().numpy().T)
    assert value == pytest.approx(eig[-1] / eig[0], rel=1e-6)


def test_ntk_cond_of_a_singular_kernel_is_the_reference_sentinel():
    x = torch.randn(4, 10)
    x[3] = x[0]
    assert create_proxy("ntk_cond").score(nn.Linear(10, 2), _batch(x)) == 1e5


def _weights(model):
    return [p for n, p in model.named_parameters() if "weight" in n]


def test_ntk_frozen_per_sample_gradients_are_each_samples_autograd_gradient(nb_small):
    """Row i = the gradient of sample i's summed logits with the batch's BN statistics held: the same sample
    alone, in eval mode with running_mean/var set to the batch's statistics, through plain autograd."""
    from hwsearch.proxies.ntk import per_sample_gradients

    model = nb_small.build(_arch(nb_small, 3)).double().train()  # float64: the comparison is exact to 1e-9
    x = torch.randn(5, 3, 32, 32, dtype=torch.float64)
    g = per_sample_gradients(model, x, "frozen")

    inside = model(x).detach()

    def copy_batch_stats(mod: nn.Module, args: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        # after the BN ran (its own momentum update would otherwise blend into what is copied)
        mod.running_mean.copy_(args[0].mean((0, 2, 3)))
        mod.running_var.copy_(args[0].var((0, 2, 3), unbiased=False))

    handles = [m.register_forward_hook(copy_batch_stats) for m in model.modules()
               if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        model.train()(x)
    for h in handles:
        h.remove()
    model.eval()
    for i in (0, 3):
        out = model(x[i:i + 1])
        torch.testing.assert_close(out.detach(), inside[i:i + 1], rtol=1e-9, atol=1e-9)
        grads = torch.autograd.grad(out.sum(), _weights(model))
        torch.testing.assert_close(g[i], torch.cat([t.reshape(-1) for t in grads]), rtol=1e-9, atol=1e-9)


def test_ntk_batch_gradients_are_te_nas_backward_loop():
    """bn="batch" is TE-NAS's loop exactly: one train-mode forward, then backward of each sample's logits with
    ones, gradients through the batch statistics included."""
    from hwsearch.proxies.ntk import per_sample_gradients

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 3))
    x = torch.randn(5, 3, 6, 6)
    g = per_sample_gradients(model, x, "batch")
    logits = model.train()(x)
    for i in range(5):
        grads = torch.autograd.grad(logits[i:i + 1], _weights(model), torch.ones_like(logits[i:i + 1]),
                                    retain_graph=True)
        torch.testing.assert_close(g[i], torch.cat([t.reshape(-1) for t in grads]), rtol=1e-4, atol=1e-6)
    frozen = per_sample_gradients(model, x, "frozen")
    assert not torch.allclose(frozen, g, rtol=1e-3, atol=1e-5)  # the statistics' path is not nothing


def test_ntk_refuses_an_unknown_bn_mode():
    with pytest.raises(UserInputError, match="bn"):
        create_proxy("ntk_cond", bn="train")


def test_a_failing_network_is_named(nb_small):
    """A proxy failure names the network (score_arch): Zen on a space whose network has no global pool."""
    from hwsearch.proxies import build_for_proxy

    class MeanPool(nn.Module):  # a global average no hook can tell from any other module
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return t.mean((2, 3), keepdim=True)

    def no_pool(space, arch, seed):
        model = build_for_proxy(space, arch, seed)
        model.pool = MeanPool()
        return model

    arch = _arch(nb_small)
    with pytest.raises(ProxyFailure, match=r"zen.*nb201.*no global average pool"):
        score_arch(create_proxy("zen"), nb_small, arch, make_batch("gaussian", (3, 32, 32), 4), build=no_pool)
