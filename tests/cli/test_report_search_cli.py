"""`edgeprof report search` on HELP's raspi4 NB201 table and the real NB201 CIFAR-100 accuracy: the numbers
against a direct computation from the shared files, the PNG, and the refusals (exit 2 naming the file)."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
from cli_helpers import cli, run_here

from hwsearch.result import SearchResult
from spaces import create_space

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
LATENCY_PT = SHARED / "data" / "HELP" / "data" / "nasbench201" / "latency" / "raspi4.pt"
ACC_CSV = SHARED / "data" / "NB201-accuracy" / "cifar100.csv"
NB = create_space("nb201")


def edgeprof(*args: object) -> subprocess.CompletedProcess[str]:
    """The command in this process (cli_helpers.run_here): these tests check exit codes and output, not startup."""
    return run_here(*args)


@pytest.fixture(scope="module")
def lab_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """raspi4's HELP table and the NB201 CIFAR-100 accuracy in one store (a few seconds)."""
    if not (LATENCY_PT.exists() and ACC_CSV.exists()):
        pytest.skip(f"HELP or NB201-accuracy data not found under {SHARED / 'data'}")
    db = str(tmp_path_factory.mktemp("report") / "lab.db")
    r = edgeprof("dataset", "import", "help", SHARED, "--space", "nb201", "--devices", "raspi4", "--db", db, "-q")
    assert r.returncode == 0, r.stderr
    r = edgeprof("dataset", "import", "nb201-accuracy", ACC_CSV, "--db", db)
    assert r.returncode == 0, r.stderr
    return db


def direct() -> tuple[list[float], list[float]]:
    """raspi4 latency (ms) and CIFAR-100 test accuracy (%) per NB201 index, read straight from the files."""
    import torch

    lat = [float(v) for v in torch.load(LATENCY_PT)]
    with ACC_CSV.open() as f:
        acc = {int(row["index"]): float(row["test_accuracy"]) for row in csv.DictReader(f)}
    return lat, [acc[i] for i in range(len(lat))]


def write_result(path: Path, index: int, target: float, search: str = "lightnas", **extra: object) -> Path:
    arch = list(NB.from_index(index))
    res = SearchResult(search=search, space="nb201", space_config=NB.config, arch=arch, arch_id=NB.arch_id(arch),
                       target=target, metric="latency", unit="ms", predicted=target).to_dict()
    path.write_text(json.dumps({**res, **extra}))
    return path


