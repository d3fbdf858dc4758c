"""`edgeprof search lightnas-channels` end to end on a tiny LightNet: the result file and its summary, --verify on
a fake board, and the refusals (a predictor of another base or space, an unreachable target, bad options), each
exit 2 with a message naming what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli

import hwsearch.lightnas_channels  # noqa: F401  (registers the search)

TINY = {"width_mult": 0.25, "resolution": 32, "num_classes": 10, "stage_repeats": [2, 2, 1, 1, 1, 1]}
BASE_ARCH = (0, 1, 2, 3, 6, 1, 0, 4)
SMALL = ("--population", "4", "--iterations", "2", "--top-k", "2", "--resolution", "8", "--images", "32",
         "--batch-size", "16", "--epochs", "2")


def _latency(space, arch) -> float:
    """A made-up board: 1 ms plus 0.1-0.3 ms per unit of each layer's scale."""
    from spaces.mbconv_channels import SCALES

    w = np.linspace(0.1, 0.3, space.n_layers)
    return 1.0 + float(np.dot(w, [SCALES[a] for a in arch]))


def _found(folder: Path, arch=BASE_ARCH) -> Path:
    from spaces import create_space

    base = create_space("mbconv-small", **TINY)
    path = folder / f"found-{'-'.join(map(str, arch))}.json"
    path.write_text(json.dumps({"search": "lightnas", "space": "mbconv-small", "space_config": base.config,
                                "arch_id": base.arch_id(arch)}))
    return path


def _lut(space, folder: Path) -> Path:
    """A LUT predictor of `space` for local-cpu fitted on 60 configurations of the made-up board."""
    from predictors.io import save_predictor
    from predictors.registry import create_predictor

    archs = space.sample_unique(60, np.random.default_rng(0))
    pred = create_predictor("lut", space=space.name, space_config=space.config).fit(
        [space.arch_id(a) for a in archs], np.array([_latency(space, a) for a in archs]))
    return save_predictor(pred, folder, devices=["local-cpu"])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    from spaces.mbconv_channels import ONE, channel_space_for

    tmp = tmp_path_factory.mktemp("channels")
    found = _found(tmp)
    space = channel_space_for(found)
    return found, _lut(space, tmp / "lut"), space, _latency(space, (ONE,) * space.n_layers)


def _args(found: Path, pred: Path, out: Path, target: float, *extra: str) -> list[str]:
    return ["search", "lightnas-channels", "--base", str(found), "--device", "local-cpu", "--predictor", str(pred),
            "--target-ms", f"{target:.4f}", "--out", str(out), *SMALL, *extra]


def test_it_writes_the_result_and_says_what_it_found(setup, tmp_path: Path, capsys) -> None:
    found, pred, space, base_ms = setup
    out = tmp_path / "r.json"
    code, _, err = cli(capsys, *_args(found, pred, out, base_ms))
    assert code == 0, err
    saved = json.loads(out.read_text())
    assert saved["search"] == "lightnas-channels" and saved["device"] == "local-cpu"
    assert saved["space"] == "mbconv-channels" and saved["space_config"]["base"] == space.base_id
    assert saved["base"]["in_population"] and saved["bte"] >= saved["base"]["bte"]
    assert abs(saved["predicted"] / base_ms - 1) <= 0.02 and len(saved["history"]) == 2
    assert saved["evaluations"] >= 4 and out.with_suffix(".png").exists()
    assert saved["arch_id"] in err and f"base {space.base_id} BTE" in err and "networks trained" in err
    assert "scales: " + " ".join(f"{x:g}" for x in saved["scales"]) in err


def test_verify_measures_the_found_network_on_the_board(setup, tmp_path: Path, capsys, monkeypatch) -> None:
    from hwsearch import pipeline
    from profiler.testing.fake_board import fake_measure_rounds

    found, pred, space, base_ms = setup
    calls: list[str] = []
    monkeypatch.setattr(pipeline, "measure_rounds", fake_measure_rounds(calls, lambda a: 1.03 * _latency(space, a)))
    out = tmp_path / "r.json"
    code, stdout, err = cli(capsys, *_args(found, pred, out, base_ms, "--verify", "--rounds", "2", "--db",
                                           str(tmp_path / "d.db"), "--json"))
    assert code == 0, err
    saved = json.loads(out.read_text())
    assert json.loads(stdout)["verify"] == saved["verify"] and "LightNAS channels" not in err  # no bar: --json
    v = saved["verify"]
    assert calls == [saved["arch_id"]] and v["rounds"] == 2
    assert v["median"] == pytest.approx(1.03 * _latency(space, saved["arch"]), rel=1e-6)
    assert v["error_vs_target"] == pytest.approx(v["median"] / base_ms - 1)


def test_a_predictor_of_another_base_is_refused(setup, tmp_path: Path, capsys) -> None:
    from spaces.mbconv_channels import channel_space_for

    found, _, space, base_ms = setup
    other = channel_space_for(_found(tmp_path, (1,) * 8))
    pred = _lut(other, tmp_path / "other")
    out = tmp_path / "r.json"
    code, _, err = cli(capsys, *_args(found, pred, out, base_ms))
    assert code == 2 and other.base_id in err and space.base_id in err and str(pred) in err, err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize(("extra", "words"), [
    (("--top-k", "4"), ("top_k",)),
    (("--rate", "2"), ("'rate'",)),
    (("--epochs", "1"), ("'epochs'",)),
    (("--latency-tolerance", "0"), ("'tolerance'",)),
])
def test_bad_options_are_named(setup, tmp_path: Path, capsys, extra, words) -> None:
    found, pred, _, base_ms = setup
    out = tmp_path / "r.json"
    code, _, err = cli(capsys, *_args(found, pred, out, base_ms, *extra))
    assert code == 2 and all(w in err for w in words), err
    assert "Traceback" not in err and not out.exists()


def test_an_unreachable_target_or_no_base_exits_2(setup, tmp_path: Path, capsys) -> None:
    found, pred, _, base_ms = setup
    out = tmp_path / "r.json"
    code, _, err = cli(capsys, *_args(found, pred, out, base_ms * 10))
    assert code == 2 and "cannot be met" in err and "Traceback" not in err and not out.exists()
    args = _args(found, pred, out, base_ms)
    i = args.index("--base")
    code, _, err = cli(capsys, *(args[:i] + args[i + 2:]))
    assert code == 2 and "--base" in err


def test_without_a_target_it_keeps_the_stage_1_target(setup, tmp_path: Path, capsys) -> None:
    found, pred, _, base_ms = setup
    with_target = tmp_path / "found-t.json"
    with_target.write_text(json.dumps({**json.loads(found.read_text()), "target": round(base_ms, 4),
                                       "metric": "latency"}))
    out = tmp_path / "r.json"
    argv = ["search", "lightnas-channels", "--base", str(with_target), "--device", "local-cpu", "--predictor",
            str(pred), "--out", str(out), *SMALL]
    code, _, err = cli(capsys, *argv)
    assert code == 0, err
    saved = json.loads(out.read_text())
    assert saved["target"] == round(base_ms, 4) and abs(saved["predicted"] / saved["target"] - 1) <= 0.02
    argv[argv.index(str(with_target))] = str(found)  # a result without a target: the user must give one
    code, _, err = cli(capsys, *argv)
    assert code == 2 and "holds no target" in err and "--target-ms" in err
