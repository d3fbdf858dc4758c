"""The leave-one-out transfer benchmark (benchmarks/fewshot_transfer.py) and its pure parts
(predictors.transfer): families, sibling exclusion, the LOFO split, the worst-case aggregation, and one tiny
end-to-end run on the real HELP tables."""

from __future__ import annotations

import importlib.util
import io
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from predictors.transfer import (
    FAMILIES,
    FAMILY_DEVICES,
    aggregate,
    board,
    family,
    lodo_groups,
    lofo_groups,
    n_draws,
    params_hash,
    plot_curve,
    print_report,
    split,
    stops_paying,
    target_met,
)
from spaces.errors import UserInputError

REPO = Path(__file__).resolve().parents[2]
HELP_DIR = REPO.parent / "shared" / "data" / "HELP" / "data"
FOLDERS = {"nb201": "nasbench201", "fbnet": "fbnet"}


def help_devices(space: str) -> list[str]:
    folder = HELP_DIR / FOLDERS[space] / "latency"
    if not folder.is_dir():
        pytest.skip(f"HELP data not found at {folder}")
    return sorted(p.stem for p in folder.glob("*.pt"))


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """benchmarks/fewshot_transfer.py as a module (it imports help_nb201 from its own folder)."""
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("fewshot_transfer", REPO / "benchmarks" / "fewshot_transfer.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return mod


@pytest.mark.parametrize("space", ["nb201", "fbnet"])
def test_families_cover_every_help_device_exactly_once(space: str) -> None:
    devices = help_devices(space)
    assert len(devices) == 27
    listed = [d for ds in FAMILY_DEVICES.values() for d in ds]
    assert len(listed) == len(set(listed)), "a device is in two families"
    assert [d for d in devices if d not in listed] == []
    counts = {f: sum(family(d) == f for d in devices) for f in FAMILIES}
    assert counts == {"desktop_gpu": 15, "desktop_cpu": 4, "phone": 5, "embedded_cpu": 1, "asic_fpga": 2}
    with pytest.raises(UserInputError, match="jetson_orin"):
        family("jetson_orin")


@pytest.mark.parametrize("space", ["nb201", "fbnet"])
def test_lodo_holds_out_batch_size_siblings_and_picks_valid_per_family(space: str) -> None:
    devices = help_devices(space)
    groups = lodo_groups(devices)
    assert len(groups) == 17  # 5 GPUs x 3 batch sizes held out together, 12 other devices alone
    assert sorted(d for held in groups.values() for d in held) == devices
    for held in groups.values():
        train, valid = split(held, devices)
        used = train + valid
        assert len(used) == len(set(used)) == len(devices) - len(held)
        assert not {board(d) for d in used} & {board(d) for d in held}, "a sibling of the held-out board trains"
        assert 1 <= len(valid) <= 4
        # round robin: the first picks come from distinct families, and no family loses its last training device
        assert len({family(d) for d in valid[:3]}) == len(valid[:3])
        assert {family(d) for d in used} <= {family(d) for d in train}
    train, valid = split(["1080ti_1"], devices)
    assert not any(d.startswith("1080ti_") for d in train + valid)
    assert split(["pixel2"], devices) == split(["pixel2"], devices)  # deterministic


@pytest.mark.parametrize("space", ["nb201", "fbnet"])
def test_lofo_holds_out_a_whole_family(space: str) -> None:
    devices = help_devices(space)
    groups = lofo_groups(devices)
    assert list(groups) == [f"family-{f}" for f in FAMILIES]
    assert sorted(d for held in groups.values() for d in held) == devices
    for key, held in groups.items():
        train, valid = split(held, devices)
        assert {family(d) for d in train + valid}.isdisjoint({key.removeprefix("family-")})
        assert len(train) + len(valid) == len(devices) - len(held)


def test_aggregate_names_the_worst_device_and_family() -> None:
    table = {"pixel2": 0.80, "pixel3": 0.96, "raspi4": 0.88, "fpga": 0.99, "eyeriss": 0.97, "1080ti_1": 0.90,
             "1080ti_256": 0.99}
    a = aggregate(table)
    assert a["worst_device"] == "pixel2" and a["worst"] == pytest.approx(0.80)
    assert a["mean"] == pytest.approx(np.mean(list(table.values())))
    assert a["family_mean"]["phone"] == pytest.approx(0.88)
    # raspi4 (0.88) ties the phones' mean; the GPUs at batch 1 are their own report group
    assert a["worst_family"] in ("phone", "embedded_cpu") and a["worst_family_value"] == pytest.approx(0.88)
    assert a["group_mean"]["desktop_gpu_b1"] == pytest.approx(0.90)
    table["raspi4"] = 0.85
    assert aggregate(table)["worst_family"] == "embedded_cpu"
    # for MAPE the worst is the highest
    err = aggregate({"pixel2": 30.0, "fpga": 5.0, "eyeriss": 9.0}, higher_is_better=False)
    assert err["worst_device"] == "pixel2" and err["worst_family"] == "phone"
    with pytest.raises(ValueError):
        aggregate({})


def test_draws_stops_paying_target_and_hash() -> None:
    assert n_draws(900, 720, 3) == 1  # NB201's K = 900 is its whole outlier-free pool: one draw
    assert n_draws(900, 3200, 3) == 3 and n_draws(10, 720, 3) == 3
    ks = [5, 10, 20, 50, 100, 900]
    meta = [0.90, 0.92, 0.93, 0.94, 0.95, 0.96]
    assert stops_paying(ks, meta, [0.5, 0.6, 0.8, 0.95, 0.96, 0.97]) == 50
    assert stops_paying(ks, meta, [0.95, 0.6, 0.8, 0.90, 0.96, 0.97]) == 100  # catching up must last
    assert stops_paying(ks, meta, [0.5] * 6) is None
    assert target_met(0.90, 0.95) and not target_met(0.89, 0.99) and not target_met(0.95, 0.949)
    assert params_hash({"a": 1, "b": [1, 2]}) == params_hash({"b": [1, 2], "a": 1}) != params_hash({"a": 2})


def test_missing_help_data_exits_2(bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--help-dir", str(tmp_path), "--space", "nb201", "--quick"]) == 2
    assert "no HELP data" in capsys.readouterr().err
    with pytest.raises(UserInputError, match="--modes"):
        bench.parse_args(["--modes", "lodo,loo"])


@pytest.mark.slow
def test_end_to_end_on_help_tables_with_toy_sizes(bench: ModuleType, tmp_path: Path) -> None:
    """Meta-train on 6 real HELP devices (toy iterations), hold pixel2 out, adapt at K 10 and the whole pool,
    the baselines beside it; the cached predictor reloads to the same figures."""
    help_devices("nb201")
    devices = ["1080ti_1", "1080ti_32", "gold_6240", "silver_4114", "pixel3", "samsung_s7", "pixel2", "fpga"]
    data = bench.SpaceData("nb201", HELP_DIR, devices=devices)
    args = bench.parse_args(["--quick", "--ks", "10,900", "--select", "random", "--select-ks", "5",
                             "--gnn-steps", "5", "--cache", str(tmp_path / "cache")])
    args.t0 = 0.0
    units = bench.plan(data, args)
    assert [(m, k) for m, k, _ in units] == [("lodo", "pixel2")]
    ticks: list[tuple[int, int]] = []
    work = bench.Work(lambda done, total, note: ticks.append((done, total)), bench.work_total(units))
    res = bench.run_space(data, units, args, work)
    unit = res["units"]["lodo:pixel2"]
    assert "pixel2" not in unit["train"] + unit["valid"] and not unit["cached"]
    row = res["lodo"]["per_device"]["pixel2"]
    assert row["meta"]["900"]["draws"] == 1 and row["meta"]["900"]["k_used"] == 720
    assert row["meta"]["10"]["k_used"] == 10 and row["select"]["random"]["5"]["k_used"] == 5
    for method in ("meta", "gnn", "gbdt"):
        cell = row[method]["10"]
        assert -1 <= cell["spearman"] <= 1 and 0 <= cell["acc10"] <= 1 and cell["mape"] > 0
    assert res["lodo"]["target"]["worst_device"] == "pixel2"
    assert ticks[-1][0] == ticks[-1][1]  # the bar ends full
    again = bench.run_space(data, units, args, bench.Work(lambda *a: None, 1.0))
    assert again["units"]["lodo:pixel2"]["cached"]
    assert again["lodo"]["per_device"]["pixel2"]["meta"] == row["meta"]
    json.dumps(res, allow_nan=False)  # the JSON is finite
    assert all(math.isfinite(v) for v in res["lodo"]["curve"]["meta_mean"])
    results = {"spaces": {"nb201": res}, "select": ["random"], "wall_s": 1.0}
    text = io.StringIO()
    print_report(results, ["lodo"], [10, 900], [5], text)
    assert "worst" in text.getvalue() and "(pixel2)" in text.getvalue()
    plot_curve(results, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
