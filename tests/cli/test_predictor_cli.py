"""Predictor commands end to end on a HELP table imported into a real SQLite store."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import cli, run_here

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def edgeprof(*args: str) -> subprocess.CompletedProcess[str]:
    """The command in this process (cli_helpers.run_here): these tests check exit codes and output, not startup."""
    return run_here(*args)


@pytest.fixture(scope="module")
def help_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    if not (SHARED / "data" / "HELP" / "data" / "nasbench201" / "latency" / "fpga.pt").exists():
        pytest.skip(f"HELP data not found under {SHARED}")
    db = str(tmp_path_factory.mktemp("pred") / "h.db")
    r = edgeprof("dataset", "import", "help", str(SHARED), "--space", "nb201", "--devices", "fpga", "--db", db)
    assert r.returncode == 0, r.stderr
    return db


def test_train_evaluate_predict_report(help_db: str, tmp_path: Path) -> None:
    out = tmp_path / "mlp-fpga"
    r = edgeprof("train", "mlp", "--db", help_db, "--device", "fpga", "--space", "nb201", "--train-n", "900",
                 "--epochs", "20", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)["metrics"]
    assert m["n_target_samples"] == 900 and m["n"] == 15625 - 900 and "900 train" in m["split"]
    assert m["spearman"] > 0.8
    assert (out / "card.json").exists()
    ev = json.loads(edgeprof("evaluate", str(out), "--db", help_db, "--device", "fpga", "--json").stdout)
    assert abs(ev["metrics"]["spearman"] - m["spearman"]) < 1e-9  # the same held-out archs
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    p = json.loads(edgeprof("predict", str(out), "--arch", arch, "--json").stdout)
    assert p["predictions"][0]["predicted_ms"] > 0
    rep = edgeprof("report", "predictor", str(out), "--db", help_db, "--device", "fpga", "--out", str(tmp_path / "r"))
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "r" / "scatter.png").stat().st_size > 10_000
    assert "Spearman" in (tmp_path / "r" / "metrics.md").read_text()


def test_bad_input_is_named(help_db: str, tmp_path: Path) -> None:
    r = edgeprof("train", "mlp", "--db", help_db, "--device", "raspi9", "--space", "nb201",
                 "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "raspi9" in r.stderr and "fpga" in r.stderr  # names the devices that have data
    r = edgeprof("train", "mlpp", "--db", help_db, "--device", "fpga", "--space", "nb201", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "mlpp" in r.stderr
    r = edgeprof("train", "mlp", "--db", help_db, "--device", "fpga", "--space", "mbconv", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "mbconv" in r.stderr


@pytest.fixture(scope="module")
def fleet_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Five NB201 devices (3 sources, 1 meta-valid, 1 target) and one FBNet device."""
    if not (SHARED / "data" / "HELP" / "data" / "fbnet" / "latency" / "fpga.pt").exists():
        pytest.skip(f"HELP data not found under {SHARED}")
    db = str(tmp_path_factory.mktemp("meta") / "m.db")
    r = edgeprof("dataset", "import", "help", str(SHARED), "--space", "nb201", "--devices",
                 "1080ti_1,silver_4114,pixel3,titanx_1,raspi4", "--db", db)
    assert r.returncode == 0, r.stderr
    r = edgeprof("dataset", "import", "help", str(SHARED), "--space", "fbnet", "--devices", "eyeriss", "--db", db)
    assert r.returncode == 0, r.stderr
    return db


