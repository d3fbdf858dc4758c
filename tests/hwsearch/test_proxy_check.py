"""hwsearch.proxy_check: the neighbours, the pure rank/pick metrics on hand-made numbers, and the supernet path
accuracy against the built network it stands for."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from search_helpers import NB_CONFIG, random_data

from hwsearch.proxy_check import (
    blind_regret,
    one_layer_neighbours,
    path_accuracy,
    pick_regret,
    proxy_check,
    rank_correlation,
)
from hwsearch.supernet import build_supernet


def test_one_layer_neighbours_are_the_24_single_edge_changes(nb_space):
    arch = (1, 2, 3, 4, 0, 2)
    cells = one_layer_neighbours(nb_space, arch)
    assert len(cells) == len(set(cells)) == 6 * 4
    assert arch not in cells
    assert all(sum(a != b for a, b in zip(c, arch, strict=True)) == 1 for c in cells)
    with pytest.raises(ValueError):
        one_layer_neighbours(nb_space, (1, 2, 3))


def test_rank_correlation_hand_made():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([4, 3, 2, 1], [10, 20, 30, 40]) == pytest.approx(-1.0)
    assert rank_correlation([1, 1, 2], [1, 2, 3]) == pytest.approx(np.sqrt(3) / 2)  # ties averaged
    assert rank_correlation([5, 5, 5], [1, 2, 3]) is None  # a constant proxy ranks nothing
    assert rank_correlation([1.0], [2.0]) is None
    with pytest.raises(ValueError, match="1-D of one length"):
        rank_correlation([1, 2], [1, 2, 3])


def test_pick_regret_hand_made():
    proxy, true = [90, 80, 70, 95], [60, 70, 72, 50]
    r = pick_regret(proxy, true)
    assert (r["proxy_pick"], r["true_pick"]) == (3, 2)
    assert r["regret"] == pytest.approx(22.0)
    r = pick_regret(proxy, true, allowed=[True, True, False, False])  # the budget keeps cells 0 and 1
    assert (r["n"], r["proxy_pick"], r["true_pick"], r["regret"]) == (2, 0, 1, pytest.approx(10.0))
    assert pick_regret(proxy, true, allowed=[False] * 4) == {"n": 0}
    assert pick_regret(true, true)["regret"] == 0.0  # a perfect proxy loses nothing


def test_blind_regret_hand_made():
    """Front (1, 50), (2, 60), (3, 70); the archs near cost 2 regret 0 (on the front) and 25 (2, 35)."""
    cost, acc = [1.0, 2.0, 2.05, 3.0, 1.96], [50.0, 60.0, 35.0, 70.0, 60.0]
    r = blind_regret(cost, acc, target=2.0, tolerance=0.05)
    assert r["n"] == 3
    assert (r["mean"], r["min"], r["max"]) == (pytest.approx(25 / 3), 0.0, 25.0)
    assert blind_regret(cost, acc, target=10.0)["n"] == 0
    with pytest.raises(ValueError, match="target must be > 0"):
        blind_regret(cost, acc, target=0.0)


def test_path_accuracy_is_the_built_networks_accuracy(nb_space):
    """Without calibration the path is scored exactly as space.build(arch) with the path's weights."""
    net = build_supernet(nb_space, seed=3)
    data = random_data(40, resolution=NB_CONFIG["resolution"], seed=1)
    arch = (3, 2, 1, 4, 3, 2)
    built = nb_space.build(arch)
    built.load_state_dict(net.subnet_state_dict(arch), strict=True)
    built.eval()
    with torch.no_grad():
        expected = 100.0 * float((built(data.images).argmax(1) == data.labels).float().mean())
    assert path_accuracy(net, nb_space, arch, data, batch_size=16) == pytest.approx(expected)


def test_proxy_check_scores_25_cells_and_leaves_the_supernet_alone(nb_space):
    net = build_supernet(nb_space, seed=0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    val, calib = (random_data(30, NB_CONFIG["resolution"], seed=s) for s in (1, 2))
    arch = (3, 3, 1, 2, 4, 3)
    cells = [arch, *one_layer_neighbours(nb_space, arch)]
    truth = {nb_space.arch_id(c): float(i) for i, c in enumerate(cells)}  # the found cell is the worst
    cost = {nb_space.arch_id(c): float(sum(c)) for c in cells}
    check = proxy_check(net, nb_space, arch, val, truth, calibration_data=calib, calibration_n=20,
                        cost=cost, budget=float(sum(arch)), batch_size=16)
    assert check.cells[0] == nb_space.arch_id(arch) and len(check.cells) == 25
    assert all(0.0 <= a <= 100.0 for a in check.proxy_accuracy)
    assert check.found_true_rank == 25
    assert check.spearman is None or -1.0 <= check.spearman <= 1.0
    assert check.pick["best_accuracy"] == 24.0
    in_budget = check.pick_in_budget
    assert in_budget["n"] == sum(sum(c) <= sum(arch) for c in cells)
    assert cost[check.cells[in_budget["true_pick"]]] <= sum(arch)
    assert check.to_dict()["calibration_n"] == 20
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # a copy was calibrated
    del truth[check.cells[7]]
    with pytest.raises(KeyError, match="no true accuracy"):
        proxy_check(net, nb_space, arch, val, truth)
    with pytest.raises(ValueError, match="both cost and budget"):
        proxy_check(net, nb_space, arch, val, {}, cost=cost)