def test_report_json_against_the_shared_files(lab_db: str, tmp_path: Path) -> None:
    best = write_result(tmp_path / "best.json", 9930, 47.0,
                        verify={"device": "raspi4", "rounds": 3, "values": [60.0, 61.0, 59.0], "median": 60.0})
    small = write_result(tmp_path / "small.json", 387, 3.0, search="random")
    r = edgeprof("report", "search", best, small, "--db", lab_db, "--device", "raspi4", "--task", "cifar100",
                 "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    lat, acc = direct()
    n = len(lat)

    def best_under(budget: float) -> float:
        return max(acc[i] for i in range(n) if lat[i] <= budget)

    j = out["results"][0]
    assert j["file"] == str(best) and j["short"] == "#9930"
    assert (j["latency"], j["latency_source"]) == (60.0, "measured")  # the result's own measurement on raspi4
    assert j["latency_table"] == pytest.approx(lat[9930])
    assert j["accuracy"] == pytest.approx(73.5133) == pytest.approx(acc[9930])  # the space's best cell
    assert j["regret"] == pytest.approx(best_under(60.0) - acc[9930])
    assert j["error_vs_target"] == pytest.approx(60.0 / 47.0 - 1) and j["within_target"] is False
    assert j["best_at_target"] == pytest.approx(best_under(47.0))
    assert j["regret_at_target"] == pytest.approx(best_under(47.0) - acc[9930])
    front = j["front_at_target"]
    assert front["accuracy"] == pytest.approx(best_under(47.0)) and front["latency"] <= 47.0
    assert acc[NB.index(NB.parse(front["arch_id"]))] == pytest.approx(front["accuracy"])

    k = out["results"][1]
    assert (k["search"], k["latency_source"]) == ("random", "table")
    assert k["latency"] == pytest.approx(lat[387]) and k["accuracy"] == pytest.approx(acc[387])
    assert k["regret"] == pytest.approx(best_under(lat[387]) - acc[387])
    under = [a for a, c in zip(acc, lat, strict=True) if c <= 3.0]
    assert k["n_under_target"] == len(under)
    assert k["percentile_under_target"] == pytest.approx(100 * sum(a <= acc[387] for a in under) / len(under))

    assert out["table"]["n"] == n == 15625 and out["front"]["n"] > 10 and out["front"]["hypervolume"] > 0
    png = tmp_path / "best.report.png"  # the default: beside the first result
    assert out["plot"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_refusals_name_the_file(lab_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_result(tmp_path / "good.json", 9930, 47.0)
    args = ("--db", lab_db, "--device", "raspi4", "--task", "cifar100", "--out", tmp_path / "r.png")
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "edgeprof.search-result",')
    code, _, err = cli(capsys, "report", "search", good, broken, *args)
    assert code == 2 and "broken.json: not valid JSON" in err
    other = tmp_path / "metrics.json"
    other.write_text(json.dumps({"spearman": 0.9}))
    code, _, err = cli(capsys, "report", "search", other, *args)
    assert code == 2 and "metrics.json: not a search result" in err
    fb = create_space("fbnet")
    arch = list(fb.sample(__import__("numpy").random.default_rng(0)))
    fbnet = tmp_path / "fbnet.json"
    fbnet.write_text(json.dumps(SearchResult(search="s", space="fbnet", space_config=fb.config, arch=arch,
                                             arch_id=fb.arch_id(arch), target=5.0, metric="latency", unit="ms",
                                             predicted=5.0).to_dict()))
    code, _, err = cli(capsys, "report", "search", good, fbnet, *args)
    assert code == 2 and "fbnet.json: a result of space 'fbnet'" in err
    code, _, err = cli(capsys, "report", "search", fbnet, *args)  # the store has no fbnet data on raspi4
    assert code == 2 and "fbnet" in err and "raspi4" in err
    code, out, err = cli(capsys, "report", "search", good, *args[:-2], "--task", "cifar10", "--json")
    assert code == 2 and "task 'cifar10', metric 'test_accuracy'" in err and "task cifar100" in err
    assert json.loads(out)["error"]["exit_code"] == 2
    code, _, err = cli(capsys, "report", "search", good, *args[:-1], tmp_path / "r.json")
    assert code == 2 and "r.json: the report is a PNG" in err
    assert not (tmp_path / "r.png").exists() and not (tmp_path / "good.report.png").exists()


def test_table_output_and_notes(lab_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json: the table on stdout (the arch by its NB201 index, the source, 'over' the target), the
    notes and the PNG path on stderr."""
    r = write_result(tmp_path / "r.json", 9930, 47.0,
                     verify={"device": "jetson", "rounds": 1, "values": [50.0], "median": 50.0})
    png = tmp_path / "out" / "x.png"
    code, out, err = cli(capsys, "report", "search", r, "--db", lab_db, "--device", "raspi4", "--task",
                         "cifar100", "--out", png)
    assert code == 0, err
    assert "#9930" in out and "(table)" in out and "over" in out and "73.51" in out
    assert "measured on 'jetson', not 'raspi4'" in err and str(png) in err.replace("\n", "")
    assert png.read_bytes()[:4] == b"\x89PNG"
    # two results of one search are told apart by their file names
    r2 = write_result(tmp_path / "second.json", 387, 3.0)
    code, out, err = cli(capsys, "report", "search", r, r2, "--db", lab_db, "--device", "raspi4", "--task",
                         "cifar100", "--out", png)
    assert code == 0, err
    assert "lightnas (r)" in out and "lightnas (second)" in out


def test_target_option_judges_at_another_budget(lab_db: str, tmp_path: Path, capsys) -> None:
    """A network searched for 5 ms elsewhere (a group's representative), judged on raspi4 at raspi4's 12 ms."""
    lat, acc = direct()
    i = min(range(len(lat)), key=lambda k: abs(lat[k] - 11.0))
    res = write_result(tmp_path / "rep.json", i, 5.0)
    code, out, err = cli(capsys, "report", "search", res, "--db", lab_db, "--device", "raspi4", "--task", "cifar100",
                         "--target", "12", "--out", tmp_path / "r.png", "--json")
    assert code == 0, err
    j = json.loads(out)["results"][0]
    assert j["target"] == 12.0 and j["within_target"] is True
    assert j["error_vs_target"] == pytest.approx(lat[i] / 12.0 - 1.0)
    best = max(a for c, a in zip(lat, acc, strict=True) if c <= 12.0)
    assert j["regret_at_target"] == pytest.approx(best - acc[i])
    code, _, err = cli(capsys, "report", "search", res, "--db", lab_db, "--device", "raspi4", "--task", "cifar100",
                       "--target", "-1", "--out", tmp_path / "r.png")
    assert code == 2 and "--target must be a positive number" in err
