"""Held-out evaluation of a predictor on a device's measurements: the archs it was not trained or adapted
on. Shared by `edgeprof evaluate`, `adapt` and `report`, so all three score the same split, read the
device's data under the predictor's own space config unless told otherwise (`load_for`), and refuse a
meta-trained predictor that was never adapted with the command that adapts it (`refusing_unadapted`).
An accuracy predictor (card quantity "accuracy") is scored the same way on a task's accuracy figures from
the store (`evaluate_saved_accuracy`), its errors in accuracy points (`accuracy_summary_line`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from predictors.base import LatencyPredictor
from predictors.data import NoDeviceDataError, NoMatchingSettingError, load_accuracy, load_xy, no_data_error
from predictors.fewshot import NotAdaptedError
from predictors.io import load_predictor, read_card, read_train_archs
from predictors.metrics import report
from predictors.uncertainty import shown
from profiler.store import Store
from spaces.errors import UserInputError

Evaluation = tuple[dict[str, Any], np.ndarray, np.ndarray]  # (metrics, predicted, measured)


def held_out(pred: LatencyPredictor, arch_ids: Sequence[str], y: np.ndarray, seen: Collection[str], device: str,
             n_target_samples: int, what: str = "the predictor", positive: bool = True) -> Evaluation:
    """Metrics of `pred` on the measured (arch_ids, y) of `device` outside `seen`; ValueError when nothing
    is left to score. `positive=False` for accuracies (0% is a value; see metrics.report)."""
    seen = set(seen)
    keep = [i for i, a in enumerate(arch_ids) if a not in seen]
    if not keep:
        raise UserInputError(f"{device}: every measured {pred.space} arch was used to train {what}; "
                         "nothing left to evaluate")
    ids = [arch_ids[i] for i in keep]
    true = np.asarray(y, dtype=np.float64)[keep]
    predicted = pred.predict(ids)
    split = f"all {len(ids)} measured archs of {device} not used by the predictor"
    return report(predicted, true, n_target_samples=n_target_samples, split=split, positive=positive), predicted, true


class UnadaptedPredictorError(UserInputError):
    """A meta-trained predictor folder given to a command that predicts, before `edgeprof adapt`."""


@contextmanager
def refusing_unadapted(folder: str | Path) -> Iterator[None]:
    """Turn the NotAdaptedError of predicting with the saved predictor `folder` into the user's next step."""
    try:
        yield
    except NotAdaptedError:
        if _card_quantity(folder) == "accuracy":
            raise UnadaptedPredictorError(
                f"{folder} is meta-trained but not adapted to a task yet: run `edgeprof adapt {folder} --db DB "
                "--task TASK --samples 10 --out ADAPTED` and use ADAPTED") from None
        raise UnadaptedPredictorError(
            f"{folder} is meta-trained but not adapted to a device yet: run `edgeprof adapt {folder} --db DB "
            "--device DEVICE --samples 10 --out ADAPTED` and use ADAPTED") from None


def _card_quantity(folder: str | Path) -> str | None:
    """The quantity on a predictor folder's card; None when `folder` is no readable predictor folder (a label)."""
    try:
        return read_card(folder).get("quantity", "latency")
    except (UserInputError, OSError):
        return None


def load_for(pred: LatencyPredictor, store: Store, device: str, **setting: Any) -> tuple[list[str], np.ndarray]:
    """`load_xy` of `device` in the predictor's space and quantity; without a space_config in `setting`,
    the one on the predictor's card (the full config it was trained under), so a device measured under
    several configs needs no --space-config when one of them is the predictor's."""
    card = getattr(pred, "card_", {})
    quantity = card.get("quantity", "latency")
    if quantity == "accuracy":
        raise UserInputError(f"the {pred.kind!r} predictor predicts accuracy ({card.get('metric')} on "
                             f"{card.get('task') or 'a task'}), not a device's {device} measurements: score it "
                             "on a task with --task")
    own = setting.get("space_config") is None
    if own:
        setting["space_config"] = (card.get("space") or {}).get("config") or pred.space_obj().config
    try:
        return load_xy(store, device, pred.space, quantity=quantity, **setting)
    except NoMatchingSettingError as e:
        if not own:
            raise
        raise NoMatchingSettingError(e.device, e.space, quantity, e.picked, e.settings,
                                     note="the space config is the predictor's own (from its card)") from None
    except NoDeviceDataError:
        if not own:
            raise
        asked = {k: v for k, v in setting.items() if k != "space_config"}  # not the user's: left out of the message
        raise no_data_error(store, device, pred.space, quantity, asked) from None


