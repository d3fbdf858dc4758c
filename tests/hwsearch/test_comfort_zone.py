"""The Comfort Zone rules and the empirical roofline on synthetic sweeps whose answer is known by construction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hwsearch.comfort_zone import attainable, choose_width, conv_zone, roofline
from spaces.errors import UserInputError

NAN = float("nan")
I8 = [8, 16, 24, 32, 48, 64, 96, 128]
O8 = [8, 16, 32, 64, 96, 128, 192, 256]


def test_flat_grid_gpu_like_zone_is_the_whole_grid():
    lat = 2.0 + 0.01 * np.random.default_rng(0).random((8, 8))  # within 1% of each other
    z = conv_zone(I8, O8, lat)
    assert (z.i_range, z.o_range, z.cells) == ((8, 128), (8, 256), 64)
    assert z.has_zone and z.channel_gain == pytest.approx(128 * 256 / 64)
    assert z.max_ratio == pytest.approx(lat.max() / lat[0, 0])
    assert "I 8→128, O 8→256" in z.verdict()


def test_latency_growing_with_channels_cpu_like_has_no_zone():
    lat = np.outer(I8, O8) / 100.0  # every wider step costs at least double on one axis
    z = conv_zone(I8, O8, lat)
    assert z.cells == 1 and not z.has_zone and z.channel_gain == 1.0
    assert z.i_range == (8, 8) and z.o_range == (8, 8) and z.verdict() == "no Comfort Zone"
    assert z.max_ratio == 1.0


def test_step_zone_is_the_known_sub_rectangle():
    lat = np.full((8, 8), 5.0)
    lat[:4, :6] = 1.0  # I ≤ 32, O ≤ 128 cheap
    lat[2, 3] = 1.09  # inside the tolerance (+9%)
    z = conv_zone(I8, O8, lat, tolerance=0.10)
    assert (z.i_range, z.o_range, z.cells) == ((8, 32), (8, 128), 24)
    assert z.max_ratio == pytest.approx(1.09)
    # a tighter tolerance makes the +9% cell a wall: rows 0-1 stay 6 wide (12 cells) against 3 wide for all 4 rows
    tight = conv_zone(I8, O8, lat, tolerance=0.05)
    assert (tight.i_range, tight.o_range, tight.cells) == ((8, 16), (8, 128), 12)


def test_staircase_picks_most_cells():
    # row r is cheap up to column run[r]: candidates 1x8=8, 2x5=10, 3x4=12, 4x2=8 cells
    runs = [8, 5, 4, 2, 0, 0, 0, 0]
    lat = np.array([[1.0 if c < r else 3.0 for c in range(8)] for r in runs])
    z = conv_zone(I8, O8, lat)
    assert (z.i_index, z.o_index, z.cells) == ((0, 2), (0, 3), 12)


def test_tie_goes_to_the_larger_far_corner_product():
    # 1 row × 4 columns (O up to 64) against 4 rows × 1 column (I up to 32): 4 cells each
    lat = np.full((4, 4), 9.0)
    lat[0, :] = 1.0
    lat[:, 0] = 1.0
    ins, outs = [8, 16, 24, 32], [8, 16, 32, 64]
    z = conv_zone(ins, outs, lat)
    assert z.cells == 4 and z.i_range == (8, 8) and z.o_range == (8, 64)  # 8·64 > 32·8
    # with the axes' values swapped the other rectangle wins
    z2 = conv_zone(outs, ins, lat)
    assert z2.cells == 4 and z2.i_range == (8, 64) and z2.o_range == (8, 8)


def test_nan_cells_are_never_inside():
    lat = np.ones((8, 8))
    lat[0, 4] = NAN  # cuts the first row at 4 columns
    lat[5, 0] = NAN  # cuts the first column at 5 rows
    z = conv_zone(I8, O8, lat)
    # every rectangle holds row 0, so it is at most 4 wide; 5 rows x 4 columns = 20 beats 1 column x 5 rows
    assert (z.i_index, z.o_index, z.cells) == ((0, 4), (0, 3), 20)
    assert math.isfinite(z.max_ratio)


def test_base_not_at_the_corner_and_intensity():
    lat = np.full((8, 8), 4.0)
    lat[:3, :] = 1.0  # cheap rows below the base do not count
    lat[3:6, 3:5] = 4.2  # +5% of the base 4.0 at (32, 32)
    inten = np.add.outer(np.arange(8), np.arange(8) * 10).astype(float) + 1.0
    z = conv_zone(I8, O8, lat, base=(32, 32), intensity=inten)
    assert z.base == (32, 32) and z.base_latency_ms == 4.0
    # every cell at or beyond the base is ≤ 4.2 ≤ 4.4: the whole upper-right block from (3, 2)
    assert (z.i_range, z.o_range, z.cells) == ((32, 128), (32, 256), 30)
    assert z.max_ratio == pytest.approx(1.05)
    assert z.intensity_base == inten[3, 2] and z.intensity_corner == inten[7, 7]
    d = json.loads(json.dumps(z.to_dict()))
    assert d["i_range"] == [32, 128] and d["has_zone"] is True and d["channel_gain"] == pytest.approx(32.0)


@pytest.mark.parametrize(("kwargs", "culprit"), [
    ({"latency_ms": np.ones((3, 8))}, "latency_ms"),
    ({"tolerance": 0.0}, "tolerance"),
    ({"tolerance": -0.1}, "tolerance"),
    ({"base": (10, 8)}, "base"),
    ({"base": (8,)}, "base"),
    ({"in_channels": [8, 16, 16, 32, 48, 64, 96, 128]}, "in_channels"),
    ({"out_channels": [8.5, 16, 32, 64, 96, 128, 192, 256]}, "out_channels"),
    ({"latency_ms": np.where(np.eye(8) > 0, NAN, 1.0)}, "base"),
    ({"latency_ms": -np.ones((8, 8))}, "latency_ms"),
    ({"intensity": np.ones((8, 7))}, "intensity"),
])
def test_conv_zone_rejects_bad_input(kwargs, culprit):
    args = {"in_channels": I8, "out_channels": O8, "latency_ms": np.ones((8, 8)), **kwargs}
    with pytest.raises(UserInputError, match=culprit):
        conv_zone(**args)


PHIS = [1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.5]


def test_width_flat_then_rising_picks_the_last_flat_step():
    c = choose_width(PHIS, [10.0, 10.1, 9.9, 10.4, 10.9, 12.5, 10.0])
    assert c.phi == 2.5 and c.has_zone and c.chosen_latency_ms == 10.9
    assert c.ratio == pytest.approx(1.09) and c.stop_reason == "exceeds" and c.phis[c.stop_index] == 3.0
    assert c.verdict() == "Comfort Zone up to ϕ = 2.5 (latency +9.0%)"  # the dip at 3.5 is past the stop
    d = json.loads(json.dumps(c.to_dict()))
    assert d["ratios"][5] == pytest.approx(1.25) and d["stopped_at"] == 3.0


def test_width_rising_from_the_first_step_has_no_zone():
    c = choose_width(PHIS, [10.0 * p ** 2 for p in PHIS])
    assert c.phi == 1.0 and not c.has_zone and c.ratio == 1.0
    assert c.verdict() == "no Comfort Zone: latency grows with width from the first step"


def test_width_all_flat_reaches_the_cap():
    c = choose_width(PHIS, [10.0] * len(PHIS))
    assert c.phi == 3.5 and c.stop_index is None and c.stop_reason is None
    assert "the largest ϕ swept" in c.verdict()


def test_width_nan_step_stops_the_scan():
    c = choose_width(PHIS, [10.0, 10.0, NAN, 10.0, 10.0, 10.0, 10.0])
    assert c.phi == 1.25 and c.stop_reason == "not measured" and c.phis[c.stop_index] == 1.5
    assert "not measured" in c.verdict()
    first = choose_width(PHIS, [10.0, NAN, 10.0, 10.0, 10.0, 10.0, 10.0])
    assert not first.has_zone and "no Comfort Zone found" in first.verdict()
    d = json.loads(json.dumps(first.to_dict(), allow_nan=False))
    assert d["latency_ms"][1] is None


@pytest.mark.parametrize(("phis", "lat", "tol", "culprit"), [
    ([1.25, 1.5], [1.0, 1.0], 0.1, "phis"),
    ([1.0, 1.5, 1.25], [1.0, 1.0, 1.0], 0.1, "phis"),
    ([1.0], [1.0], 0.1, "phis"),
    ([1.0, 1.5], [1.0], 0.1, "latency_ms"),
    ([1.0, 1.5], [NAN, 1.0], 0.1, "latency_ms"),
    ([1.0, 1.5], [1.0, 1.0], 0.0, "tolerance"),
])
def test_choose_width_rejects_bad_input(phis, lat, tol, culprit):
    with pytest.raises(UserInputError, match=culprit):
        choose_width(phis, lat, tolerance=tol)


def test_roofline_recovers_a_known_roof():
    peak, bw = 4e11, 2e10  # MAC/s, elements/s: ridge at 20 MACs per element
    inten = np.array([1.0, 3.0, 10.0, 20.0, 50.0, 300.0, 5.0])
    flops = np.full_like(inten, 1e8)
    mem = flops / inten
    lat_ms = flops / attainable(inten, peak, bw) * 1000.0
    lat_ms[-1] *= 2.0  # one point at half its roof
    r = roofline(flops, lat_ms, mem)
    assert r.peak == pytest.approx(peak) and r.bandwidth == pytest.approx(bw) and r.ridge == pytest.approx(20.0)
    assert r.bandwidth_gb_s == pytest.approx(bw * 4 / 1e9)
    assert r.efficiency[:-1] == pytest.approx([1.0] * 6) and r.efficiency[-1] == pytest.approx(0.5)
    assert r.bound == ("memory", "memory", "memory", "compute", "compute", "compute", "memory")
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["unit"] == "MAC/s" and d["ridge_mac_per_element"] == pytest.approx(20.0)


def test_roofline_batch_and_unmeasured_points():
    r = roofline([1e6, 1e6, 1e6], [2.0, NAN, 1.0], [1e4, 1e4, 1e3], batch=8)
    assert r.attained[0] == pytest.approx(8 * 1e6 / 2e-3) and math.isnan(r.attained[1])
    # P from the faster point (8e9 MAC/s), B from the one with more per element (4e9 / 100 > 8e9 / 1000)
    assert (r.peak_index, r.bandwidth_index) == (2, 0)
    assert r.peak == pytest.approx(8e9) and r.bandwidth == pytest.approx(4e7)
    assert json.loads(json.dumps(r.to_dict(), allow_nan=False))["points"][1]["attained_mac_s"] is None


@pytest.mark.parametrize(("args", "culprit"), [
    (([1e6], [1.0, 2.0], [1e4]), "latency_ms"),
    (([1e6], [NAN], [1e4]), "latency_ms"),
    (([0.0], [1.0], [1e4]), "flops"),
    (([1e6], [1.0], [1e4], 0), "batch"),
])
def test_roofline_rejects_bad_input(args, culprit):
    with pytest.raises(UserInputError, match=culprit):
        roofline(*args)