@pytest.mark.slow
def test_meta_train_adapt_evaluate(fleet_db: str, tmp_path: Path) -> None:
    meta = tmp_path / "meta"
    r = edgeprof("train", "meta", "--db", fleet_db, "--space", "nb201", "--devices", "1080ti_1,silver_4114,pixel3",
                 "--valid-devices", "titanx_1", "--single", "--epochs", "100", "--out", str(meta), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["kind"] == "help" and res["valid_devices"] == ["titanx_1"] and 0 < res["valid_spearman"] <= 1
    adapted = tmp_path / "raspi4"
    r = edgeprof("adapt", str(meta), "--db", fleet_db, "--device", "raspi4", "--samples", "10", "--out", str(adapted),
                 "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)["metrics"]
    assert m["n_target_samples"] == 10 and m["spearman"] > 0.5  # 100 meta-iterations only: loose
    ev = edgeprof("evaluate", str(adapted), "--db", fleet_db, "--device", "raspi4", "--json")
    assert ev.returncode == 0, ev.stderr
    # bad input: too few samples, a device without data, a space mismatch
    r = edgeprof("adapt", str(meta), "--db", fleet_db, "--device", "raspi4", "--samples", "1",
                 "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "--samples" in r.stderr and "at least 2" in r.stderr
    r = edgeprof("adapt", str(meta), "--db", fleet_db, "--device", "jetson9", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "jetson9" in r.stderr and "raspi4" in r.stderr
    r = edgeprof("adapt", str(meta), "--db", fleet_db, "--device", "eyeriss", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "space mismatch" in r.stderr and "fbnet" in r.stderr
    r = edgeprof("evaluate", str(adapted), "--db", fleet_db, "--device", "eyeriss")
    assert r.returncode == 2 and "space mismatch" in r.stderr
    r = edgeprof("train", "meta", "--db", fleet_db, "--space", "nb201", "--devices", "raspi4",
                 "--out", str(tmp_path / "y"))
    assert r.returncode == 2 and "at least two" in r.stderr


@pytest.fixture(scope="module")
def help_meta(fleet_db: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The README's `train meta` as written (the space's default ensemble), at a small number of iterations."""
    out = tmp_path_factory.mktemp("ensemble") / "help-meta"
    r = edgeprof("train", "meta", "--db", fleet_db, "--space", "nb201", "--devices", "1080ti_1,silver_4114,pixel3",
                 "--valid-devices", "titanx_1", "--out", str(out), "--epochs", "10", "--json")
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


@pytest.mark.slow
def test_readme_few_shot_flow_with_the_default_ensemble(help_meta: tuple[Path, dict], fleet_db: str,
                                                         tmp_path: Path) -> None:
    """`train meta` then `adapt` as the README writes them: the default ensemble, not --single."""
    meta, res = help_meta
    assert res["kind"] == "help-ensemble" and res["valid_devices"] == ["titanx_1"] and 0 < res["valid_spearman"] <= 1
    card = json.loads((meta / "card.json").read_text())
    assert len(card["state"]["members"]) == 3 and card["features"]["device_embedding"]["reference_archs"]
    adapted = tmp_path / "help-raspi4"
    r = edgeprof("adapt", str(meta), "--db", fleet_db, "--device", "raspi4", "--samples", "10", "--out", str(adapted))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "adapted to raspi4 with 10 samples (+10 reference archs)" in r.stderr
    ev = edgeprof("evaluate", str(adapted), "--db", fleet_db, "--device", "raspi4", "--json")
    assert ev.returncode == 0, ev.stderr
    m = json.loads(ev.stdout)["metrics"]
    assert m["n_target_samples"] == 20 and m["n"] == 15625 - 20  # K samples + reference archs left out
    assert m["spearman"] > 0.8  # 30 meta-iterations: loose, far above chance
    rep = edgeprof("report", "predictor", str(adapted), "--db", fleet_db, "--device", "raspi4", "--out",
                   str(tmp_path / "rep"))
    assert rep.returncode == 0, rep.stderr
    # a predictor that is not meta-trained cannot be adapted
    r = edgeprof("adapt", str(adapted / "nope"), "--db", fleet_db, "--device", "raspi4", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "nope" in r.stderr


@pytest.fixture(scope="module")
def two_backends_db(fleet_db: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The fleet plus 'xavier', measured on 400 NB201 archs and HELP's reference archs under two backends."""
    import shutil

    import numpy as np

    from predictors.data import load_xy
    from predictors.hardware_adaptive import HELP_NB201_REFERENCE
    from profiler.importing import imported_model, imported_result
    from profiler.store import Store
    from spaces import create_space

    db = str(tmp_path_factory.mktemp("settings") / "s.db")
    shutil.copy(fleet_db, db)
    sp = create_space("nb201")
    with Store(db) as store:
        ids, y = load_xy(store, "raspi4", "nb201")
        rows = sorted(set(range(400)) | set(HELP_NB201_REFERENCE))
        models = [imported_model(sp, sp.from_index(i)) for i in rows]
        store.add_device("xavier", "jetson", {})
        store.add_models(models)
        noise = np.random.default_rng(0).lognormal(0, 0.05, len(rows))
        for backend, scale in (("onnxruntime", 1.0), ("tensorrt", 0.3)):
            store.add_results([
                imported_result(job_id=f"xavier-{backend}", task_id=str(i), model_sha256=m.sha256, device="xavier",
                                median_ms=float(scale * y[ids.index(sp.arch_id(sp.from_index(i)))] * noise[k]),
                                batch=1, backend=backend, environment={})
                for k, (i, m) in enumerate(zip(rows, models, strict=True))])
    return db


@pytest.mark.slow
def test_a_device_measured_under_two_backends_is_picked_with_backend(help_meta: tuple[Path, dict],
                                                                     two_backends_db: str, tmp_path: Path) -> None:
    db, meta = two_backends_db, str(help_meta[0])

    def refused(r: subprocess.CompletedProcess[str]) -> bool:
        return (r.returncode == 2 and "xavier has nb201 measurements under 2 settings: backend=onnxruntime" in r.stderr
                and "backend=tensorrt" in r.stderr and "pick one with --backend" in r.stderr)

    mlp = tmp_path / "mlp-xavier"
    r = edgeprof("train", "mlp", "--db", db, "--device", "xavier", "--space", "nb201", "--out", str(mlp))
    assert refused(r), r.stderr
    r = edgeprof("train", "mlp", "--db", db, "--device", "xavier", "--space", "nb201", "--out", str(mlp),
                 "--backend", "tensorrt", "--epochs", "5", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["metrics"]["n"] == 82  # 20% of the 408 tensorrt archs (2 references are < 400)

    adapted = tmp_path / "help-xavier"
    r = edgeprof("adapt", meta, "--db", db, "--device", "xavier", "--samples", "10", "--out", str(adapted))
    assert refused(r), r.stderr
    r = edgeprof("adapt", meta, "--db", db, "--device", "xavier", "--samples", "10", "--out", str(adapted),
                 "--backend", "onnxruntime", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["metrics"]["n"] == 408 - 20

    r = edgeprof("evaluate", str(adapted), "--db", db, "--device", "xavier")
    assert refused(r), r.stderr
    r = edgeprof("evaluate", str(adapted), "--db", db, "--device", "xavier", "--backend", "tensorrt", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["metrics"]["spearman"] > 0.5  # same ranking, another scale
    r = edgeprof("report", "predictor", str(adapted), "--db", db, "--device", "xavier", "--out", str(tmp_path / "r"))
    assert refused(r), r.stderr

    # meta-training: the option picks xavier's setting; the imported devices keep their only one
    out = str(tmp_path / "meta-x")
    r = edgeprof("train", "meta", "--db", db, "--space", "nb201", "--devices", "1080ti_1,xavier", "--single",
                 "--epochs", "2", "--out", out)
    assert refused(r), r.stderr
    r = edgeprof("train", "meta", "--db", db, "--space", "nb201", "--devices", "1080ti_1,xavier", "--single",
                 "--epochs", "2", "--out", out, "--backend", "tensorrt")
    assert r.returncode == 0, r.stderr
    r = edgeprof("train", "mlp", "--db", db, "--device", "xavier", "--space", "nb201", "--out", str(mlp),
                 "--space-config", "[16]")
    assert r.returncode == 2 and "--space-config" in r.stderr and "JSON object" in r.stderr


# --- fast, in-process: a device measured under two space configs, and a meta-trained predictor not adapted ---

def _op_cost_latency(seed: int, scale: float = 1.0) -> Callable[[list[int]], float]:
    """A synthetic device: a fixed cost per op, summed over the cell's edges (an NB201 arch is 6 op indices)."""
    import numpy as np

    cost = np.random.default_rng(seed).uniform(0.1, 2.0, 5)
    return lambda arch: scale * (1.0 + float(cost[np.asarray(arch)].sum()))


@pytest.fixture(scope="module")
def two_configs_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sources s1, s2 (240 NB201 archs + HELP's reference archs, default config) and 'board', measured on 60
    archs + the references under two space configs: the default (C=16) and C=8 (half the latency)."""
    from predictors.hardware_adaptive import HELP_NB201_REFERENCE
    from profiler.importing import imported_model, imported_result
    from profiler.store import Store
    from spaces import create_space

    db = tmp_path_factory.mktemp("configs") / "c.db"
    others = [i for i in range(0, 15625, 37) if i not in HELP_NB201_REFERENCE]
    plan = [("s1", create_space("nb201"), others[:240], _op_cost_latency(1)),
            ("s2", create_space("nb201"), others[:240], _op_cost_latency(2)),
            ("board", create_space("nb201"), others[:60], _op_cost_latency(3)),
            ("board", create_space("nb201", C=8), others[:60], _op_cost_latency(3, 0.5))]
    with Store(db) as store:
        for device, space, indices, latency in plan:
            archs = [space.from_index(i) for i in [*indices, *HELP_NB201_REFERENCE]]
            models = [imported_model(space, a) for a in archs]
            store.add_device(device, "cpu", {})
            store.add_models(models)
            store.add_results([imported_result(job_id=f"{device}-{space.config['C']}", task_id=str(k),
                                               model_sha256=m.sha256, device=device, median_ms=latency(a),
                                               environment={}, backend="onnxruntime", precision="fp32")
                               for k, (m, a) in enumerate(zip(models, archs, strict=True))])
    return db


def test_evaluate_and_report_use_the_predictors_own_space_config(two_configs_db: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    db = two_configs_db
    code, _, err = cli(capsys, "train", "mlp", "--db", db, "--device", "board", "--space", "nb201", "--out",
                       tmp_path / "p")
    assert code == 2 and "under 2 settings" in err and "--space-config" in err, err  # training must pick one
    code, out, err = cli(capsys, "train", "mlp", "--db", db, "--device", "board", "--space", "nb201",
                         "--space-config", '{"C": 8}', "--epochs", "2", "--out", tmp_path / "c8", "--json")
    assert code == 0, err
    card = json.loads((tmp_path / "c8" / "card.json").read_text())
    assert card["params"]["space_config"] == {"C": 8, "N": 5, "num_classes": 10, "resolution": 32}  # the data's
    n_test = json.loads(out)["metrics"]["n"]
    code, out, err = cli(capsys, "evaluate", tmp_path / "c8", "--db", db, "--device", "board", "--json")
    assert code == 0, err  # no --space-config: the card's
    assert json.loads(out)["metrics"]["n"] == n_test  # the same held-out archs as at training
    code, _, err = cli(capsys, "report", "predictor", tmp_path / "c8", "--db", db, "--device", "board",
                       "--out", tmp_path / "rep")
    assert code == 0 and (tmp_path / "rep" / "metrics.json").exists(), err
    # the user's --space-config still wins; a config the device lacks lists its settings
    code, _, err = cli(capsys, "evaluate", tmp_path / "c8", "--db", db, "--device", "board", "--space-config",
                       '{"C": 16}', "--json")
    assert code == 0, err
    code, _, err = cli(capsys, "evaluate", tmp_path / "c8", "--db", db, "--device", "s1")
    assert code == 2 and "(the space config is the predictor's own (from its card))" in err, err
    assert "s1 has nb201 measurements under 1 setting: backend=onnxruntime precision=fp32 batch=1 space_config=" in err
    assert "pick one with --space-config" in err


def test_a_meta_trained_predictor_adapts_under_its_config_and_must_be_adapted_to_predict(
        two_configs_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, meta = two_configs_db, tmp_path / "meta"
    code, _, err = cli(capsys, "train", "meta", "--db", db, "--space", "nb201", "--devices", "s1,s2", "--single",
                       "--epochs", "2", "--out", meta)
    assert code == 0, err
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    advice = f"{meta} is meta-trained but not adapted to a device yet: run `edgeprof adapt {meta} --db DB"
    for argv in (("predict", meta, "--arch", arch), ("evaluate", meta, "--db", db, "--device", "board"),
                 ("report", "predictor", meta, "--db", db, "--device", "board", "--out", tmp_path / "r")):
        code, _, err = cli(capsys, *argv)
        assert code == 2 and advice in err and "--samples 10 --out ADAPTED" in err, (argv, err)
        assert "Traceback" not in err and "adapt()" not in err
    # board was measured under two configs; the meta predictor's card names one (its sources')
    code, out, err = cli(capsys, "adapt", meta, "--db", db, "--device", "board", "--samples", "5", "--out",
                         tmp_path / "a", "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"]["n"] == 60 - 5  # the default-config archs, less the 5 samples
    code, out, err = cli(capsys, "predict", tmp_path / "a", "--arch", arch, "--json")
    assert code == 0 and json.loads(out)["predictions"][0]["predicted_ms"] > 0, err
