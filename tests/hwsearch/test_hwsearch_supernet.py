"""Single-path supernets: shapes, exact equality with space.build, and gradients only on the chosen path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwsearch.gumbel import arch_onehot, hard_gumbel
from hwsearch.supernet import build_supernet
from spaces import create_space
from spaces.mbconv import SKIP

SPACES = {
    "nb201": {"C": 4, "N": 1, "resolution": 16},
    "mbconv-small": {"width_mult": 0.25, "resolution": 32, "stage_repeats": [1, 1, 1, 1, 1, 1]},
}


@pytest.fixture(scope="module", params=sorted(SPACES))
def space_net(request):
    torch.set_num_threads(1)
    space = create_space(request.param, **SPACES[request.param])
    return space, build_supernet(space, seed=0)


def _archs(space, n=3):
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(n)]
    if space.name.startswith("mbconv"):  # skip at the stride-2 first layer and at a shape-keeping layer
        archs.append((SKIP, 0, SKIP, 1, 2, SKIP))
    return archs


def test_output_shape(space_net):
    space, net = space_net
    x = torch.randn(space.input_shape(2))
    for arch in _archs(space):
        assert net(x, arch_onehot(arch, space.n_ops)).shape == (2, space.num_classes)


def test_path_computes_exactly_what_build_computes(space_net):
    """Weights of the path loaded into space.build(arch): the same outputs, skip layers included."""
    space, net = space_net
    x = torch.randn(space.input_shape(3), generator=torch.Generator().manual_seed(0))
    for arch in _archs(space):
        paths = arch_onehot(arch, space.n_ops)
        net.train()
        with torch.no_grad():
            net(x, paths)  # move the BN running stats off their initial values
        net.eval()
        built = space.build(arch)
        built.load_state_dict(net.subnet_state_dict(arch), strict=True)
        with torch.no_grad():
            torch.testing.assert_close(net(x, paths), built(x), rtol=0, atol=0)


def test_only_the_chosen_path_gets_gradients(space_net):
    space, net = space_net
    net.train()
    x = torch.randn(space.input_shape(2))
    for arch in _archs(space):
        net.zero_grad(set_to_none=True)
        net(x, arch_onehot(arch, space.n_ops)).square().mean().backward()
        with_grad = {name for name, p in net.named_parameters() if p.grad is not None}
        assert with_grad == net.path_parameter_names(arch)
        assert len(with_grad) < len(list(net.parameters()))


def test_ste_weight_carries_gradient_to_alpha(space_net):
    space, net = space_net
    alpha = torch.zeros(space.n_layers, space.n_ops, requires_grad=True)
    paths = hard_gumbel(alpha, 5.0, torch.Generator().manual_seed(2))
    net(torch.randn(space.input_shape(2)), paths).square().mean().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0


def test_nb201_choice_is_shared_by_all_cells():
    space = create_space("nb201", C=4, N=2, resolution=16)
    net = build_supernet(space)
    cells = [m for m in net.cells if type(m).__name__ == "SuperCell"]
    assert len(cells) == 6  # 3 stages x N, all reading the one [6, 5] path
    arch = (3, 2, 1, 3, 4, 2)
    net.zero_grad(set_to_none=True)
    net(torch.randn(2, 3, 16, 16), arch_onehot(arch, 5)).sum().backward()
    for cell in cells:
        for e, ops in enumerate(cell.edges):
            for k, op in enumerate(ops):
                got = [p.grad is not None for p in op.parameters()]
                assert all(got) if k == arch[e] else not any(got)


def test_bad_inputs():
    space = create_space("nb201", C=4, N=1, resolution=16)
    with pytest.raises(ValueError, match="shape"):
        build_supernet(space)(torch.randn(1, 3, 16, 16), torch.zeros(5, 5))
    with pytest.raises(ValueError, match="no supernet for space 'fbnet'"):
        build_supernet(create_space("fbnet"))
