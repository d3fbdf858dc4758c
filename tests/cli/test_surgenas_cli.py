"""`edgeprof search surgenas` as a user types it: without a predictor (β = 0) on nb201 and mbconv-small, with a
predictor trained on HELP's raspi4 table at a fixed β and at a target (bisection on β), judged by `report
search`; and the refusals (exit 2 naming the option)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import cli

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
LATENCY_PT = SHARED / "data" / "HELP" / "data" / "nasbench201" / "latency" / "raspi4.pt"
ACC_CSV = SHARED / "data" / "NB201-accuracy" / "cifar100.csv"
SMALL = ("--epochs", "2", "--resolution", "16", "--proxy-n", "60", "--batch-size", "32")


@pytest.fixture(scope="module")
def raspi4(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """raspi4's HELP table, the CIFAR-100 accuracy and an MLP trained on the table (no measuring: seconds)."""
    if not (LATENCY_PT.exists() and ACC_CSV.exists()):
        pytest.skip(f"HELP or NB201-accuracy data not found under {SHARED / 'data'}")
    from edgeprof.cli import main

    tmp = tmp_path_factory.mktemp("surgenas")
    db, pred = tmp / "lab.db", tmp / "mlp-raspi4"
    assert main(["dataset", "import", "help", str(SHARED), "--space", "nb201", "--devices", "raspi4", "--db", str(db),
                 "-q"]) == 0
    assert main(["dataset", "import", "nb201-accuracy", str(ACC_CSV), "--db", str(db)]) == 0
    assert main(["train", "mlp", "--db", str(db), "--device", "raspi4", "--space", "nb201", "--epochs", "30",
                 "--out", str(pred)]) == 0
    return db, pred


@pytest.mark.parametrize("space", ["mbconv-small"])  # nb201 without a predictor: the README walk
def test_without_a_predictor_writes_result_and_plot(capsys, tmp_path, space):
    out = tmp_path / "found.json"
    code, stdout, err = cli(capsys, "search", "surgenas", "--space", space, *SMALL, "--out", out, "--json")
    assert code == 0, err
    res = json.loads(stdout)
    assert res["search"] == "surgenas" and res["space"] == space and res["beta"] == 0.0
    assert res["target"] is None and res["predicted"] is None and res["device"] is None
    assert res["fairness"]["equal"] and res["fairness"]["iterations"] == 4  # 48 images, batch 32, 2 epochs
    assert json.loads(out.read_text())["arch_id"] == res["arch_id"]
    assert Path(res["plot"]).stat().st_size > 10_000


def test_fixed_beta_and_target_with_a_predictor(capsys, tmp_path, raspi4):
    db, pred = raspi4
    common = ("search", "surgenas", "--device", "raspi4", "--predictor", pred, *SMALL, "--db", db)
    code, stdout, err = cli(capsys, *common, "--beta", "0.5", "--out", tmp_path / "beta.json", "--json")
    assert code == 0, err
    fixed = json.loads(stdout)
    assert fixed["beta"] == 0.5 and fixed["target"] is None and fixed["predicted"] > 0
    assert len(fixed["trials"]) == 1

    out = tmp_path / "target.json"
    code, stdout, err = cli(capsys, *common, "--target-ms", "p50", "--max-trials", "3", "--out", out, "--json")
    assert code == 0, err
    res = json.loads(stdout)
    assert 1 <= len(res["trials"]) <= 3 and res["trials"][0]["beta"] == 0.0
    assert [t["arch_id"] for t in res["trials"] if t["chosen"]] == [res["arch_id"]]
    nearest = min(abs(t["error_vs_target"]) for t in res["trials"])
    assert abs(res["relative_error"]) == pytest.approx(nearest)
    # judged on both axes like every search
    code, stdout, err = cli(capsys, "report", "search", out, tmp_path / "beta.json", "--db", db, "--device",
                            "raspi4", "--task", "cifar100", "--out", tmp_path / "r.png", "--json")
    assert code == 0, err
    judged = json.loads(stdout)["results"]
    assert judged[0]["accuracy"] is not None and judged[0]["error_vs_target"] is not None
    assert judged[1]["target"] is None and judged[1]["error_vs_target"] is None and judged[1]["regret"] is not None


@pytest.mark.parametrize(("argv", "message"), [
    (("--space", "nb201", "--beta", "1"), "--beta > 0 puts the predicted latency in the loss"),
    (("--out-of-place",), None),
    ((), "name the space to search"),
    (("--space", "nb201", "--target-ms", "3"), "--predictor"),
    (("--space", "nb202",), "unknown search space 'nb202'"),
    (("--space", "nb201", "--proxy-n", "3"), "--proxy-n must be at least 10"),
    (("--space", "nb201", "--verify"), "--device"),
])
def test_bad_input_is_named(capsys, tmp_path, argv, message):
    try:
        code, _, err = cli(capsys, "search", "surgenas", *argv, "--out", tmp_path / "x.json")
    except SystemExit as e:  # argparse's own refusal
        code, err = e.code, capsys.readouterr().err
    assert code == 2, err
    if message:
        assert message in err, err
    assert "Traceback" not in err


def test_lightnas_still_needs_its_predictor_and_target(capsys, tmp_path):
    code, _, err = cli(capsys, "search", "lightnas", "--device", "local-cpu", "--out", tmp_path / "x.json")
    assert code == 2 and "search lightnas needs --predictor, --target-ms or --target-mj" in err, err
