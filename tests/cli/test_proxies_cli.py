"""`edgeprof proxies list|evaluate|pareto` in process, on a small store (300 NB201 CIFAR-100 cells and HELP's
raspi4 table) with toy proxies whose values are known: an oracle (the true accuracy), its negation marked
lower-is-better, one that fails on some networks and one that stops like Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli

from hwsearch.proxies import Proxy, register_proxy, unregister_proxy

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
CSV = SHARED / "data" / "NB201-accuracy" / "cifar100.csv"
N_CELLS = 300


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A store with the first 300 cells' CIFAR-100 accuracy and raspi4's latency of every cell; the truth."""
    from predictors.importers.help import import_help
    from predictors.importers.nb201_accuracy import import_nb201_accuracy
    from profiler.store import Store

    folder = tmp_path_factory.mktemp("lab")
    lines = CSV.read_text().splitlines()[: N_CELLS + 1]
    (folder / "cifar100.csv").write_text("\n".join(lines) + "\n")
    db = folder / "lab.db"
    with Store(db) as store:
        import_nb201_accuracy(store, folder / "cifar100.csv")
        import_help(store, SHARED, spaces=("nb201",), devices=["raspi4"])
    truth = {line.split(",")[1]: float(line.split(",")[2]) for line in lines[1:]}
    return db, truth


@pytest.fixture
def toys(lab):
    """Data-free toy proxies with a fast path (no network built), registered for one test."""
    truth = lab[1]

    def fast(sign):
        def fast_scores(self, space, archs):
            type(self).calls += len(archs)
            vals = np.array([sign * truth.get(space.arch_id(a), 0.0) for a in archs])
            return vals

        return fast_scores

    class Oracle(Proxy):
        data_free, calls, summary = True, 0, "the true accuracy (a test's oracle)"
        fast_scores = fast(1.0)

    class Inverse(Proxy):
        data_free, higher_is_better, calls = True, False, 0
        fast_scores = fast(-1.0)

    class Failing(Proxy):
        """Builds each network (no fast path) and fails on those over 500k parameters."""

        data_free, calls = True, 0

        def score(self, model, batch):
            type(self).calls += 1
            if sum(p.numel() for p in model.parameters()) > 500_000:
                raise ValueError("too big for this toy")
            return 1.0

    names = {"toy-oracle": Oracle, "toy-inverse": Inverse, "toy-failing": Failing}
    for name, cls in names.items():
        register_proxy(name)(cls)
    yield names
    for name in names:
        unregister_proxy(name)


