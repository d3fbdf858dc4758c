"""A search defined outside the package is one file: registered with `register_search`, named in
EDGEPROF_PLUGINS, it gets its own `edgeprof search NAME` sub-command with the options it declares, and the
common verification (`--verify --rounds --correct`) measures its network on this CPU through the agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgeprof.plugins import PluginError, load_plugins, module_name_for, plugin_specs
from hwsearch.registry import list_searches, unregister_search

REPO = Path(__file__).resolve().parents[2]

# Samples --my-samples networks of the predictor's space and keeps the one predicted nearest the target.
PLUGIN = '''
"""A search outside the package (the test's plugin)."""
import numpy as np

from hwsearch import SearchResult, register_search


@register_search("mysearch")
class NearestOfSamples:
    """The sampled network whose prediction is nearest the target."""

    summary = "random samples, the one predicted nearest the target"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--my-samples", type=int, default=32, help="networks to sample")

    @classmethod
    def run_from_args(cls, args, setup):
        space = setup.space
        archs = space.sample_unique(args.my_samples, np.random.default_rng(0))
        ids = [space.arch_id(a) for a in archs]
        predicted = np.asarray(setup.predictor.predict(ids), dtype=float)
        k = int(np.argmin(np.abs(predicted / setup.target - 1.0)))
        return SearchResult(search=cls.name, space=space.name, space_config=space.config, arch=list(archs[k]),
                            arch_id=ids[k], target=setup.target, metric=setup.metric, unit=setup.unit,
                            predicted=float(predicted[k]), params={"my_samples": args.my_samples})
'''


def edgeprof(*args: str, plugins: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EDGEPROF_PLUGINS": plugins}
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, check=False, timeout=600)


@pytest.fixture(scope="module")
def plugin_and_predictor(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """The plugin file, and a FLOPs predictor of NB201 for local-cpu (latency linear in FLOPs, fitted on a
    handful of cells; the search only needs its ranking) with a target inside what it predicts."""
    from predictors.io import save_predictor
    from predictors.registry import create_predictor
    from spaces import create_space

    tmp = tmp_path_factory.mktemp("plugin")
    plugin = tmp / "my_search.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    space = create_space("nb201")
    ids = [space.arch_id(a) for a in space.sample_unique(6, np.random.default_rng(1))]
    flops = np.array([space.costs(space.parse(a))["flops"] for a in ids], dtype=float)
    pred = create_predictor("flops", space="nb201").fit(ids, 0.3 + flops / 1e8)
    folder = save_predictor(pred, tmp / "flops-cpu", devices=["local-cpu"])
    target = float(np.median(pred.predict(ids)))
    return plugin, folder, target


@pytest.mark.slow
def test_plugin_search_runs_and_is_verified_on_this_cpu(plugin_and_predictor, tmp_path: Path) -> None:
    plugin, predictor, target = plugin_and_predictor
    db, out = tmp_path / "x.db", tmp_path / "r.json"
    r = edgeprof("search", "mysearch", "--device", "local-cpu", "--predictor", str(predictor), "--target-ms",
                 f"{target:.4f}", "--my-samples", "7", "--verify", "--rounds", "1", "--correct", "1",
                 "--tolerance", "0.05", "--db", str(db), "--out", str(out), "--json", plugins=str(plugin))
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert json.loads(r.stdout)["arch_id"] == res["arch_id"] and json.loads(r.stdout)["plot"] is None
    assert res["search"] == "mysearch" and res["params"] == {"my_samples": 7}  # its own option arrived
    from spaces import create_space

    space = create_space("nb201")
    assert space.arch_id(space.validate(res["arch"])) == res["arch_id"]  # an arch of the space
    v, loop = res["verify"], res["closed_loop"]
    assert v["device"] == "local-cpu" and v["rounds"] == 1 and v["median"] > 0
    assert loop["predictor"] == "flops predictor" and 1 <= loop["measurements"] <= 2
    assert res["arch"] == loop["arch"] and v["median"] == pytest.approx(loop["measured"])
    # every network the loop measured is a measurement row in the dataset, taken by the agent on this CPU
    summary = json.loads(edgeprof("dataset", "summary", "--db", str(db), "--json").stdout)
    (group,) = summary["groups"]
    assert group["device"] == "local-cpu" and group["space"] == "nb201" and group["ok"] == loop["measurements"]


def test_plugin_search_declares_its_options(plugin_and_predictor) -> None:
    plugin, _, _ = plugin_and_predictor
    r = edgeprof("search", "--help", plugins=str(plugin))
    assert r.returncode == 0 and "mysearch" in r.stdout and "lightnas" in r.stdout
    r = edgeprof("search", "mysearch", "--help", plugins=str(plugin))
    assert r.returncode == 0 and "--my-samples" in r.stdout and "--verify" in r.stdout and "--epochs" not in r.stdout
    r = edgeprof("search", "mysearch", "--help")  # without the plugin there is no such search
    assert r.returncode == 2 and "mysearch" in r.stderr


def test_a_search_that_breaks_the_result_contract_is_named(plugin_and_predictor, tmp_path: Path) -> None:
    plugin, predictor, target = plugin_and_predictor
    bad = tmp_path / "bad_search.py"
    bad.write_text(plugin.read_text().replace('"mysearch"', '"badsearch"').replace(
        "arch=list(archs[k])", "arch=list(archs[k])[:-1]"))
    out = tmp_path / "r.json"
    r = edgeprof("search", "badsearch", "--device", "local-cpu", "--predictor", str(predictor), "--target-ms",
                 f"{target:.4f}", "--out", str(out), plugins=str(bad))
    assert r.returncode == 1 and "badsearch" in r.stderr and "contract" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_a_plugin_that_cannot_be_imported_exits_2_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_here\n")
    for spec, words in ((str(broken), ("broken.py", "no_such_module_here")),
                        ("no_such_plugin_mod", ("no_such_plugin_mod",)),
                        (str(tmp_path / "missing.py"), ("missing.py", "no such file"))):
        r = edgeprof("devices", plugins=spec)
        assert r.returncode == 2 and "EDGEPROF_PLUGINS" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert all(w in r.stderr for w in words), r.stderr


def test_load_plugins_by_path_and_by_name_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = tmp_path / "my_search.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        (by_path,) = load_plugins(str(plugin))
        assert by_path.__name__ == module_name_for(plugin.resolve()) and "mysearch" in list_searches()
        assert load_plugins([str(plugin)]) == [by_path]  # a second load is the same module: no re-registration
        monkeypatch.setenv("EDGEPROF_PLUGINS", f" {plugin} ,, ")
        assert plugin_specs() == [str(plugin)] and load_plugins() == [by_path]
        assert load_plugins("my_search") == [by_path]  # the same file by module name: the same module
        clash = tmp_path / "other" / "my_search.py"  # another file registering the same name
        clash.parent.mkdir()
        clash.write_text(plugin.read_text())
        with pytest.raises(PluginError, match=r"EDGEPROF_PLUGINS: plugin .*other/my_search.py failed to import: "
                                              r".*'mysearch' is already registered"):
            load_plugins(str(clash))
        assert module_name_for(clash) not in sys.modules  # the half-imported clash is not left behind
    finally:
        unregister_search("mysearch")
        for name in ("my_search", module_name_for(plugin.resolve())):
            sys.modules.pop(name, None)
