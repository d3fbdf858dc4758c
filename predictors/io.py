"""Predictor files: a folder with `arrays.npz` (the learned arrays) and `card.json` (everything else).

Format choice: the arrays are written with `np.savez` and read with `np.load(allow_pickle=False)`, not
`torch.save`. Every predictor's `state()` already yields plain numpy arrays (torch weights, GBDT trees,
LUT tables alike), so one container serves all kinds, a loaded GBDT or LUT needs no torch, and an object
array is refused both when saving and when loading: loading never unpickles anything. (DESIGN.md's
"torch.save of a state dict" predates this; `torch.load(weights_only=True)` would be equally safe but
would tie non-torch predictors to torch.)

The card holds: format and version, kind, params (space and space config included), feature spec, target
transform and normalisation, the quantity and its unit (latency ms, energy mJ, accuracy %), devices (none
for accuracy, which is a task's: its task, metric and source instead), a fingerprint of the training data,
held-out metrics, an adapted few-shot predictor's expected error (leave-one-out over its K samples, optional),
package versions, creation time, and the predictor's JSON state. `load_predictor`
rebuilds through the registry and `from_state`; an unknown kind or a newer format is a clear error, not a guess.

Integrity: the card holds the sha256 of `arrays.npz` (`arrays_sha256`) and of its own content
(`card_sha256`: the card's canonical JSON without that field), so flipped bytes in the arrays, arrays
swapped for others (zeroed weights) and a hand-edited number in the card (a normalisation, a parameter) are
refused with a message instead of predicting wrong numbers. Cards written before a checksum existed have none
and load as before. Writers refuse to replace an existing predictor unless asked (`check_out_folder`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import sys
import time
import zipfile
import zlib
from collections.abc import Sequence
from importlib import metadata
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

from predictors.base import LatencyPredictor
from predictors.common import jsonable_params, onehot_spec
from predictors.registry import UnknownPredictorError, predictor_class
from spaces.errors import UserInputError

FORMAT = "edgeprof.predictor"
FORMAT_VERSION = 2  # 2: both checksums required (a version-1 card predates them and may lack them)
CARD = "card.json"
ARRAYS = "arrays.npz"
TRAIN_ARCHS = "train_archs.json"  # the archs of the target device the predictor saw (excluded from evaluation)


class PredictorFileError(UserInputError):
    """A predictor folder that cannot be read: missing files, another format, a newer version, bad arrays,
    arrays that do not match the card's checksum."""


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str | None]:
    """Versions that can change a loaded predictor's numbers (scikit-learn only if it was used)."""
    versions = {"edgeprof": _version("edgeprof"), "numpy": np.__version__, "python": sys.version.split()[0]}
    if "torch" in sys.modules:
        versions["torch"] = sys.modules["torch"].__version__
    if "sklearn" in sys.modules:
        versions["scikit-learn"] = sys.modules["sklearn"].__version__
    return versions


def _json_safe(value: Any) -> Any:
    """NaN and infinities as null (JSON has none), numpy scalars as Python numbers, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check_arrays(arrays: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    out = {}
    for key, value in arrays.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise PredictorFileError(f"{where}: array name {key!r} must be a non-empty str without '/'")
        a = np.asarray(value)
        if a.dtype.hasobject:
            raise PredictorFileError(f"{where}: array {key!r} holds Python objects; only numeric arrays are "
                                     "stored (no pickle)")
        out[key] = a
    return out


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


QUANTITIES = {"latency": "ms", "energy": "mJ", "accuracy": "%"}
CARD_SHA = "card_sha256"


def card_digest(card: dict[str, Any]) -> str:
    """sha256 of the card's canonical JSON without its own checksum field (what `card_sha256` holds)."""
    body = {k: v for k, v in card.items() if k != CARD_SHA}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_out_folder(path: str | Path, force: bool = False, option: str = "--out") -> Path:
    """Check, before any work, that a predictor can be written to the folder `path`: not a file, not inside a
    file, and not an existing predictor or other non-empty folder unless `force`. UserInputError otherwise."""
    folder = Path(path)
    if folder.is_file():
        raise UserInputError(f"{option} {folder}: is a file; give a folder for the predictor (card.json and "
                             "arrays.npz go in it)")
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserInputError(f"{option} {folder}: {parent} is a file, so no folder can be made inside it")
            break
    if folder.is_dir() and any(folder.iterdir()) and not force:
        what = "holds a saved predictor" if (folder / CARD).exists() else "is a folder that is not empty"
        raise UserInputError(f"{option} {folder}: {what}; pass --force to replace it, or give another folder")
    return folder


