"""Accuracy records in the store: round trip, skipped/replaced counts, bad values, old schemas, several sources."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from profiler.accuracy import AccuracyRecord, accuracy_summary
from profiler.store import DDL, SCHEMA_VERSION, Store
from spaces.errors import UserInputError

A1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
A2 = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def rec(arch: str, value: float, source: str = "nb201", task: str = "cifar100", **kw) -> AccuracyRecord:
    return AccuracyRecord("nb201", arch, task, "test_accuracy", value, source, **kw)


def test_round_trip_and_counts(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as s:
        got = s.add_accuracies([rec(A1, 73.5, space_config={"num_classes": 100}, provenance={"file": "x"}),
                                rec(A2, 1.0)])
        assert got == {"added": 2, "skipped": 0, "replaced": 0}
        assert s.accuracies("nb201", "cifar100") == {A1: 73.5, A2: 1.0}
        assert s.add_accuracies([rec(A1, 73.5), rec(A2, 1.5)]) == {"added": 0, "skipped": 1, "replaced": 1}
        assert s.accuracies("nb201", "cifar100") == {A1: 73.5, A2: 1.5}
        row = s.db.execute("SELECT space_config, provenance FROM accuracies WHERE arch_id=?", (A1,)).fetchone()
        assert (row[0], row[1]) == ('{"num_classes": 100}', '{"file": "x"}')  # skipped: the first write stays
        assert s.accuracies("nb201", "cifar10") == {} and s.accuracies("nb201", "cifar100", metric="val") == {}
        assert s.counts() == {"devices": 0, "models": 0, "measurements": 0}  # accuracy is not a measurement


def test_summary_per_group(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as s:
        assert accuracy_summary(s) == []
        s.add_accuracies([rec(A1, 70.0), rec(A2, 10.0), rec(A1, 50.0, task="proxy", source="train")])
        assert accuracy_summary(s) == [
            {"space": "nb201", "task": "cifar100", "metric": "test_accuracy", "source": "nb201", "n": 2,
             "min": 10.0, "median": 40.0, "max": 70.0},
            {"space": "nb201", "task": "proxy", "metric": "test_accuracy", "source": "train", "n": 1,
             "min": 50.0, "median": 50.0, "max": 50.0}]


def test_two_sources_are_not_mixed(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as s:
        s.add_accuracies([rec(A1, 70.0), rec(A1, 60.0, source="mine")])
        with pytest.raises(UserInputError, match=r"several sources \(mine, nb201\)"):
            s.accuracies("nb201", "cifar100")
        assert s.accuracies("nb201", "cifar100", source="mine") == {A1: 60.0}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "73.5", None, True])
def test_a_value_that_is_not_a_finite_number_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"nb201/\|nor_conv_3x3.*cifar100/test_accuracy from nb201: value"):
        rec(A1, value)  # type: ignore[arg-type]


def test_a_bad_batch_writes_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as s:
        with pytest.raises(TypeError, match="AccuracyRecord"):
            s.add_accuracies([rec(A1, 70.0), {"arch_id": A2}])  # type: ignore[list-item]
        assert s.accuracies("nb201", "cifar100") == {}


def _schema2(path: Path) -> None:
    c = sqlite3.connect(path)
    c.executescript(DDL[: DDL.index("CREATE TABLE IF NOT EXISTS accuracies")])
    c.execute("INSERT INTO devices VALUES ('dev', 'cpu', '{}', 'x')")
    c.execute("PRAGMA user_version=2")
    c.commit()
    c.close()


def test_a_schema_2_file_is_migrated(tmp_path: Path) -> None:
    _schema2(tmp_path / "old.db")
    with Store(tmp_path / "old.db") as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        assert s.add_accuracies([rec(A1, 70.0)])["added"] == 1
        assert s.counts()["devices"] == 1


def test_a_read_only_schema_2_file_has_no_accuracy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the old file cannot be migrated (a read-only folder; simulated, so it holds as root too), it is read
    as it is: no accuracy, not an error, and the file stays at schema 2."""
    _schema2(tmp_path / "old.db")
    monkeypatch.setattr(Store, "_writable", lambda self: False)
    with Store(tmp_path / "old.db", readonly=True) as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert s.accuracies("nb201", "cifar100") == {}
        assert accuracy_summary(s) == []
        assert s.counts()["devices"] == 1
