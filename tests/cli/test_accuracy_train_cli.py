"""`edgeprof train/adapt/evaluate/predict` on accuracy: pairs from the store's accuracy table (real NB201
CIFAR-100 figures), cards of quantity accuracy, maml-acc meta-trained and adapted from the store, and the
mixes of device and task options refused with a message naming them (exit 2)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli

from profiler.accuracy import AccuracyRecord
from profiler.store import Store

ACC_CSV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "NB201-accuracy" / "cifar100.csv"
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def acc_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 seeded cells of the real NB201 CIFAR-100 table, and two latency devices s1, s2 (synthetic, on 40
    archs + HELP's reference archs) for the latency meta predictor the accuracy options must not reach."""
    if not ACC_CSV.exists():
        pytest.skip(f"{ACC_CSV} not found")
    from predictors.hardware_adaptive import HELP_NB201_REFERENCE
    from profiler.importing import imported_model, imported_result
    from spaces import create_space

    with ACC_CSV.open(newline="") as f:
        rows = list(csv.DictReader(f))
    pick = np.random.default_rng(0).choice(len(rows), 600, replace=False)
    db = tmp_path_factory.mktemp("acc-cli") / "lab.db"
    space = create_space("nb201")
    archs = [space.from_index(i) for i in [*range(100, 140), *HELP_NB201_REFERENCE]]
    with Store(db) as store:
        store.add_accuracies(AccuracyRecord("nb201", rows[i]["arch"], "cifar100", "test_accuracy",
                                            float(rows[i]["test_accuracy"]), "nb201-official") for i in pick)
        models = [imported_model(space, a) for a in archs]
        store.add_models(models)
        for device, scale in (("s1", 1.0), ("s2", 2.0)):
            store.add_device(device, "cpu", {})
            store.add_results([imported_result(job_id=device, task_id=str(k), model_sha256=m.sha256, device=device,
                                               median_ms=scale * (1 + sum(a)), environment={}, backend="onnxruntime",
                                               precision="fp32")
                               for k, (m, a) in enumerate(zip(models, archs, strict=True))])
    return db


