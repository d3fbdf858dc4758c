"""hwsearch.judge on hand-made tables: latency source (measured vs table), regret, the best at the target,
an arch without accuracy, targets beyond and below every arch, the plot's view, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwsearch.judge import SpaceTable, arch_short, judge, plot_search_report, view_limits
from spaces.errors import UserInputError

# cost (ms), accuracy (%): the front is a, b, d, f; c and e are dominated. g has a cost but no accuracy,
# h an accuracy but no cost.
COST = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0, "f": 6.0, "g": 2.5}
ACC = {"a": 10.0, "b": 30.0, "c": 20.0, "d": 50.0, "e": 40.0, "f": 60.0, "h": 99.0}


@pytest.fixture
def table() -> SpaceTable:
    return SpaceTable.from_maps("dev", "toy", "task", "test_accuracy", "latency", COST, ACC)


def result(arch: str, target: float, **extra) -> dict:
    return {"format": "edgeprof.search-result", "search": "s", "space": "toy", "arch_id": arch, "target": target,
            "metric": "latency", "unit": "ms", "predicted": target, **extra}


def measured(device: str, median: float) -> dict:
    return {"verify": {"device": device, "rounds": 3, "values": [median] * 3, "median": median}}


def test_table_joins_on_arch_and_finds_the_front(table: SpaceTable) -> None:
    assert table.arch_ids == ["a", "b", "c", "d", "e", "f"] and table.n == 6
    assert [table.arch_ids[i] for i in table.front] == ["a", "b", "d", "f"]
    s = table.summary()
    assert (s["n_cost"], s["n_accuracy"], s["best_accuracy"]) == (7, 7, 60.0)
    # reference (6 ms, 10 %): a adds nothing; b [2,6]x[10,30], d [4,6]x[30,50], f nothing (cost = ref)
    assert s["front"]["hypervolume"] == pytest.approx(4 * 20 + 2 * 20)


def test_an_empty_join_names_both_sides() -> None:
    with pytest.raises(UserInputError, match=r"no arch of space 'toy'.*'x'.*'y'"):
        SpaceTable.from_maps("dev", "toy", "task", "m", "latency", {"x": 1.0}, {"y": 50.0})


def test_table_latency_regret_and_best_at_target(table: SpaceTable) -> None:
    j = judge(result("c", 3.5), table)
    assert (j["latency"], j["latency_source"], j["latency_measured"]) == (3.0, "table", None)
    assert j["error_vs_target"] == pytest.approx(3.0 / 3.5 - 1) and j["within_target"] is True
    assert j["accuracy"] == 20.0
    assert j["best_at_its_cost"] == 30.0 and j["regret"] == pytest.approx(10.0)  # b beats it at <= 3 ms
    assert j["best_at_target"] == 30.0 and j["regret_at_target"] == pytest.approx(10.0)
    assert j["front_at_target"] == {"arch_id": "b", "short": "b", "latency": 2.0, "accuracy": 30.0}
    assert j["n_under_target"] == 3 and j["percentile_under_target"] == pytest.approx(100 * 2 / 3)
    assert j["notes"] == []


def test_a_front_arch_has_no_regret_but_may_leave_accuracy_at_the_target(table: SpaceTable) -> None:
    j = judge(result("b", 5.5), table)
    assert j["regret"] == 0.0
    assert j["best_at_target"] == 50.0 and j["regret_at_target"] == pytest.approx(20.0)
    assert j["front_at_target"]["arch_id"] == "d"


def test_measured_latency_on_the_device_wins_over_the_table(table: SpaceTable) -> None:
    j = judge(result("c", 4.0, **measured("dev", 4.5)), table)
    assert (j["latency"], j["latency_source"], j["latency_table"]) == (4.5, "measured", 3.0)
    assert j["within_target"] is False and j["error_vs_target"] == pytest.approx(0.125)
    assert j["regret"] == pytest.approx(50.0 - 20.0)  # d (4 ms) is under its measured 4.5 ms
    assert any("mixes the two sources" in n for n in j["notes"])  # +50% from the table's 3 ms


def test_a_measurement_on_another_device_is_not_used(table: SpaceTable) -> None:
    j = judge(result("c", 4.0, **measured("other", 4.5)), table)
    assert (j["latency"], j["latency_source"]) == (3.0, "table")
    assert any("'other'" in n for n in j["notes"])


def test_an_arch_without_accuracy_has_latency_but_no_regret(table: SpaceTable) -> None:
    j = judge(result("g", 3.0), table)
    assert j["latency"] == 2.5 and j["accuracy"] is None
    assert j["regret"] is None and j["regret_at_target"] is None and j["percentile_under_target"] is None
    assert j["best_at_its_cost"] == 30.0 and j["best_at_target"] == 30.0
    assert any("no task test_accuracy record for g" in n for n in j["notes"])


def test_an_arch_without_latency_is_judged_on_accuracy_only(table: SpaceTable) -> None:
    j = judge(result("h", 3.0), table)
    assert j["latency"] is None and j["latency_source"] is None and j["error_vs_target"] is None
    assert j["accuracy"] == 99.0 and j["regret"] is None and j["regret_at_target"] == pytest.approx(30.0 - 99.0)


def test_a_target_beyond_every_arch(table: SpaceTable) -> None:
    j = judge(result("e", 100.0), table)
    assert j["best_at_target"] == 60.0 and j["regret_at_target"] == pytest.approx(20.0)
    assert j["front_at_target"]["arch_id"] == "f" and j["n_under_target"] == 6
    assert j["regret"] == pytest.approx(50.0 - 40.0)


def test_a_target_below_every_arch(table: SpaceTable) -> None:
    j = judge(result("a", 0.5), table)
    assert j["best_at_target"] is None and j["regret_at_target"] is None and j["front_at_target"] is None
    assert j["n_under_target"] == 0 and j["percentile_under_target"] is None
    assert j["regret"] == 0.0 and any("no arch of the table is under the target" in n for n in j["notes"])


def test_a_measured_latency_below_every_arch_has_no_regret(table: SpaceTable) -> None:
    j = judge(result("a", 2.0, **measured("dev", 0.5)), table)
    assert j["latency"] == 0.5 and j["regret"] is None and j["best_at_its_cost"] is None
    assert any("below every arch" in n for n in j["notes"])


def test_refuses_another_space_or_quantity(table: SpaceTable) -> None:
    with pytest.raises(UserInputError, match="space 'nb201'"):
        judge({**result("c", 3.0), "space": "nb201"}, table)
    with pytest.raises(UserInputError, match="'energy'"):
        judge({**result("c", 3.0), "metric": "energy"}, table)


def test_another_space_config_is_noted_when_the_table_gives_the_latency() -> None:
    t = SpaceTable.from_maps("dev", "toy", "task", "test_accuracy", "latency", COST, ACC,
                             {"space_config": {"C": 16}})
    assert any("C=16" in n and "C=8" in n for n in judge(result("c", 3.0, space_config={"C": 8}), t)["notes"])
    assert judge(result("c", 3.0, space_config={"C": 16}), t)["notes"] == []


def test_energy_keys_are_named_after_the_quantity() -> None:
    t = SpaceTable.from_maps("dev", "toy", "task", "test_accuracy", "energy", COST, ACC)
    j = judge({**result("c", 3.5), "metric": "energy", "unit": "mJ"}, t)
    assert (j["energy"], j["energy_source"], j["unit"]) == (3.0, "table", "mJ") and "latency" not in j


def test_arch_short_uses_the_nb201_index() -> None:
    from spaces import create_space

    s = create_space("nb201")
    assert arch_short("nb201", s.arch_id(s.from_index(9930))) == "#9930"
    assert arch_short("toy", "x" * 40) == "x" * 21 + "…"


def test_view_leaves_out_archs_at_chance_but_keeps_the_found_ones() -> None:
    rng = np.random.default_rng(0)
    cost = {f"n{i}": float(c) for i, c in enumerate(rng.uniform(2, 100, 200))}
    acc = {k: float(a) for k, a in zip(cost, rng.uniform(50, 70, 200), strict=True)}
    cost |= {f"z{i}": 0.01 for i in range(5)}
    acc |= {f"z{i}": 1.0 for i in range(5)}  # chance-level cells, nearly free
    t = SpaceTable.from_maps("dev", "toy", "task", "test_accuracy", "latency", cost, acc)
    x0, x1, y0, y1 = view_limits(t, [])
    assert 40 < y0 < 51 and x0 >= 2 and y1 > 70
    x0, _, y0, _ = view_limits(t, [{"latency": 0.01, "accuracy": 1.0, "target": 1.0}])
    assert y0 < 1.0 and x0 <= 0.01  # a found network at chance stays in the picture


def test_plot_writes_a_png_with_several_results(table: SpaceTable, tmp_path: Path) -> None:
    judged = [judge(result("c", 3.5), table), judge(result("e", 5.5, **measured("dev", 5.2)), table),
              judge(result("h", 3.5), table)]  # the last has no latency: listed, not drawn
    path = plot_search_report(table, judged, tmp_path / "sub" / "r.png", "toy")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
