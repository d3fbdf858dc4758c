"""Accuracy as a predictor quantity: pairs read from the store's accuracy table (real NB201 CIFAR-100 figures),
a supervised predictor trained on them with the identity target, saved and reloaded as an accuracy predictor,
and refused where a latency predictor is expected."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from predictors.data import NoAccuracyDataError, load_accuracy, split
from predictors.evaluation import evaluate_saved_accuracy, load_for
from predictors.io import load_predictor, read_card, save_predictor
from predictors.meta_accuracy import MetaAccuracyPredictor
from predictors.metrics import spearman
from predictors.registry import create_predictor
from profiler.accuracy import AccuracyRecord
from profiler.store import Store
from spaces.errors import UserInputError

ACC_CSV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "NB201-accuracy" / "cifar100.csv"
needs_data = pytest.mark.skipif(not ACC_CSV.exists(), reason=f"{ACC_CSV} not found")


def nb201_records(n: int, seed: int = 0, task: str = "cifar100") -> list[AccuracyRecord]:
    """`n` seeded rows of the real NB201 CIFAR-100 table as accuracy records."""
    with ACC_CSV.open(newline="") as f:
        rows = list(csv.DictReader(f))
    pick = np.random.default_rng(seed).choice(len(rows), n, replace=False)
    return [AccuracyRecord("nb201", rows[i]["arch"], task, "test_accuracy", float(rows[i]["test_accuracy"]),
                           "nb201-official") for i in pick]


def load_pairs(db: Path) -> tuple[list[str], np.ndarray]:
    with Store(db, readonly=True) as store:
        return load_accuracy(store, "nb201", "cifar100")


@pytest.fixture(scope="module")
def acc_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not ACC_CSV.exists():
        pytest.skip(f"{ACC_CSV} not found")
    db = tmp_path_factory.mktemp("acc") / "a.db"
    with Store(db) as store:
        store.add_accuracies(nb201_records(400))
    return db


@needs_data
def test_load_accuracy_gives_sorted_ids_and_the_stored_values(acc_store: Path) -> None:
    expected = {r.arch_id: r.value for r in nb201_records(400)}
    with Store(acc_store, readonly=True) as store:
        ids, y = load_accuracy(store, "nb201", "cifar100")
    assert ids == sorted(expected) and y.dtype == np.float64
    np.testing.assert_array_equal(y, [expected[a] for a in ids])


@needs_data
def test_no_figures_names_the_request_and_lists_the_stores_tasks(acc_store: Path, tmp_path: Path) -> None:
    with Store(acc_store, readonly=True) as store:
        with pytest.raises(NoAccuracyDataError, match="task 'imagenet16'.*tasks with nb201 accuracy: cifar100"):
            load_accuracy(store, "nb201", "imagenet16")
        with pytest.raises(NoAccuracyDataError, match="metric 'valid_accuracy'.*metric test_accuracy"):
            load_accuracy(store, "nb201", "cifar100", metric="valid_accuracy")
        with pytest.raises(NoAccuracyDataError, match="no fbnet accuracy.*space nb201 task cifar100"):
            load_accuracy(store, "fbnet", "cifar100")
    with Store(tmp_path / "empty.db") as store, \
            pytest.raises(NoAccuracyDataError, match="holds no accuracy at all.*nb201-accuracy"):
        load_accuracy(store, "nb201", "cifar100")


@needs_data
def test_identity_target_learns_accuracy_and_beats_log(acc_store: Path) -> None:
    """320 training pairs, 80 held out. The identity (standardised) target is what `train --quantity accuracy`
    uses; log stretches the chance-level tail (1%) and ranks the good networks worse (measured over 3 draws
    x 3 splits: identity 0.80-0.89, log 0.54-0.77)."""
    with Store(acc_store, readonly=True) as store:
        ids, y = load_accuracy(store, "nb201", "cifar100")
    tr, tr_y, te, te_y = split(ids, y, 320, seed=0)
    rho = {t: spearman(create_predictor("mlp", epochs=100, target=t).fit(tr, tr_y).predict(te), te_y)
           for t in ("linear", "log")}
    assert rho["linear"] > 0.75
    assert rho["linear"] > rho["log"] + 0.05


@needs_data
def test_saved_accuracy_predictor_card_and_round_trip(acc_store: Path, tmp_path: Path) -> None:
    with Store(acc_store, readonly=True) as store:
        ids, y = load_accuracy(store, "nb201", "cifar100")
    tr, tr_y, te, te_y = split(ids, y, 300, seed=0)
    pred = create_predictor("gbdt", target="linear").fit(tr, tr_y)
    save_predictor(pred, tmp_path / "p", quantity="accuracy", train_archs=tr, task="cifar100",
                   metric="test_accuracy")
    card = read_card(tmp_path / "p")
    assert (card["quantity"], card["unit"], card["task"], card["metric"], card["devices"]) == \
        ("accuracy", "%", "cifar100", "test_accuracy", [])
    back = load_predictor(tmp_path / "p")
    np.testing.assert_allclose(back.predict(te), pred.predict(te))
    with Store(acc_store, readonly=True) as store:
        metrics, predicted, true = evaluate_saved_accuracy(tmp_path / "p", store, "cifar100")
        assert metrics["n"] == 100 and metrics["spearman"] > 0.7  # the 100 archs it was not trained on
        with pytest.raises(UserInputError, match="predicts accuracy .*test_accuracy on cifar100.*--task"):
            load_for(back, store, "raspi4")
    with pytest.raises(ValueError, match="names its metric"):
        save_predictor(pred, tmp_path / "q", quantity="accuracy")
    with pytest.raises(ValueError, match="names its metric"):
        save_predictor(pred, tmp_path / "q", metric="test_accuracy")


@needs_data
def test_a_latency_predictor_is_not_scored_on_a_task(acc_store: Path, tmp_path: Path) -> None:
    pred = create_predictor("lut").fit(*load_pairs(acc_store))
    save_predictor(pred, tmp_path / "lat", devices=["raspi4"])  # as if trained on latencies
    with Store(acc_store, readonly=True) as store, \
            pytest.raises(UserInputError, match="predicts latency of a device, not accuracy.*--device"):
        evaluate_saved_accuracy(tmp_path / "lat", store, "cifar100")



def test_a_search_refuses_an_accuracy_predictor_as_its_latency_predictor() -> None:
    from hwsearch.pipeline import check_predictor

    card = {"quantity": "accuracy", "devices": [], "task": "cifar100", "metric": "test_accuracy"}
    said = r"predicts accuracy \(test_accuracy on cifar100\), not latency.*--accuracy-predictor"
    with pytest.raises(UserInputError, match=said):
        check_predictor(card, "acc-mlp", "raspi4", "latency")
    with pytest.raises(UserInputError, match=r"predicts accuracy .*, not energy"):
        check_predictor(card, "acc-mlp", None, "energy")


@needs_data
def test_maml_acc_keeps_its_meta_tasks(acc_store: Path, tmp_path: Path) -> None:
    ids, y = load_pairs(acc_store)
    pred = MetaAccuracyPredictor(meta_iters=5).meta_fit({"cifar100": (ids, y), "proxy": (ids, y - 5)})
    assert pred.meta_tasks_ == ["cifar100", "proxy"]
    save_predictor(pred, tmp_path / "m", quantity="accuracy", metric="test_accuracy")
    assert load_predictor(tmp_path / "m").meta_tasks_ == ["cifar100", "proxy"]


@needs_data
def test_an_unadapted_maml_acc_folder_is_sent_to_adapt_with_a_task(acc_store: Path, tmp_path: Path) -> None:
    from predictors.evaluation import UnadaptedPredictorError, refusing_unadapted

    ids, y = load_pairs(acc_store)
    save_predictor(MetaAccuracyPredictor(meta_iters=2).meta_fit({"cifar100": (ids, y)}), tmp_path / "m",
                   quantity="accuracy", metric="test_accuracy")
    pred = load_predictor(tmp_path / "m")
    with pytest.raises(UnadaptedPredictorError, match=r"not adapted to a task yet: run `edgeprof adapt .* --task"), \
            refusing_unadapted(tmp_path / "m"):
        pred.check_is_adapted()


def test_an_accuracy_of_zero_is_a_figure_for_a_linear_target_not_for_log() -> None:
    """A network left at 0% (a diverged proxy training) is a real label: the accuracy MLP (identity target)
    takes it, while a log target, which cannot, still refuses with the latency message."""
    ids = ["1" * 17, "0" * 17, "01" * 8 + "0"]
    acc = create_predictor("mlp", space="mobilenetv2-small", epochs=5, target="linear").fit(ids, [0.0, 50.0, 80.0])
    assert np.isfinite(acc.predict(ids)).all()
    with pytest.raises(ValueError, match="latencies must be finite and positive"):
        create_predictor("mlp", space="mobilenetv2-small", epochs=5).fit(ids, [0.0, 50.0, 80.0])
    with pytest.raises(ValueError, match="targets must be finite and >= 0"):
        create_predictor("mlp", space="mobilenetv2-small", epochs=5, target="linear").fit(ids, [-1.0, 50.0, 80.0])
