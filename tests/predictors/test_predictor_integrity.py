"""A saved predictor is checked when loaded: the arrays against the card's `arrays_sha256`, the card against its
own `card_sha256`, the arrays for NaN; and `check_out_folder` refuses, before any training, a folder that cannot
take a predictor or already holds one (issue 10)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from predictors.io import (
    ARRAYS,
    CARD,
    CARD_SHA,
    PredictorFileError,
    card_digest,
    check_out_folder,
    load_predictor,
    save_predictor,
)
from predictors.registry import create_predictor, list_predictors
from spaces import create_space
from spaces.errors import UserInputError


@pytest.fixture(scope="module")
def data() -> tuple[list[str], np.ndarray]:
    space = create_space("nb201")
    archs = space.sample_unique(40, np.random.default_rng(0))
    return [space.arch_id(a) for a in archs], np.array([1.0 + 0.1 * sum(a) for a in archs])


@pytest.mark.parametrize("kind", list_predictors(supervised=True))
def test_every_kind_round_trips_with_both_checksums(kind: str, data: tuple[list[str], np.ndarray],
                                                    tmp_path: Path) -> None:
    ids, y = data
    hp = {"epochs": 2} if kind in ("mlp", "gnn", "gnn-att", "gcn") else {}
    pred = create_predictor(kind, space="nb201", seed=0, **hp)
    pred.fit(ids, y)
    folder = save_predictor(pred, tmp_path / kind, devices=["devA"])
    card = json.loads((folder / CARD).read_text())
    assert card[CARD_SHA] == card_digest(card) and len(card["arrays_sha256"]) == 64
    np.testing.assert_allclose(load_predictor(folder).predict(ids[:5]), pred.predict(ids[:5]), rtol=1e-6)


@pytest.fixture
def saved(data: tuple[list[str], np.ndarray], tmp_path: Path) -> Path:
    ids, y = data
    pred = create_predictor("mlp", space="nb201", epochs=2, seed=0)
    pred.fit(ids, y)
    return save_predictor(pred, tmp_path / "mlp", devices=["devA"])


def test_a_card_edit_anywhere_is_refused(saved: Path) -> None:
    card = json.loads((saved / CARD).read_text())
    for edit in (lambda c: c["target"].update(mean=c["target"]["mean"] + 1e-9),
                 lambda c: c.update(devices=["devB"]),
                 lambda c: c.update(arrays_sha256="0" * 64)):
        changed = json.loads(json.dumps(card))
        edit(changed)
        (saved / CARD).write_text(json.dumps(changed, indent=2))
        with pytest.raises(PredictorFileError, match="card was changed"):
            load_predictor(saved)
    (saved / CARD).write_text(json.dumps(card))  # re-indented, same content: still loads
    load_predictor(saved)


def test_nan_weights_are_refused_even_without_checksums(saved: Path) -> None:
    card = json.loads((saved / CARD).read_text())
    for key in ("arrays_sha256", CARD_SHA):
        card.pop(key)
    card["format_version"] = 1  # a card from before the checksums
    (saved / CARD).write_text(json.dumps(card))
    with np.load(saved / ARRAYS) as z:
        arrays = {k: z[k].copy() for k in z.files}
    first = next(k for k, a in arrays.items() if a.dtype.kind == "f")
    arrays[first].flat[0] = np.nan
    np.savez(saved / ARRAYS, **arrays)
    with pytest.raises(PredictorFileError, match=f"array '{first}' holds NaN"):
        load_predictor(saved)


def test_check_out_folder(saved: Path, tmp_path: Path) -> None:
    assert check_out_folder(tmp_path / "new" / "p") == tmp_path / "new" / "p"
    (tmp_path / "empty").mkdir()
    check_out_folder(tmp_path / "empty")
    with pytest.raises(UserInputError, match="holds a saved predictor; pass --force"):
        check_out_folder(saved)
    assert check_out_folder(saved, force=True) == saved
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    with pytest.raises(UserInputError, match="not empty; pass --force"):
        check_out_folder(tmp_path / "notes")
    file = tmp_path / "f.txt"
    file.write_text("x")
    with pytest.raises(UserInputError, match="is a file"):
        check_out_folder(file, force=True)
    with pytest.raises(UserInputError, match=f"{file} is a file, so no folder"):
        check_out_folder(file / "a" / "b", force=True)


def test_a_current_card_without_its_checksums_or_with_nan_is_refused(saved: Path) -> None:
    """Deleting both checksums does not turn a format-2 card into an unchecked old one, and a NaN typed into
    the card is a message, not a traceback."""
    card = json.loads((saved / CARD).read_text())
    assert card["format_version"] >= 2
    for key in ("arrays_sha256", CARD_SHA):
        stripped = {k: v for k, v in card.items() if k != key}
        (saved / CARD).write_text(json.dumps(stripped))
        with pytest.raises(PredictorFileError, match=f"no {key}"):
            load_predictor(saved)
    nan = json.loads(json.dumps(card))
    nan["params"]["lr"] = float("nan")
    (saved / CARD).write_text(json.dumps(nan))  # json writes NaN, and reads it back
    with pytest.raises(PredictorFileError, match="NaN or Infinity"):
        load_predictor(saved)
