"""The Comfort Zone pictures are written for the grids and sweeps a board can give (pixels are not asserted)."""

from __future__ import annotations

import numpy as np
import pytest

from hwsearch.comfort_zone import choose_width, conv_zone, roofline
from hwsearch.comfort_zone_plot import plot_conv_sweep, plot_roofline, plot_width

NAN = float("nan")
PNG = b"\x89PNG\r\n\x1a\n"


def _written(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5_000


def _intensity(ins, outs, hw=14, k=3):
    i, o = np.asarray(ins, float)[:, None], np.asarray(outs, float)[None, :]
    return hw * hw * i * o * k * k / (hw * hw * (i + o) + i * o * k * k)


I8 = [16, 32, 48, 64, 96, 128, 192, 256]


@pytest.mark.parametrize("case", ["zone", "no-zone", "nan-row"])
def test_conv_sweep_8x8(tmp_path, case):
    i, o = np.asarray(I8, float)[:, None], np.asarray(I8, float)[None, :]
    if case == "zone":
        lat = np.where((i <= 64) & (o <= 128), 0.05, 0.05 + 1e-5 * i * o)
    else:
        lat = 0.01 + 1e-5 * i * o  # a CPU: latency grows with every channel
    if case == "nan-row":
        lat[3, :] = NAN
    zone = conv_zone(I8, I8, lat)
    assert zone.has_zone == (case == "zone")
    path = plot_conv_sweep(I8, I8, _intensity(I8, I8), lat, zone, tmp_path / "sub" / f"{case}.png", title=case)
    assert path == tmp_path / "sub" / f"{case}.png"
    _written(path)


def test_conv_sweep_1x1_and_a_large_grid(tmp_path):
    one = conv_zone([32], [32], [[0.4]])
    _written(plot_conv_sweep([32], [32], [[10.0]], [[0.4]], one, tmp_path / "one.png"))
    ins = list(range(8, 8 * 17, 8))  # 16 x 16: no values written in cells
    lat = np.ones((16, 16))
    _written(plot_conv_sweep(ins, ins, _intensity(ins, ins), lat, conv_zone(ins, ins, lat), tmp_path / "big.png"))


PHIS = [1.0, 1.25, 1.5, 2.0, 2.5, 3.0]


@pytest.mark.parametrize("lat", [
    [3.0, 3.0, 3.1, 3.2, 4.0, 5.0],  # a zone up to 2.0
    [3.0, 4.0, 5.0, 6.0, 7.0, 8.0],  # none
    [3.0, 3.0, NAN, 3.0, 3.0, 3.0],  # a failed step
    [3.0] * 6,  # flat to the cap
])
def test_width_plot(tmp_path, lat):
    choice = choose_width(PHIS, lat)
    _written(plot_width(PHIS, lat, choice, tmp_path / "w.png", title="mbconv-small"))


def test_roofline_plot(tmp_path):
    ins = I8
    i, o = np.asarray(ins, float)[:, None], np.asarray(ins, float)[None, :]
    flops = (14 * 14 * i * o * 9).ravel()
    mem = (14 * 14 * (i + o) + i * o * 9).ravel()
    lat = (0.01 + 1e-5 * i * o).ravel()
    lat[5] = NAN
    roof = roofline(flops, lat, mem)
    points = [(x, a, "conv sweep") for x, a in zip(roof.intensity, roof.attained, strict=True)]
    points += [(40.0, 2e9, "width sweep"), (55.0, 3e9, "width sweep")]
    _written(plot_roofline(points, roof, tmp_path / "roof.png", title="local-cpu"))