def predictor_devices(path: str | Path) -> list[str]:
    """The device(s) a saved predictor was trained or adapted for (its card's `devices`; [] if not recorded)."""
    devices = read_card(path).get("devices") or []
    return [str(d) for d in devices] if isinstance(devices, list) else [str(devices)]


def foreign_device_warning(path: str | Path, device: str) -> str | None:
    """A warning when `device` is not one the saved predictor was made for (a raspi4 predictor scored on
    local-cpu data measures how it transfers, not how good it is on its own device); None otherwise."""
    devices = predictor_devices(path)
    if not devices or device in devices:
        return None
    return (f"{path} was trained for {', '.join(devices)}, not {device}: these scores are of a predictor used on "
            f"another device (adapt it with `edgeprof adapt` or train one on {device} to predict there)")


def accuracy_summary_line(m: dict[str, Any]) -> str:
    """A `report` of an accuracy predictor on one line: ranks, then errors in accuracy points (not ms). MAPE
    is left out: relative to a 1% (chance-level) network's accuracy, any miss is huge, so it reads the tail."""
    return (f"ρ {m['spearman']:.3f}  τ {m['kendall']:.3f}  MAE {m['mae']:.2f} pts  RMSE {m['rmse']:.2f} pts  "
            f"(n={m['n']}, {m['n_target_samples']} target samples, {m['split']})")


def check_accuracy_predictor(pred: LatencyPredictor, path: str | Path) -> dict[str, Any]:
    """The card of a saved accuracy predictor; a latency or energy one is refused, naming --device."""
    card = getattr(pred, "card_", {})
    quantity = card.get("quantity", "latency")
    if quantity != "accuracy":
        raise UserInputError(f"{path} predicts {quantity} of a device, not accuracy: score it on a device's "
                             "measurements with --device (--task is for accuracy predictors)")
    return card


def foreign_task_warning(path: str | Path, task: str) -> str | None:
    """A warning when an accuracy predictor is scored on another task than the one it was trained or adapted
    on (a cifar100 predictor on imagenet16 measures transfer); None otherwise, and for maml-acc's meta-tasks."""
    card = read_card(path)
    own = card.get("task")
    if not own or own == task:
        return None
    return (f"{path} was trained for task {own}, not {task}: these scores are of a predictor used on another "
            f"task")


def evaluate_saved_accuracy(path: str | Path, store: Store, task: str, metric: str | None = None,
                            source: str | None = None) -> Evaluation:
    """`held_out` of a saved accuracy predictor on the store's figures of `task` (its card's metric and source
    unless given), without the archs it was trained, meta-trained or adapted on."""
    pred = load_predictor(path)
    card = check_accuracy_predictor(pred, path)
    ids, y = load_accuracy(store, pred.space, task, metric or card.get("metric") or "test_accuracy",
                           source if source is not None else card.get("source"))
    seen = read_train_archs(path)
    return held_out(pred, ids, y, seen, f"task {task}", n_target_samples=len(seen), what=str(path), positive=False)


def card_expected_error(path: str | Path) -> dict[str, Any] | None:
    """The expected error on a saved predictor's card without its log residuals (what `evaluate` shows beside
    the measured figures; the residuals stay on the card for `predict --interval`); None when it has none."""
    expected = read_card(path).get("expected_error")
    return shown(expected) if isinstance(expected, dict) else None


def expected_line(expected: dict[str, Any], metrics: dict[str, Any], quantity: str = "latency") -> str:
    """'expected MAPE 7.1% (leave-one-out over 10 samples); measured MAPE 6.4% on 1,000 archs': what the
    adaptation's own samples promised beside what the held-out archs show (accuracy: MAE in points)."""
    if quantity == "accuracy" and isinstance(expected.get("mae"), int | float):
        return (f"expected MAE {expected['mae']:.2f} pts ({expected['method']}); measured MAE "
                f"{metrics['mae']:.2f} pts on {metrics['n']:,} archs")
    return (f"expected MAPE {expected['mape']:.1f}% ({expected['method']}); measured MAPE {metrics['mape']:.1f}% "
            f"on {metrics['n']:,} archs")


def evaluate_saved(path: str | Path, store: Store, device: str, **setting: Any) -> Evaluation:
    """`held_out` of a saved predictor folder on `device` (same space and quantity as the predictor).

    `setting`: backend, precision, batch, space_config, as `predictors.data.load_xy` takes them; without a
    space_config, the predictor's own (`load_for`).
    """
    pred = load_predictor(path)
    ids, y = load_for(pred, store, device, **setting)
    seen = read_train_archs(path)
    with refusing_unadapted(path):
        return held_out(pred, ids, y, seen, device, n_target_samples=len(seen), what=str(path))