def save_predictor(pred: LatencyPredictor, path: str | Path, metrics: dict[str, Any] | None = None,
                   data_fingerprint: str | None = None, devices: Sequence[str] | str | None = None,
                   quantity: str = "latency", train_archs: Sequence[str] | None = None, task: str | None = None,
                   metric: str | None = None, source: str | None = None,
                   expected_error: dict[str, Any] | None = None) -> Path:
    """Write the fitted `pred` to the folder `path` (created; files replaced); returns the folder.

    `metrics` are held-out metrics (e.g. `predictors.metrics.report`), `data_fingerprint` names the
    training data (`predictors.data.data_fingerprint`), `devices` the target device(s), `quantity` what
    it predicts: "latency" (ms), "energy" (mJ) or "accuracy" (%, of `metric` on `task` from the store's
    accuracy table, `source` when one was named), so a search cannot mistake one for another.
    `train_archs`: the target device's (or task's) archs it was trained or adapted on (`read_train_archs`).
    `expected_error`: `predictors.uncertainty.expected_error` of the adaptation (its log residuals included:
    `predict --interval` needs them); cards without one (trained, or written before it existed) read as before.
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {', '.join(QUANTITIES)}, got {quantity!r}")
    if (quantity == "accuracy") != (metric is not None):
        raise ValueError("an accuracy predictor's card names its metric, and only an accuracy predictor's does")
    if expected_error is not None:
        from predictors.uncertainty import check_expected

        expected_error = dict(check_expected(expected_error))
    pred.check_is_fitted()
    try:
        registered = predictor_class(pred.kind)
    except UnknownPredictorError:
        registered = None
    if registered is not type(pred):
        raise PredictorFileError(f"{type(pred).__name__} is not the class registered as kind {pred.kind!r}, so "
                                 "load_predictor could not rebuild it; register it with register_predictor")
    arrays, extra = pred.state()
    folder = Path(path)
    arrays = _check_arrays(arrays, f"{type(pred).__name__}.state()")
    spec = pred.feature_spec() if hasattr(pred, "feature_spec") else onehot_spec(pred)
    buffer = BytesIO()
    np.savez(buffer, **arrays)
    blob = buffer.getvalue()
    card = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": pred.kind,
        "class": f"{type(pred).__module__}.{type(pred).__qualname__}",
        "params": jsonable_params(pred.get_params()),
        "space": {"name": pred.space, "config": pred.space_obj().config},
        "features": spec,
        "target": extra.get("target"),
        "quantity": quantity,
        "unit": QUANTITIES[quantity],
        "devices": [devices] if isinstance(devices, str) else list(devices or []),
        "data_fingerprint": data_fingerprint,
        **({"task": task, "metric": metric, "source": source} if quantity == "accuracy" else {}),
        "metrics": metrics,
        **({"expected_error": expected_error} if expected_error is not None else {}),
        "versions": package_versions(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "arrays": {k: {"shape": list(a.shape), "dtype": a.dtype.str} for k, a in arrays.items()},
        "arrays_sha256": hashlib.sha256(blob).hexdigest(),  # a changed or damaged arrays.npz is refused
        "state": extra,
    }
    card = _json_safe(card)
    card[CARD_SHA] = card_digest(card)  # a card edited since (its numbers, the arrays checksum) is refused
    text = json.dumps(card, indent=2, sort_keys=True, allow_nan=False)
    folder.mkdir(parents=True, exist_ok=True)
    if train_archs is not None:
        seen = json.dumps(sorted(set(train_archs)))
        _write_atomic(folder / TRAIN_ARCHS, lambda f: f.write(seen.encode("utf-8")))
    else:
        (folder / TRAIN_ARCHS).unlink(missing_ok=True)  # an earlier predictor's, in a reused folder
    _write_atomic(folder / ARRAYS, lambda f: f.write(blob))
    _write_atomic(folder / CARD, lambda f: f.write((text + "\n").encode("utf-8")))  # card last: complete
    return folder


def read_card(path: str | Path) -> dict[str, Any]:
    """The card of a predictor folder, checked for format and version (PredictorFileError otherwise)."""
    file = Path(path) / CARD
    if not file.is_file():
        raise PredictorFileError(f"{path}: no {CARD}; not a saved predictor folder")
    try:
        card = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PredictorFileError(f"{file}: not valid JSON: {e}") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise PredictorFileError(f"{file}: format is {card.get('format') if isinstance(card, dict) else None!r}, "
                                 f"expected {FORMAT!r}")
    version = card.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise PredictorFileError(f"{file}: format_version must be an int >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise PredictorFileError(f"{file}: written by a newer edgeprof (predictor format {version} > "
                                 f"{FORMAT_VERSION}); upgrade edgeprof to load it")
    for key in ("kind", "params", "state"):
        if key not in card:
            raise PredictorFileError(f"{file}: card lacks {key!r}")
    if version >= 2:  # from format 2 on both checksums are written: a card without them was edited
        absent = [key for key in (CARD_SHA, "arrays_sha256") if not isinstance(card.get(key), str)]
        if absent:
            raise PredictorFileError(f"{file}: format_version {version} but no {' or '.join(absent)}: the card was "
                                     "changed since it was saved; save or copy the predictor again")
    expected = card.get(CARD_SHA)  # format-1 cards may have none
    try:
        digest = card_digest(card)
    except ValueError:  # NaN or Infinity typed into the card: never written by save_predictor
        raise PredictorFileError(f"{file}: holds NaN or Infinity, which edgeprof never writes: the card was "
                                 "changed since it was saved; save or copy the predictor again") from None
    if expected is not None and digest != expected:
        raise PredictorFileError(f"{file}: checksum mismatch: the card was changed since it was saved (its "
                                 f"content no longer matches its {CARD_SHA}); save or copy the predictor again")
    return card


def read_train_archs(path: str | Path) -> set[str]:
    """The target-device archs a saved predictor was trained or adapted on (empty when not recorded)."""
    file = Path(path) / TRAIN_ARCHS
    if not file.is_file():
        return set()
    try:
        ids = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PredictorFileError(f"{file}: not valid JSON: {e}") from None
    if not isinstance(ids, list) or not all(isinstance(a, str) for a in ids):
        raise PredictorFileError(f"{file}: must be a JSON list of arch ids")
    return set(ids)


def _restore_tuples(cls: type[LatencyPredictor], params: dict[str, Any]) -> dict[str, Any]:
    """JSON turned tuple defaults into lists; give them back as tuples so get_params() round-trips."""
    out = dict(params)
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for name, p in inspect.signature(init).parameters.items():
            if isinstance(p.default, tuple) and isinstance(out.get(name), list):
                out[name] = tuple(out[name])
    return out


def load_predictor(path: str | Path) -> LatencyPredictor:
    """Rebuild a saved predictor (kind from the card, via the registry); its card is kept as `card_`."""
    card = read_card(path)
    try:
        cls = predictor_class(card["kind"])
    except UnknownPredictorError as e:
        raise UnknownPredictorError(f"{Path(path) / CARD}: {e}") from None
    file = Path(path) / ARRAYS
    if not file.is_file():
        raise PredictorFileError(f"{path}: no {ARRAYS}")
    blob = file.read_bytes()
    expected = card.get("arrays_sha256")  # cards written before the checksum have none
    if expected is not None and hashlib.sha256(blob).hexdigest() != expected:
        raise PredictorFileError(f"{file}: checksum mismatch: its sha256 is not the card's arrays_sha256 "
                                 "(changed or damaged since it was saved); save or copy the predictor again")
    try:
        with np.load(BytesIO(blob), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        # damaged bytes (an old card without a checksum), or an object array, which asks for pickle (off)
        raise PredictorFileError(f"{file}: not a readable array archive without pickle: "
                                 f"{e or type(e).__name__}") from None
    listed = card.get("arrays") if isinstance(card.get("arrays"), dict) else {}
    missing = sorted(set(listed) - set(arrays))
    if missing:
        raise PredictorFileError(f"{file}: lacks array(s) {', '.join(missing)} that {CARD} lists")
    for key, spec in listed.items():
        if isinstance(spec, dict) and list(arrays[key].shape) != spec.get("shape", list(arrays[key].shape)):
            raise PredictorFileError(f"{file}: array {key!r} has shape {list(arrays[key].shape)}, {CARD} says "
                                     f"{spec.get('shape')}")
    for key, a in arrays.items():
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            raise PredictorFileError(f"{file}: array {key!r} holds NaN or infinite values; the predictor is "
                                     "damaged (train it again)")
    unknown = sorted(set(card["params"]) - set(cls._param_names()))
    if unknown:
        raise PredictorFileError(f"{Path(path) / CARD}: {cls.__name__} has no parameter(s) {', '.join(unknown)} "
                                 "(saved by another edgeprof version?)")
    try:
        pred = cls.from_state(_restore_tuples(cls, card["params"]), arrays, card["state"])
    except (ValueError, KeyError, TypeError) as e:  # the files do not make a state of this kind
        raise PredictorFileError(f"{path}: the {card['kind']!r} predictor cannot be rebuilt from its {CARD} and "
                                 f"{ARRAYS}: {e}") from None
    pred.card_ = card
    return pred
