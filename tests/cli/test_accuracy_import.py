"""`edgeprof dataset import nb201-accuracy`: the real NB201 CIFAR-100 table, idempotence, malformed files refused
by line and all or nothing, and the accuracy in `dataset summary` and `dataset export`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cli_helpers import cli

from predictors.importers import IMPORTERS
from predictors.importers.nb201_accuracy import import_nb201_accuracy
from profiler.importing import imported_model, imported_result
from profiler.store import Store
from spaces import create_space

ACC_CSV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "NB201-accuracy" / "cifar100.csv"
needs_data = pytest.mark.skipif(not ACC_CSV.exists(), reason=f"{ACC_CSV} not found")
SPACE = create_space("nb201")
HEADER = "index,arch,test_accuracy"


def line(index: int, value: object) -> str:
    return f"{index},{SPACE.arch_id(SPACE.from_index(index))},{value}"


def small_csv(folder: Path, lines: list[str], name: str = "cifar100.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return path


def test_registered() -> None:
    assert IMPORTERS["nb201-accuracy"] is import_nb201_accuracy


@needs_data
def test_the_real_table_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "a.db"
    code, out, err = cli(capsys, "dataset", "import", "nb201-accuracy", ACC_CSV, "--db", db, "--json")
    assert code == 0, err
    first = json.loads(out)
    assert (first["rows"], first["added"], first["skipped"], first["replaced"]) == (15625, 15625, 0, 0)
    assert first["wall_s"] < 10  # executemany, one transaction (about 0.5 s here)
    code, out, err = cli(capsys, "dataset", "import", "nb201-accuracy", ACC_CSV, "--db", db)
    assert code == 0 and "0 added, 15625 skipped, 0 replaced" in err, err
    with Store(db, readonly=True) as s:
        acc = s.accuracies("nb201", "cifar100")
        row = s.db.execute("SELECT space_config, provenance FROM accuracies LIMIT 1").fetchone()
    assert len(acc) == 15625
    best = max(acc, key=acc.__getitem__)
    assert best == SPACE.arch_id(SPACE.from_index(9930)) and acc[best] == 73.5133
    assert json.loads(row[0])["num_classes"] == 100
    prov = json.loads(row[1])
    assert prov["file"] == "cifar100.csv" and prov["hp"] == "200" and len(prov["sha256"]) == 64
    assert prov["benchmark"] == "NAS-Bench-201 v1_1"
    # the summary shows it, as a table and in JSON
    code, out, _ = cli(capsys, "dataset", "summary", "--db", db)
    assert code == 0 and "accuracy records" in out and "15625" in out and "73.51" in out, out
    code, out, _ = cli(capsys, "dataset", "summary", "--db", db, "--json")
    assert json.loads(out)["accuracy"] == [{"space": "nb201", "task": "cifar100", "metric": "test_accuracy",
                                            "source": "nb201", "n": 15625, "min": 1.0, "median": 65.2733,
                                            "max": 73.5133}]


def test_a_changed_value_is_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "a.db"
    path = small_csv(tmp_path / "v1", [HEADER, line(0, 52.9), line(1, 70.3), line(2, 60.0)])
    assert cli(capsys, "dataset", "import", "nb201-accuracy", path, "--db", db)[0] == 0
    path = small_csv(tmp_path / "v2", [HEADER, line(0, 52.9), line(1, 71.0), line(2, 60.0)])
    code, out, err = cli(capsys, "dataset", "import", "nb201-accuracy", path, "--db", db, "--json")
    assert code == 0, err
    assert {k: json.loads(out)[k] for k in ("added", "skipped", "replaced")} == {"added": 0, "skipped": 2,
                                                                               "replaced": 1}
    with Store(db) as s:
        assert s.accuracies("nb201", "cifar100")[SPACE.arch_id(SPACE.from_index(1))] == 71.0


ARCH3 = SPACE.arch_id(SPACE.from_index(3))
MALFORMED = {
    "bad-header": ([HEADER.replace("arch", "cell"), line(0, 50)], 1, "header"),
    "bad-arch": ([HEADER, line(0, 50), f"1,{ARCH3.replace('~1', '~7')},50"], 3, "not an NB201 arch string"),
    "wrong-index": ([HEADER, line(0, 50), line(1, 50), f"5,{ARCH3},50"], 4, "is not the NB201 index"),
    "not-a-number": ([HEADER, line(0, 50), line(1, "fifty")], 3, "'fifty' is not a number"),
    "over-100": ([HEADER, line(0, 50), line(1, 120)], 3, "not a percentage in 0..100"),
    "nan": ([HEADER, line(0, "nan")], 2, "not a percentage"),
    "empty": ([], 1, "empty"),
    "header-only": ([HEADER], 2, "no data lines"),
    "twice": ([HEADER, line(0, 50), line(1, 50), line(0, 51)], 4, "again (first on line 2)"),
    "short-line": ([HEADER, line(0, 50), "1,50"], 3, "expected 3 comma-separated fields"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_file_is_refused_by_line_and_writes_nothing(case: str, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    lines, bad_line, words = MALFORMED[case]
    path = small_csv(tmp_path / case, lines)
    db = tmp_path / "a.db"
    code, out, err = cli(capsys, "dataset", "import", "nb201-accuracy", path, "--db", db)
    assert code == 2, err
    flat = " ".join(err.split())  # rich may wrap a long message
    assert f"{path}: line {bad_line}:" in flat and words in flat, err
    assert "Traceback" not in err
    with Store(db, readonly=True) as s:
        assert s.db.execute("SELECT COUNT(*) FROM accuracies").fetchone()[0] == 0  # the good lines neither


def test_the_task_comes_from_the_file_name_or_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = small_csv(tmp_path, [HEADER, line(0, 50)], name="nb201-c100.csv")
    code, _, err = cli(capsys, "dataset", "import", "nb201-accuracy", path, "--db", tmp_path / "a.db")
    assert code == 2 and "task 'nb201-c100' (from the file name) is not an NB201 task" in " ".join(err.split())
    code, _, err = cli(capsys, "dataset", "import", "nb201-accuracy", path, "--db", tmp_path / "a.db",
                       "--task", "cifar100")
    assert code == 0, err
    with Store(tmp_path / "a.db") as s:
        assert s.accuracies("nb201", "cifar100") == {SPACE.arch_id(SPACE.from_index(0)): 50.0}
    code, _, err = cli(capsys, "dataset", "import", "nb201-accuracy", path, "--db", tmp_path / "a.db", "--space",
                       "fbnet")
    assert code == 2 and "--space: for latency tables, not nb201-accuracy" in err, err
    code, _, err = cli(capsys, "dataset", "import", "latbench", path, "--db", tmp_path / "a.db", "--task", "x")
    assert code == 2 and "--task is for nb201-accuracy, not latbench" in err, err


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """Two measured NB201 cells (indices 0 and 1) on one device, accuracy for cell 0 and for an unmeasured one."""
    db = tmp_path / "lab.db"
    with Store(db) as s:
        models = [imported_model(SPACE, SPACE.from_index(i)) for i in (0, 1)]
        s.add_models(models)
        s.add_device("board", "cpu", {})
        s.add_results([imported_result(job_id="j", task_id=str(i), model_sha256=m.sha256, device="board",
                                       median_ms=1.0 + i, environment={}, backend="onnxruntime", precision="fp32")
                       for i, m in enumerate(models)])
        import_nb201_accuracy(s, small_csv(tmp_path / "acc", [HEADER, line(0, 52.5), line(7, 60.0)]))
    return db


def test_export_joins_the_accuracy_and_writes_the_table(lab: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow.parquet as pq

    assert cli(capsys, "dataset", "export", tmp_path / "m.csv", "--db", lab)[0] == 0
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert [r["cifar100_test_accuracy"] for r in rows] == ["52.5", ""]  # cell 1 has no record
    assert cli(capsys, "dataset", "export", tmp_path / "m.parquet", "--db", lab)[0] == 0
    assert pq.read_table(tmp_path / "m.parquet").column("cifar100_test_accuracy").to_pylist() == [52.5, None]
    code, out, err = cli(capsys, "dataset", "export", tmp_path / "a.parquet", "--table", "accuracies", "--db", lab,
                         "--json")
    assert code == 0 and json.loads(out)["rows"] == 2, err
    t = pq.read_table(tmp_path / "a.parquet").to_pylist()
    assert [(r["arch_id"], r["value"], r["task"], r["source"]) for r in t] == sorted(
        [(SPACE.arch_id(SPACE.from_index(i)), v, "cifar100", "nb201") for i, v in ((0, 52.5), (7, 60.0))])
    code, _, err = cli(capsys, "dataset", "export", tmp_path / "x.csv", "--table", "accuracies", "--device",
                       "board", "--db", lab)
    assert code == 2 and "accuracies table has neither" in err


def test_accuracy_without_measurements_summarizes_and_exports(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "a.db"
    path = small_csv(tmp_path, [HEADER, line(0, 52.5), line(1, 70.0)])
    assert cli(capsys, "dataset", "import", "nb201-accuracy", path, "--db", db)[0] == 0
    code, out, err = cli(capsys, "dataset", "summary", "--db", db)
    assert code == 0 and "accuracy records" in out and "medians over models" not in out, out + err
    for name in ("m.csv", "m.parquet"):
        code, out, err = cli(capsys, "dataset", "export", tmp_path / name, "--db", db, "--json")
        assert code == 0 and json.loads(out)["rows"] == 0, err
    assert "cifar100_test_accuracy" in (tmp_path / "m.csv").read_text().splitlines()[0]
    code, out, err = cli(capsys, "dataset", "export", tmp_path / "a.csv", "--table", "accuracies", "--db", db)
    assert code == 0 and len((tmp_path / "a.csv").read_text().splitlines()) == 3, err
