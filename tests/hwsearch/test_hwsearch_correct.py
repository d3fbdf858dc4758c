"""The closed loop: probes correct the predictor locally, and the loop stops once the board agrees."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hwsearch import Probe, close_loop, lut_cost_model
from hwsearch.correct import corrected, hamming, neighbourhood, next_probe
from spaces import create_space
from spaces.nb201 import OPS


def test_neighbourhood_is_every_arch_one_or_two_layers_away() -> None:
    arch = (0, 1, 2, 3, 4, 0)
    one = neighbourhood(arch, 5, 1)
    two = neighbourhood(arch, 5, 2)
    assert len(one) == 6 * 4 and len(two) == 6 * 4 + 15 * 16
    assert len({tuple(r) for r in two}) == len(two)
    d = hamming(two, arch)
    assert d.min() == 1 and d.max() == 2 and (hamming(one, arch) == 1).all()


def test_correction_takes_the_nearest_probes_ratio() -> None:
    archs = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 1]])
    pred = np.array([10.0, 10.0, 10.0])
    probes = [Probe((0, 0, 0), 10.0, 12.0), Probe((1, 1, 1), 10.0, 8.0)]
    out = corrected(archs, pred, probes)
    assert out[0] == pytest.approx(12.0) and out[1] == pytest.approx(8.0)
    assert out[2] == pytest.approx(12.0)  # one layer from the first probe, two from the second
    tie = corrected(np.array([[0, 1, 0]]), np.array([10.0]), [Probe((0, 0, 0), 10.0, 12.0),
                                                              Probe((1, 1, 0), 10.0, 8.0)])
    assert tie[0] == pytest.approx(10.0 * math.sqrt(12.0 / 10.0 * 8.0 / 10.0))
    assert corrected(archs, pred, []).tolist() == pred.tolist()


@pytest.fixture
def biased_board() -> tuple:
    """A LUT predictor of NB201 and a 'board' whose conv3x3 edges cost 40% more than the predictor says:
    a systematic error of the kind the loop must absorb."""
    space = create_space("nb201")
    rng = np.random.default_rng(0)
    table = rng.uniform(0.2, 1.0, size=(space.n_layers, space.n_ops))
    model = lut_cost_model(table, space, base=1.0)
    conv3 = OPS.index("nor_conv_3x3")

    def board(arch: tuple[int, ...]) -> float:
        return 1.0 + sum(table[i, op] * (1.4 if op == conv3 else 1.0) for i, op in enumerate(arch))

    return space, model, board, conv3


def test_loop_lands_on_target_where_the_open_loop_misses(biased_board: tuple) -> None:
    space, model, board, conv3 = biased_board
    arch = (conv3,) * space.n_layers  # the predictor underrates it by far
    target = float(model(torch.nn.functional.one_hot(torch.tensor([arch]), space.n_ops).float().reshape(1, -1))[0])
    assert abs(board(arch) / target - 1) > 0.2
    seen: list[Probe] = []
    res = close_loop(arch, model, space, target, board, tolerance=0.03, max_measurements=6, on_probe=seen.append)
    assert res.met and abs(board(res.arch) / target - 1) <= 0.03
    assert res.measured == pytest.approx(board(res.arch))  # what is returned was measured
    assert 2 <= len(res.probes) <= 6 and seen == res.probes
    assert res.probes[0].arch == arch and res.stopped == "within tolerance"
    d = res.to_dict()
    assert d["met"] and d["measurements"] == len(res.probes) and len(d["choices"]) == len(res.probes) - 1


def test_loop_measures_once_when_the_first_network_is_on_target(biased_board: tuple) -> None:
    space, model, board, conv3 = biased_board
    arch = tuple((i % space.n_ops) if i % space.n_ops != conv3 else 0 for i in range(space.n_layers))
    calls: list[tuple[int, ...]] = []

    def counting(a: tuple[int, ...]) -> float:
        calls.append(a)
        return board(a)

    res = close_loop(arch, model, space, board(arch), counting, tolerance=0.02, max_measurements=5)
    assert calls == [arch] and res.met and res.error == pytest.approx(0.0)


def test_loop_stops_at_its_budget_and_returns_the_best_probe(biased_board: tuple) -> None:
    space, model, board, conv3 = biased_board
    arch = (conv3,) * space.n_layers
    res = close_loop(arch, model, space, 0.5 * board(arch), board, tolerance=0.001, max_measurements=2)
    assert len(res.probes) == 2 and not res.met
    assert abs(res.error) == min(abs(p.gap(res.target)) for p in res.probes)


def test_alpha_breaks_ties_among_candidates_within_tolerance(biased_board: tuple) -> None:
    space, model, _, _ = biased_board
    arch = (0,) * space.n_layers
    alpha = torch.zeros(space.n_layers, space.n_ops)
    alpha[2, 4] = 10.0  # α favours op 4 on edge 2
    probes = [Probe(arch, 2.0, 2.0)]
    nxt, info = next_probe(probes, alpha, model, space, target=2.0, tolerance=10.0)  # every candidate fits
    assert nxt == (0, 0, 4, 0, 0, 0) and "1 layer(s)" in info["reason"]
    nxt, _ = next_probe(probes, None, model, space, target=2.0, tolerance=10.0)
    assert nxt is not None and hamming(np.array([nxt]), arch)[0] == 1


def test_bad_measurements_and_parameters_are_named(biased_board: tuple) -> None:
    space, model, board, _ = biased_board
    arch = (1,) * space.n_layers
    with pytest.raises(ValueError, match="positive cost"):
        close_loop(arch, model, space, 2.0, lambda a: float("nan"))
    with pytest.raises(ValueError, match="max_measurements"):
        close_loop(arch, model, space, 2.0, board, max_measurements=0)
    with pytest.raises(ValueError, match="tolerance"):
        close_loop(arch, model, space, 2.0, board, tolerance=0.0)


def test_a_miss_beyond_the_radius_walks_further_toward_the_target(biased_board: tuple) -> None:
    space, model, board, conv3 = biased_board
    arch = (conv3,) * space.n_layers
    predicted = float(model(torch.nn.functional.one_hot(torch.tensor([arch]), space.n_ops).float().reshape(1, -1))[0])
    probes = [Probe(arch, predicted, board(arch))]  # the board says ~35% more than the predictor
    nxt, info = next_probe(probes, None, model, space, target=predicted, tolerance=0.02, radius=1)
    assert nxt is not None and hamming(np.array([nxt]), arch)[0] > 1, info
    assert "single-layer step" in info["reason"]
    assert abs(info["corrected"] / predicted - 1) < abs(probes[0].gap(predicted))
    res = close_loop(arch, model, space, predicted, board, tolerance=0.03, max_measurements=5, radius=1)
    assert abs(res.error) < abs(probes[0].gap(predicted)) / 2


def _pred(model, space, arch) -> float:
    return float(model(torch.nn.functional.one_hot(torch.tensor([arch]), space.n_ops).float().reshape(1, -1))[0])


def test_a_network_the_dataset_measured_is_taken_at_its_measurement(biased_board: tuple) -> None:
    space, model, board, conv3 = biased_board
    arch = (conv3,) * space.n_layers
    other = (conv3, conv3, 0, conv3, conv3, conv3)
    probes = [Probe(arch, _pred(model, space, arch), board(arch))]
    known = [Probe(other, _pred(model, space, other), board(other))]
    nxt, info = next_probe(probes, None, model, space, target=board(other), tolerance=0.001, radius=1, known=known)
    assert nxt == other and "measured before" in info["reason"] and info["corrected"] == pytest.approx(board(other))
    # through close_loop, with (arch, cost) pairs as a store gives them
    res = close_loop(arch, model, space, board(other), board, tolerance=0.001, max_measurements=2,
                     known=[(other, board(other)), ((0,) * 6, board((0,) * 6))])
    assert res.arch == other and res.met and len(res.probes) == 2


def test_target_errors_summarises_signed_errors() -> None:
    from hwsearch import target_errors

    s = target_errors([0.01, -0.04, 0.06], each=0.05)
    assert s["max_abs_error"] == pytest.approx(0.06) and s["mean_abs_error"] == pytest.approx(0.11 / 3)
    assert s["within"] == 2 and not s["target_met"]
    assert target_errors([0.01, -0.04], each=0.05)["target_met"]
    assert not target_errors([0.01, -0.04], each=0.05, mean=0.02)["target_met"]  # mean 2.5%
    with pytest.raises(ValueError, match="at least one"):
        target_errors([])
