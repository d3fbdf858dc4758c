"""Predictor files: the card's contents, refusals (unknown kind, newer format, pickled arrays), no pickle."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from predictors.base import NotFittedError
from predictors.data import data_fingerprint
from predictors.io import (
    ARRAYS,
    CARD,
    FORMAT,
    FORMAT_VERSION,
    PredictorFileError,
    load_predictor,
    read_card,
    save_predictor,
)
from predictors.metrics import report
from predictors.registry import UnknownPredictorError, create_predictor
from spaces import create_space


@pytest.fixture(scope="module")
def data() -> tuple[list[str], np.ndarray]:
    sp = create_space("nb201")
    archs = sp.sample_unique(30, np.random.default_rng(0))
    return [sp.arch_id(a) for a in archs], np.array([1.0 + sum(a) for a in archs])


@pytest.fixture(scope="module")
def mlp(data):
    return create_predictor("mlp", epochs=3).fit(*data)


def test_card_holds_what_design_asks(mlp, data, tmp_path):
    ids, y = data
    metrics = report(mlp.predict(ids), y, n_target_samples=len(y), split="train")
    metrics["kendall"] = math.nan  # a NaN metric becomes null, the card stays strict JSON
    fingerprint = data_fingerprint(ids, y)
    folder = save_predictor(mlp, tmp_path / "p", metrics=metrics, data_fingerprint=fingerprint, devices="raspi4")
    assert sorted(p.name for p in folder.iterdir()) == sorted([ARRAYS, CARD])
    card = json.loads((folder / CARD).read_text())
    assert card["format"] == FORMAT and card["format_version"] == FORMAT_VERSION
    assert card["kind"] == "mlp" and card["params"]["hidden"] == [128, 64] and card["params"]["space"] == "nb201"
    assert card["features"] == {"encoding": "onehot", "length": 30, "n_layers": 6, "n_ops": 5,
                                "ops": list(create_space("nb201").ops), "layout": "layer-major [L*K]"}
    assert card["target"]["transform"] == "log" and card["target"]["std"] > 0
    assert card["devices"] == ["raspi4"] and card["data_fingerprint"] == fingerprint
    assert card["metrics"]["kendall"] is None and card["metrics"]["n"] == 30
    assert {"edgeprof", "torch", "numpy"} <= set(card["versions"]) and card["created_at"].endswith("Z")
    assert read_card(folder)["kind"] == "mlp"


def test_gnn_card_describes_the_graph(data, tmp_path):
    gnn = create_predictor("gnn", epochs=2).fit(*data)
    card = read_card(save_predictor(gnn, tmp_path / "g"))
    assert card["features"]["graph"]["nodes"] == 8 and card["features"]["graph"]["node_features"] == 7


def test_save_unfitted_refused(tmp_path):
    with pytest.raises(NotFittedError):
        save_predictor(create_predictor("lut"), tmp_path / "x")


def test_unknown_kind_and_newer_format_refused(mlp, tmp_path):
    folder = save_predictor(mlp, tmp_path / "p")
    card = json.loads((folder / CARD).read_text())
    card.pop("card_sha256")  # a card from before the card checksum: the deeper checks
    card["format_version"] = 1
    (folder / CARD).write_text(json.dumps({**card, "kind": "transformer"}))
    with pytest.raises(UnknownPredictorError, match="unknown predictor kind 'transformer'.*known: .*mlp"):
        load_predictor(folder)
    (folder / CARD).write_text(json.dumps({**card, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(PredictorFileError, match="newer edgeprof"):
        load_predictor(folder)
    (folder / CARD).write_text(json.dumps({**card, "format": "something-else"}))
    with pytest.raises(PredictorFileError, match="format"):
        load_predictor(folder)
    with pytest.raises(PredictorFileError, match="no card.json"):
        load_predictor(tmp_path / "nothing")


def test_pickled_arrays_never_loaded(mlp, tmp_path):
    folder = save_predictor(mlp, tmp_path / "p")
    np.savez(folder / ARRAYS, evil=np.array([object()], dtype=object))  # np.savez pickles object arrays
    with pytest.raises(PredictorFileError, match="checksum mismatch"):
        load_predictor(folder)
    card = json.loads((folder / CARD).read_text())
    card.pop("card_sha256")  # a card from before the card checksum: the deeper checks
    card["format_version"] = 1
    del card["arrays_sha256"]  # a card without a checksum (an older file) still never unpickles
    (folder / CARD).write_text(json.dumps(card))
    with pytest.raises(PredictorFileError, match="without pickle"):
        load_predictor(folder)


def test_object_arrays_refused_on_save(mlp, tmp_path, monkeypatch):
    arrays, extra = mlp.state()
    monkeypatch.setattr(mlp, "state", lambda: ({**arrays, "bad": np.array([{}], dtype=object)}, extra))
    with pytest.raises(PredictorFileError, match="'bad' holds Python objects"):
        save_predictor(mlp, tmp_path / "p")


def test_weights_not_fitting_the_params_refused(mlp, tmp_path):
    folder = save_predictor(mlp, tmp_path / "p")
    card = json.loads((folder / CARD).read_text())
    card.pop("card_sha256")  # a card from before the card checksum: the deeper checks
    card["format_version"] = 1
    card["params"]["hidden"] = [64, 64]
    (folder / CARD).write_text(json.dumps(card))
    with pytest.raises(ValueError, match="do not fit the network"):
        load_predictor(folder)


def test_unknown_saved_parameter_refused(mlp, tmp_path):
    folder = save_predictor(mlp, tmp_path / "p")
    card = json.loads((folder / CARD).read_text())
    card.pop("card_sha256")  # a card from before the card checksum: the deeper checks
    card["format_version"] = 1
    card["params"]["dropout"] = 0.1
    (folder / CARD).write_text(json.dumps(card))
    with pytest.raises(PredictorFileError, match="no parameter.*dropout"):
        load_predictor(folder)


def test_unregistered_class_refused_on_save(mlp, tmp_path):
    class Unregistered(type(mlp)):
        pass

    odd = Unregistered(epochs=1).fit(["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"], [1.0])
    with pytest.raises(PredictorFileError, match="not the class registered as kind 'mlp'"):
        save_predictor(odd, tmp_path / "p")