def test_train_mlp_on_accuracy_evaluate_and_predict(acc_db: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "acc-mlp"
    code, stdout, err = cli(capsys, "train", "mlp", "--db", acc_db, "--space", "nb201", "--quantity", "accuracy",
                            "--task", "cifar100", "--epochs", "100", "--out", out, "--json")
    assert code == 0, err
    res = json.loads(stdout)
    m = res["metrics"]
    assert (res["quantity"], res["task"], res["metric"], res["device"]) == \
        ("accuracy", "cifar100", "test_accuracy", None)
    assert m["n_target_samples"] == 480 and m["n"] == 120
    assert m["spearman"] > 0.8 and m["mae"] < 6  # measured: rho 0.92, MAE 4.1 accuracy points
    card = json.loads((out / "card.json").read_text())
    assert (card["quantity"], card["unit"], card["task"], card["metric"], card["devices"]) == \
        ("accuracy", "%", "cifar100", "test_accuracy", [])
    assert card["target"]["transform"] == "linear"  # accuracy as is, not log
    assert card["metrics"]["spearman"] == m["spearman"]
    code, stdout, err = cli(capsys, "evaluate", out, "--db", acc_db, "--task", "cifar100", "--json")
    assert code == 0, err
    assert json.loads(stdout)["metrics"]["spearman"] == pytest.approx(m["spearman"], abs=1e-9)  # same 120 archs
    code, _, err = cli(capsys, "evaluate", out, "--db", acc_db, "--task", "cifar100")
    assert code == 0 and " pts" in err and " ms" not in err, err
    code, stdout, _ = cli(capsys, "predict", out, "--arch", ARCH)
    assert code == 0 and " % " in stdout and "test_accuracy on cifar100" in stdout and " ms" not in stdout
    code, stdout, _ = cli(capsys, "predict", out, "--arch", ARCH, "--json")
    got = json.loads(stdout)
    assert (got["quantity"], got["unit"]) == ("accuracy", "%")
    assert 0 < got["predictions"][0]["predicted_accuracy"] < 100
    # an accuracy predictor is no device's latency predictor: scoring it on a device, searching with it
    code, _, err = cli(capsys, "evaluate", out, "--db", acc_db, "--device", "s1")
    assert code == 2 and "predicts accuracy" in err and "--task" in err, err
    code, _, err = cli(capsys, "search", "lightnas", "--device", "s1", "--predictor", out, "--target-ms", "5",
                       "--out", tmp_path / "r.json")
    assert code == 2 and "predicts accuracy" in err and "not latency" in err and "--accuracy-predictor" in err, err


def test_accuracy_options_are_checked(acc_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ("train", "mlp", "--db", acc_db, "--space", "nb201", "--out", tmp_path / "x")
    code, _, err = cli(capsys, *base, "--quantity", "accuracy")
    assert code == 2 and "--quantity accuracy needs --task" in err, err
    code, _, err = cli(capsys, *base, "--quantity", "accuracy", "--task", "imagenet16")
    assert code == 2 and "task 'imagenet16'" in err and "tasks with nb201 accuracy: cifar100" in err, err
    code, _, err = cli(capsys, *base, "--quantity", "accuracy", "--task", "cifar100", "--metric", "valid_accuracy")
    assert code == 2 and "metric 'valid_accuracy'" in err and "metric test_accuracy" in err, err
    code, _, err = cli(capsys, *base, "--quantity", "accuracy", "--task", "cifar100", "--device", "s1")
    assert code == 2 and "--device" in err and "no device's" in err, err
    code, _, err = cli(capsys, *base, "--device", "s1", "--task", "cifar100")
    assert code == 2 and "--task: only for --quantity accuracy" in err, err
    code, _, err = cli(capsys, "train", "meta", "--db", acc_db, "--space", "nb201", "--quantity", "accuracy",
                       "--task", "cifar100", "--out", tmp_path / "x")
    assert code == 2 and "maml-acc" in err, err
    code, _, err = cli(capsys, "train", "maml-acc", "--db", acc_db, "--space", "nb201", "--out", tmp_path / "x")
    assert code == 2 and "maml-acc needs --tasks" in err, err
    code, _, err = cli(capsys, "train", "maml-acc", "--db", acc_db, "--space", "nb201", "--tasks", "cifar10",
                       "--out", tmp_path / "x")
    assert code == 2 and "task 'cifar10'" in err and "cifar100" in err, err
    assert not (tmp_path / "x").exists()


def test_maml_acc_train_adapt_evaluate(acc_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta, adapted = tmp_path / "maml", tmp_path / "maml-10"
    code, stdout, err = cli(capsys, "train", "maml-acc", "--db", acc_db, "--space", "nb201", "--tasks", "cifar100",
                            "--train-n", "400", "--epochs", "200", "--out", meta, "--json")
    assert code == 0, err
    res = json.loads(stdout)
    assert res["tasks"] == ["cifar100"] and res["quantity"] == "accuracy"
    init = res["meta_init_metrics"]["cifar100"]
    assert init["n"] == 200 and init["spearman"] > 0.7  # measured: 0.86 (the meta-init as is, held out)
    card = json.loads((meta / "card.json").read_text())
    assert (card["quantity"], card["kind"], card["devices"], card["state"]["meta_tasks"]) == \
        ("accuracy", "maml-acc", [], ["cifar100"])
    seen = set(json.loads((meta / "train_archs.json").read_text()))
    assert len(seen) == 400
    code, stdout, err = cli(capsys, "adapt", meta, "--db", acc_db, "--task", "cifar100", "--samples", "10",
                            "--out", adapted, "--json")
    assert code == 0, err
    m = json.loads(stdout)["metrics"]
    assert m["n"] == 600 - 400 - 10 and m["n_target_samples"] == 10  # neither meta-training's archs nor the K
    assert m["spearman"] > 0.7  # measured: 0.86 (meta-trained on this task already: 10 pairs add little)
    support = set(json.loads((adapted / "train_archs.json").read_text())) - seen
    assert len(support) == 10  # drawn from the archs meta-training never saw
    card = json.loads((adapted / "card.json").read_text())
    assert (card["quantity"], card["task"], card["state"]["adapted"]) == ("accuracy", "cifar100", True)
    code, stdout, err = cli(capsys, "evaluate", adapted, "--db", acc_db, "--task", "cifar100", "--json")
    assert code == 0, err
    assert json.loads(stdout)["metrics"]["spearman"] == pytest.approx(m["spearman"], abs=1e-9)
    code, again, err = cli(capsys, "adapt", meta, "--db", acc_db, "--task", "cifar100", "--samples", "10",
                           "--out", adapted, "--force", "--json")
    assert code == 0 and json.loads(again)["metrics"] == m, err  # seeded: the same K pairs
    code, stdout, _ = cli(capsys, "predict", adapted, "--arch", ARCH)
    assert code == 0 and " % " in stdout and "on cifar100" in stdout


def test_adapt_checks_device_against_task(acc_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta = tmp_path / "maml"
    code, _, err = cli(capsys, "train", "maml-acc", "--db", acc_db, "--space", "nb201", "--tasks", "cifar100",
                       "--epochs", "5", "--out", meta)
    assert code == 0, err
    code, _, err = cli(capsys, "adapt", meta, "--db", acc_db, "--samples", "10", "--out", tmp_path / "a")
    assert code == 2 and "--task is required" in err, err
    code, _, err = cli(capsys, "adapt", meta, "--db", acc_db, "--device", "s1", "--task", "cifar100", "--out",
                       tmp_path / "a")
    assert code == 2 and "--device" in err and "maml-acc accuracy predictor" in err, err
    code, _, err = cli(capsys, "adapt", meta, "--db", acc_db, "--task", "imagenet16", "--out", tmp_path / "a")
    assert code == 2 and "task 'imagenet16'" in err and "cifar100" in err, err
    lat = tmp_path / "help"
    code, _, err = cli(capsys, "train", "meta", "--db", acc_db, "--space", "nb201", "--devices", "s1,s2", "--single",
                       "--epochs", "2", "--out", lat)
    assert code == 0, err
    code, _, err = cli(capsys, "adapt", lat, "--db", acc_db, "--task", "cifar100", "--out", tmp_path / "a")
    assert code == 2 and "--task" in err and "latency predictor" in err and "--device" in err, err
    code, _, err = cli(capsys, "adapt", lat, "--db", acc_db, "--out", tmp_path / "a")
    assert code == 2 and "--device is required" in err, err
    code, _, err = cli(capsys, "evaluate", lat, "--db", acc_db, "--task", "cifar100")
    assert code == 2 and "not accuracy" in err, err
    assert not (tmp_path / "a").exists()