def test_list(capsys, toys):
    code, out, _ = cli(capsys, "proxies", "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["proxies"]}
    assert rows["toy-oracle"]["data_free"] and rows["toy-inverse"]["higher_is_better"] is False
    assert rows["bte"]["trains"] is True and rows["toy-oracle"]["trains"] is False
    code, out, _ = cli(capsys, "proxies", "list")
    assert code == 0 and "toy-oracle" in out and "lower" in out


def test_evaluate_ranks_and_resumes(capsys, lab, toys, tmp_path):
    db, _ = lab
    scores = tmp_path / "scores.jsonl"
    argv = ["proxies", "evaluate", "--db", db, "--task", "cifar100", "--n", "60", "--proxies",
            "toy-oracle,toy-inverse", "--scores", scores, "--json"]
    code, out, _ = cli(capsys, *argv)
    assert code == 0
    res = json.loads(out)
    rows = {r["name"]: r for r in res["proxies"]}
    for name in ("toy-oracle", "toy-inverse"):  # the inverse is lower-is-better: oriented, it ranks perfectly
        assert rows[name]["n"] == 60 and rows[name]["spearman"] == pytest.approx(1.0)
        assert rows[name]["kendall"] == pytest.approx(1.0) and rows[name]["top"]["n"] == 3
    assert res["space_config"]["num_classes"] == 100 and res["computed"] == 120
    assert len(scores.read_text().splitlines()) == 120
    calls = toys["toy-oracle"].calls
    code, out, _ = cli(capsys, *argv)
    again = json.loads(out)
    assert code == 0 and again["computed"] == 0 and again["cached"] == 120
    assert toys["toy-oracle"].calls == calls  # nothing scored twice
    code, out, _ = cli(capsys, *argv[:-1])
    assert code == 0 and "toy-oracle" in out and "+1.000" in out


def test_evaluate_records_a_failing_proxy_and_goes_on(capsys, lab, toys):
    db, _ = lab
    code, out, _ = cli(capsys, "proxies", "evaluate", "--db", db, "--task", "cifar100", "--n", "12", "--proxies",
                       "toy-failing,toy-oracle", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["proxies"]}
    bad = rows["toy-failing"]
    assert 0 < bad["n_failed"] < 12 and bad["n"] == 12 - bad["n_failed"]
    arch, message = bad["failures"][0].split(": ", 1)
    assert "toy-failing" in message and arch in message and "too big for this toy" in message
    assert rows["toy-oracle"]["n"] == 12 and rows["toy-oracle"]["n_failed"] == 0


def test_evaluate_compares_with_naslib(capsys, lab, toys):
    """The toy proxies are not NASLib's, so `params` (A1's) is needed; its NASLib cells in the store count."""
    from hwsearch.proxies import list_proxies

    if "params" not in list_proxies():
        pytest.skip("no params proxy registered yet")
    db, _ = lab
    naslib = SHARED / "data" / "NASLib-zc" / "zc_nasbench201.json"
    code, out, _ = cli(capsys, "proxies", "evaluate", "--db", db, "--task", "cifar100", "--n", "all", "--proxies",
                       "params", "--naslib", naslib, "--json")
    assert code == 0
    row = json.loads(out)["proxies"][0]
    assert row["n"] == N_CELLS and row["naslib"]["naslib_name"] == "params"
    # the 300 cells hold 13 of NASLib's; #params ranks them as NASLib's does, up to A1's counting convention
    assert row["naslib"]["n_common"] >= 3 and row["naslib"]["spearman_vs_ours"] > 0.5
    assert row["naslib"]["naslib_n"] == row["naslib"]["n_common"] and -1 <= row["naslib"]["naslib_spearman"] <= 1


@pytest.mark.parametrize(("extra", "words"), [
    (["--proxies", "no-such-proxy"], ["no-such-proxy"]),
    (["--n", "2"], ["--n", "2"]),
    (["--n", "lots"], ["--n", "lots"]),
    (["--top", "0"], ["--top"]),
])
def test_evaluate_bad_input(capsys, lab, toys, extra, words):
    db, _ = lab
    code, _, err = cli(capsys, "proxies", "evaluate", "--db", db, "--task", "cifar100", "--proxies", "toy-oracle",
                       *extra)
    assert code == 2 and all(w in err for w in words)


def test_evaluate_without_accuracy_records(capsys, lab, toys):
    db, _ = lab
    code, _, err = cli(capsys, "proxies", "evaluate", "--db", db, "--task", "cifar10", "--proxies", "toy-oracle")
    assert code == 2 and "cifar10" in err and "nb201-accuracy" in err


def test_ctrl_c_keeps_the_scores(capsys, lab, tmp_path):
    @register_proxy("toy-stop")
    class Stop(Proxy):
        data_free, calls = True, 0

        def score(self, model, batch):
            type(self).calls += 1
            if type(self).calls == 3:
                raise KeyboardInterrupt
            return 1.0

    try:
        db, _ = lab
        scores = tmp_path / "s.jsonl"
        code, _, _ = cli(capsys, "proxies", "evaluate", "--db", db, "--task", "cifar100", "--n", "10",
                         "--proxies", "toy-stop", "--scores", scores)
        assert code == 130 and len(scores.read_text().splitlines()) == 2
    finally:
        unregister_proxy("toy-stop")


def test_pareto_oracle_has_no_gap(capsys, lab, toys, tmp_path):
    db, _ = lab
    png = tmp_path / "front.png"
    code, out, _ = cli(capsys, "proxies", "pareto", "--db", db, "--task", "cifar100", "--device", "raspi4",
                       "--proxies", "toy-oracle,toy-inverse,toy-failing", "--n", "30", "--out", png, "--json")
    assert code == 0
    res = json.loads(out)
    assert png.stat().st_size > 10_000 and json.loads(png.with_suffix(".json").read_text()) == res
    rows = {r["name"]: r for r in res["proxies"]}
    for name in ("toy-oracle", "toy-inverse"):  # fast path: every cell of the table
        assert rows[name]["n"] == N_CELLS and rows[name]["gap"]["max"] == 0.0
        assert rows[name]["proxy_front"] == rows[name]["true_front"]
    failing = rows["toy-failing"]  # sampled, and a constant score: it picks the cheapest cell at every budget
    assert failing["n"] + failing["n_failed"] == 30 and failing["gap"]["max"] > 0
    assert [x["quantile"] for x in rows["toy-oracle"]["named"]] == res["named_quantiles"]


def test_pareto_bad_input(capsys, lab, toys, tmp_path):
    db, _ = lab
    base = ["proxies", "pareto", "--db", db, "--task", "cifar100", "--proxies", "toy-oracle"]
    code, _, err = cli(capsys, *base, "--device", "nowhere", "--out", tmp_path / "f.png")
    assert code == 2 and "nowhere" in err
    code, _, err = cli(capsys, *base, "--device", "raspi4", "--out", tmp_path / "f.svg")
    assert code == 2 and ".png" in err
