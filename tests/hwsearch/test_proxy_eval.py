"""Proxies against ground truth (hwsearch.proxy_eval, hwsearch.proxy_pareto): the rank metrics on hand-made data,
the resumable score cache, failures recorded per network, NASLib's arch mapping, and the front gaps."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hwsearch.proxies import (
    Proxy,
    ProxyFailure,
    build_for_proxy,
    create_proxy,
    register_proxy,
    unregister_proxy,
)
from hwsearch.proxy_eval import (
    DEFAULT_NASLIB,
    ScoreCache,
    correlations,
    kendall,
    load_naslib,
    naslib_arch_id,
    sample_cells,
    score_cells,
    spearman,
    top_indices,
)
from hwsearch.proxy_pareto import choose_under, front_gaps
from spaces import create_space

NASLIB = DEFAULT_NASLIB


def test_perfect_and_reversed_rankings():
    truth = np.arange(40.0)
    assert spearman(truth * 3 + 1, truth) == pytest.approx(1.0)
    assert kendall(truth ** 2, truth) == pytest.approx(1.0)
    assert spearman(-truth, truth) == pytest.approx(-1.0)
    assert kendall(-truth, truth) == pytest.approx(-1.0)


def test_lower_is_better_proxies_are_oriented():
    truth = np.linspace(50, 70, 30)
    cond = 1.0 / truth  # lower is better, like the NTK condition number
    c = correlations(cond, truth, higher_is_better=False)
    assert c["spearman"] == pytest.approx(1.0) and c["kendall"] == pytest.approx(1.0)
    assert correlations(cond, truth)["spearman"] == pytest.approx(-1.0)


def test_top_subset_picks_the_best_cells_by_truth():
    rng = np.random.default_rng(0)
    truth = rng.permutation(100).astype(float)
    idx = top_indices(truth, 0.05)
    assert sorted(truth[idx]) == [95.0, 96.0, 97.0, 98.0, 99.0]
    # a proxy right on the top cells and wrong elsewhere: perfect at the top, not overall
    values = np.where(truth >= 95, truth, -truth)
    c = correlations(values, truth, top=0.05)
    assert c["top"]["n"] == 5 and c["top"]["spearman"] == pytest.approx(1.0)
    assert c["spearman"] < 0


def test_nan_cells_are_left_out_and_counted():
    truth = np.arange(20.0)
    values = truth.copy()
    values[[3, 7]] = np.nan
    c = correlations(values, truth)
    assert c["n"] == 18 and c["n_missing"] == 2 and c["spearman"] == pytest.approx(1.0)
    assert math.isnan(spearman([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]))  # constant: undefined, not an error


def test_naslib_arch_maps_to_our_id():
    # NASLib ops: 0 skip, 1 none, 2 conv3x3, 3 conv1x1, 4 avg pool; edges (1,2) (1,3) (1,4) (2,3) (2,4) (3,4)
    assert naslib_arch_id("(0, 2, 3, 2, 3, 1)") == ("|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                                                    "|nor_conv_1x1~0|nor_conv_1x1~1|none~2|")
    cells = load_naslib(NASLIB, "cifar100")
    assert len(cells) > 500
    space = create_space("nb201")
    assert all(space.parse(a) for a in list(cells)[:20])


def test_naslib_cells_match_our_synflow():
    """SynFlow sees the cell's topology and is data-free: on cells where the two edge orders disagree, ours
    ranks NASLib's cells as NASLib's own values do only when the arch mapping is right."""
    from hwsearch.proxies import list_proxies, make_batch, score_arch

    if "synflow" not in list_proxies():
        pytest.skip("no synflow proxy registered")
    space = create_space("nb201", num_classes=100)
    raw = json.loads(NASLIB.read_text())["cifar100"]
    picked = [c for c in raw.values() if c["arch"].split(",")[2] != c["arch"].split(",")[3]][:12]
    batch = make_batch("gaussian", space.input_shape(), 4, 0, num_classes=100)
    proxy = create_proxy("synflow")
    ours = np.array([score_arch(proxy, space, space.parse(naslib_arch_id(c["arch"])), batch) for c in picked])
    theirs = np.array([c["synflow"]["score"] for c in picked])
    assert spearman(ours, theirs) > 0.97
    if proxy.describe()["params"].get("log"):  # NASLib's values are logs too: equal up to float noise
        assert np.median(np.abs(ours - theirs)) < 0.5  # the string's edge order: median 2.9, max 34


def test_sample_cells_is_seeded_and_prefers_given_cells():
    ids = [f"a{i:03d}" for i in range(200)]
    assert sample_cells(ids, 20, seed=1) == sample_cells(ids, 20, seed=1) != sample_cells(ids, 20, seed=2)
    picked = sample_cells(ids, 20, seed=0, prefer=["a005", "a150", "zzz"])
    assert {"a005", "a150"} <= set(picked) and len(picked) == 20
    assert sample_cells(ids, None) == sorted(ids)


class _Counting(Proxy):
    """Scores a built network by its parameter count; counts its calls and, when `fail`, fails on networks
    with more than `limit` parameters."""

    data_free = True
    calls = 0
    fail = False
    limit = 0

    def score(self, model, batch):
        type(self).calls += 1
        n = float(sum(p.numel() for p in model.parameters()))
        if self.fail and n > self.limit:
            raise RuntimeError("no such luck")
        return n


@pytest.fixture
def toys():
    register_proxy("toy-count")(type("ToyCount", (_Counting,), {}))
    register_proxy("toy-fail")(type("ToyFail", (_Counting,), {"fail": True}))
    yield
    unregister_proxy("toy-count")
    unregister_proxy("toy-fail")


@pytest.fixture(scope="module")
def tiny():
    space = create_space("nb201", C=4, N=1, num_classes=10)
    ids = [space.arch_id(space.from_index(i)) for i in range(12)]
    return space, ids


def test_cache_resumes_and_a_failing_proxy_is_recorded(toys, tiny, tmp_path):
    space, ids = tiny
    count, fail = create_proxy("toy-count"), create_proxy("toy-fail")
    type(count).calls = type(fail).calls = 0
    sizes = {a: sum(p.numel() for p in build_for_proxy(space, space.parse(a)).parameters()) for a in ids}
    type(fail).limit = float(np.median(list(sizes.values())))
    n_bad = sum(v > type(fail).limit for v in sizes.values())
    assert 0 < n_bad < 12  # the tiny sample has both kinds
    path = tmp_path / "scores.jsonl"
    first = score_cells([fail, count], space, ids, None, cache=ScoreCache(path))
    assert type(count).calls == 12 and first["toy-count"]["computed"] == 12
    bad = first["toy-fail"]
    assert len(bad["errors"]) == n_bad and sum(math.isnan(v) for v in bad["values"].values()) == n_bad
    assert all("toy-fail" in m and a in m and "no such luck" in m for a, m in bad["errors"].items())
    assert len(path.read_text().splitlines()) == 24
    steps = []
    again = score_cells([fail, count], space, ids, None, cache=ScoreCache(path),
                        progress=lambda done, total, note: steps.append((done, total)))
    assert steps == [(0, 0)]  # the progress counts networks still to score: none
    assert type(count).calls == 12 and again["toy-count"]["computed"] == 0 and again["toy-count"]["cached"] == 12
    assert again["toy-fail"]["errors"] == bad["errors"]  # a recorded failure is not retried
    # another seed is another key: computed again
    score_cells([count], space, ids[:3], None, seed=1, cache=ScoreCache(path))
    assert type(count).calls == 15


def test_an_interrupted_run_keeps_what_it_wrote(tiny, tmp_path):
    space, ids = tiny

    @register_proxy("toy-stop")
    class Stop(_Counting):
        def score(self, model, batch):
            type(self).calls += 1
            if type(self).calls == 4:
                raise KeyboardInterrupt
            return 1.0

    try:
        path = tmp_path / "s.jsonl"
        with pytest.raises(KeyboardInterrupt):
            score_cells([create_proxy("toy-stop")], space, ids, None, cache=ScoreCache(path))
        assert len(path.read_text().splitlines()) == 3
        with path.open("a") as f:
            f.write('{"proxy": "toy-st')  # a torn last line is skipped
        res = score_cells([create_proxy("toy-stop")], space, ids, None, cache=ScoreCache(path))
        assert res["toy-stop"]["cached"] == 3 and res["toy-stop"]["computed"] == 9
    finally:
        unregister_proxy("toy-stop")


def test_score_arch_failure_names_the_network(toys, tiny):
    from hwsearch.proxies import score_arch

    space, _ = tiny
    arch = (3, 1, 1, 1, 1, 1)
    with pytest.raises(ProxyFailure, match=r"toy-fail.*nor_conv_3x3~0.*no such luck"):
        score_arch(create_proxy("toy-fail"), space, arch, None)


def test_choose_under_and_front_gaps():
    cost = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    acc = np.array([50.0, 60.0, 55.0, 70.0, 65.0])
    assert choose_under(cost, acc, [0.5, 1, 2.5, 10]).tolist() == [-1, 0, 1, 3]
    same = front_gaps(cost, acc, acc)
    assert same["gap"]["mean"] == 0 and same["gap"]["max"] == 0 and same["hypervolume_ratio"] == pytest.approx(1)
    assert same["proxy_front"] == same["true_front"] == [0, 1, 3]
    inverse = front_gaps(cost, acc, -acc)  # picks the worst: the cheapest cell at every budget
    assert inverse["gap"]["max"] == pytest.approx(20.0)
    assert inverse["named"][-1]["gap"] == pytest.approx(20.0) and inverse["named"][-1]["chosen"] == 50.0


def test_cache_lines_are_json_with_their_key(toys, tiny, tmp_path):
    space, ids = tiny
    path = tmp_path / "s.jsonl"
    score_cells([create_proxy("toy-count")], space, ids[:2], None, seed=3, cache=ScoreCache(path))
    rec = json.loads(path.read_text().splitlines()[0])
    assert rec["proxy"] == "toy-count" and rec["seed"] == 3 and rec["space_config"]["C"] == 4
    assert rec["arch"] in ids and rec["value"] > 0 and rec["time_s"] >= 0


def test_default_proxies_leave_out_the_training_ones():
    from hwsearch.proxies import list_proxies
    from hwsearch.proxy_eval import create_proxies, default_proxy_names

    names = default_proxy_names()
    assert {"bte", "tse"} <= set(list_proxies()) and not {"bte", "tse"} & set(names)
    assert {"synflow", "params", "jacob_cov"} <= set(names)
    assert [p.name for p in create_proxies(None)] == names
    assert [p.name for p in create_proxies(["tse", "params"])] == ["tse", "params"]  # asked for by name
