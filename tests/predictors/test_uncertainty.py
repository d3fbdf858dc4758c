"""predictors.uncertainty: leave-one-out expected error, its interval, and the card field that carries them."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from predictors.hardware_adaptive import HELP_NB201_REFERENCE, HardwareAdaptivePredictor
from predictors.help import HelpPredictor
from predictors.io import load_predictor, read_card, save_predictor
from predictors.meta_accuracy import MetaAccuracyPredictor
from predictors.uncertainty import expected_error, interval, log_bound, max_level
from spaces import create_space
from spaces.errors import UserInputError

SP = create_space("nb201")
IDS = [SP.arch_id(SP.from_index(i)) for i in range(0, 15625, 61)]  # 257 archs
REFS = [SP.arch_id(SP.from_index(i)) for i in HELP_NB201_REFERENCE]
BASE = {a: 1.0 + float(sum(SP.parse(a))) for a in [*IDS, *REFS]}  # the fake's shape of a device


class ScalePredictor(HardwareAdaptivePredictor):
    """A deterministic few-shot predictor: ms = c * BASE[arch], c the geometric mean of measured / BASE over the
    non-reference samples. Every adapt records how many samples it used (copies share the class list)."""

    kind: ClassVar[str] = "test-scale"
    calls: ClassVar[list[int]] = []

    def __init__(self, space: str = "nb201", space_config: dict[str, Any] | None = None, seed: int = 0,
                 reference: Sequence[str] | None = None):
        super().__init__(space=space, space_config=space_config, seed=seed)
        self.reference = reference
        self.fitted_ = True

    def adapt(self, arch_ids: Sequence[str], y_ms: np.ndarray,
              reference: Mapping[str, float] | None = None) -> ScalePredictor:
        refs = set(self.reference_ids())
        assert all(r in (reference or {}) or r in arch_ids for r in refs)  # the device is always described
        keep = [i for i, a in enumerate(arch_ids) if a not in refs]
        self.c_ = math.exp(np.mean([math.log(y_ms[i] / BASE[arch_ids[i]]) for i in keep]))
        ScalePredictor.calls.append(len(keep))
        self.adapted_ = True
        return self

    def predict(self, arch_ids: Sequence[str]) -> np.ndarray:
        self.check_is_adapted()
        return self.c_ * np.array([BASE[a] for a in arch_ids])


def _device(seed: int, n: int, sigma: float = 0.2) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = [IDS[i] for i in rng.choice(len(IDS), n, replace=False)]
    return ids, np.array([3.0 * BASE[a] * math.exp(rng.normal(0, sigma)) for a in ids])


def test_leave_one_out_residuals_are_exact_and_the_predictor_is_untouched() -> None:
    ids, y = _device(0, 8)
    reference = {r: 3.0 * BASE[r] for r in REFS}
    pred = ScalePredictor(reference=REFS).adapt(ids, y, reference)
    c_before = pred.c_
    # two reference archs among the samples: they describe the device in every fold and are not scored
    ScalePredictor.calls.clear()
    e = expected_error(pred, [*ids, REFS[0], REFS[1]], np.r_[y, 3 * BASE[REFS[0]], 3 * BASE[REFS[1]]], reference)
    assert pred.c_ == c_before  # copies were re-adapted, not pred
    assert e["k"] == 8 and e["folds"] == 8 and e["method"] == "leave-one-out over 8 samples"
    assert ScalePredictor.calls == [7] * 8
    logs = np.log(y / np.array([BASE[a] for a in ids]))
    want = [logs[i] - np.mean(np.delete(logs, i)) for i in range(8)]
    np.testing.assert_allclose(e["log_residuals"], want, rtol=1e-12, atol=1e-12)
    loo = y / np.exp(want)  # the left-out predictions
    assert e["mape"] == pytest.approx(100 * np.mean(np.abs(loo - y) / y))
    assert e["acc10"] == pytest.approx(np.mean(np.abs(loo - y) <= 0.1 * y * (1 + 1e-12)))
    assert -1 <= e["spearman"] <= 1
    # two samples: no Spearman; one: nothing to leave out
    assert expected_error(pred, ids[:2], y[:2], reference)["spearman"] is None
    with pytest.raises(UserInputError, match="at least 2"):
        expected_error(pred, [ids[0], REFS[0]], np.r_[y[0], 1.0], reference)
    with pytest.raises(UserInputError, match="positive"):
        expected_error(pred, ids[:3], np.r_[y[:2], -1.0], reference)


def test_more_samples_than_max_folds_use_folds() -> None:
    ids, y = _device(1, 25)
    reference = {r: 3.0 * BASE[r] for r in REFS}
    ScalePredictor.calls.clear()
    e = expected_error(ScalePredictor(reference=REFS), ids, y, reference, max_folds=5)
    assert e["k"] == 25 and e["folds"] == 5 and e["method"].startswith("5-fold cross-validation over 25")
    assert ScalePredictor.calls == [20] * 5
    # each sample was predicted by the copy adapted without its fold: log c of the fold = log(y/BASE) - residual
    logs = np.log(y / np.array([BASE[a] for a in ids]))
    fold_c = np.round(logs - np.array(e["log_residuals"]), 10)
    values, counts = np.unique(fold_c, return_counts=True)
    assert counts.tolist() == [5] * 5
    for v in values:
        assert v == pytest.approx(np.mean(logs[fold_c != v]), abs=1e-9)


def test_interval_quantile_arithmetic_and_the_largest_level() -> None:
    residuals = [0.05, -0.30, 0.10, -0.02, 0.20, -0.15, 0.01, 0.40, -0.08]  # k = 9; |r| sorted: .01 .02 .05 .08
    e = {"method": "m", "k": 9, "mape": 1.0, "log_residuals": residuals}  # .10 .15 .20 .30 .40
    assert log_bound(e, 0.8) == 0.30  # ceil(10 * 0.8) = 8th smallest
    assert log_bound(e, 0.9) == 0.40  # 9th: the largest
    assert log_bound(e, 0.5) == 0.10  # 5th
    lo, hi = interval(e, np.array([2.0, 10.0]), 0.8)
    np.testing.assert_allclose(lo, [2 * math.exp(-0.3), 10 * math.exp(-0.3)])
    np.testing.assert_allclose(hi, [2 * math.exp(0.3), 10 * math.exp(0.3)])
    with pytest.raises(UserInputError, match="needs at least 19 held-out samples.*has 9.*up to 0.9 "):
        interval(e, np.array([1.0]), 0.95)
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(UserInputError, match="between 0 and 1"):
            interval(e, np.array([1.0]), bad)
    for k in range(2, 60):  # the largest level named is accepted, anything above k/(k+1) refused
        ek = {"method": "m", "k": k, "mape": 1.0, "log_residuals": list(np.linspace(0.01, 1, k))}
        assert log_bound(ek, max_level(k)) <= 1.0
        assert log_bound(ek, k / (k + 1)) == 1.0
        with pytest.raises(UserInputError):
            log_bound(ek, k / (k + 1) + 1e-6)


@pytest.mark.parametrize("level", [0.8, 0.9])
def test_interval_coverage_on_new_archs_is_near_nominal(level: float) -> None:
    """Exchangeable noise around a per-device scale: the leave-one-out interval covers about `level` of new
    archs (19 samples: rank ceil(20 * level) of 19 residuals, so exactly level in expectation)."""
    reference = {r: 3.0 * BASE[r] for r in REFS}
    pred = ScalePredictor(reference=REFS)
    cover = []
    for seed in range(150):
        ids, y = _device(seed, 19 + 100)
        e = expected_error(pred, ids[:19], y[:19], reference)
        lo, hi = interval(e, pred.adapt(ids[:19], y[:19], reference).predict(ids[19:]), level)
        cover.append(np.mean((y[19:] >= lo) & (y[19:] <= hi)))
    assert abs(np.mean(cover) - level) < 0.03, np.mean(cover)


def _tiny_help() -> HelpPredictor:
    """A HelpPredictor meta-trained for a few iterations on two synthetic devices (cost per op, summed)."""
    tasks = {}
    for s in (1, 2):
        cost = np.random.default_rng(s).uniform(0.1, 2.0, 5)
        ids = [*IDS[:120], *REFS]
        tasks[f"s{s}"] = (ids, np.array([1 + cost[list(SP.parse(a))].sum() for a in ids]))
    return HelpPredictor(hidden=[16], meta_iters=3, n_query=20, inner_steps=1).meta_fit(tasks)


def test_card_round_trip_of_a_real_help_predictor(tmp_path: Path) -> None:
    pred = _tiny_help()
    cost = np.random.default_rng(3).uniform(0.1, 2.0, 5)
    ids = IDS[130:142]
    y = np.array([1 + cost[list(SP.parse(a))].sum() for a in ids])
    reference = {r: 1 + cost[list(SP.parse(r))].sum() for r in REFS}
    e = expected_error(pred, ids, y, reference)
    assert not getattr(pred, "adapted_", False)  # meta-trained only: the copies were adapted
    assert e["k"] == 12 and len(e["log_residuals"]) == 12 and np.isfinite(e["log_residuals"]).all()
    pred.adapt(ids, y, reference)
    save_predictor(pred, tmp_path / "with", devices="board", expected_error=e)
    card = read_card(tmp_path / "with")
    assert card["expected_error"] == json.loads(json.dumps(e))
    assert load_predictor(tmp_path / "with").card_["expected_error"]["log_residuals"] == e["log_residuals"]
    save_predictor(pred, tmp_path / "without", devices="board")
    assert "expected_error" not in read_card(tmp_path / "without")  # older cards: no field, read as before
    with pytest.raises(UserInputError, match="k is 5 but there are 12"):
        save_predictor(pred, tmp_path / "bad", expected_error={**e, "k": 5})
    assert not (tmp_path / "bad").exists()


def test_the_accuracy_predictor_has_an_expected_error_too() -> None:
    """maml-acc adapts as adapt(arch_ids, accuracies), without reference latencies, from >= 2 pairs."""
    acc = np.array([50 + 5 * sum(SP.parse(a)) / 6 for a in IDS])
    pred = MetaAccuracyPredictor(meta_iters=5, hidden=[16]).meta_fit({"proxy": (IDS[:200], acc[:200])})
    e = expected_error(pred, IDS[200:210], acc[200:210])
    assert e["k"] == 10 and e["mae"] > 0 and not getattr(pred, "adapted_", False)
    with pytest.raises(UserInputError, match="takes no reference latencies"):
        expected_error(pred, IDS[200:210], acc[200:210], reference={REFS[0]: 1.0})
    with pytest.raises(UserInputError, match="cannot adapt on the 1 samples a fold leaves"):
        expected_error(pred, IDS[200:202], acc[200:202])
