"""Predictor metrics against hand-computed values, and their input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from predictors.metrics import acc_within, kendall, mae, mape, report, rmse, spearman

# errors 0.1, -0.2, 0.3, -1.0; relative errors 0.1, 0.1, 0.1, 0.2 (three exactly on the 10% bound)
PRED = [1.1, 1.8, 3.3, 4.0]
TRUE = [1.0, 2.0, 3.0, 5.0]


def test_error_metrics_by_hand():
    assert mae(PRED, TRUE) == pytest.approx(1.6 / 4)
    assert rmse(PRED, TRUE) == pytest.approx(math.sqrt((0.01 + 0.04 + 0.09 + 1.0) / 4))
    assert mape(PRED, TRUE) == pytest.approx(12.5)  # mean of 10, 10, 10, 20 percent
    assert rmse(TRUE, TRUE) == mae(TRUE, TRUE) == mape(TRUE, TRUE) == 0.0


def test_acc_within_is_nn_meter_definition():
    assert acc_within(PRED, TRUE, 0.10) == 0.75  # on the bound counts as within
    assert acc_within(PRED, TRUE, 0.05) == 0.0
    assert acc_within(PRED, TRUE, 0.20) == 1.0
    assert acc_within(PRED, TRUE, 0.0) == 0.0
    assert acc_within(TRUE, TRUE, 0.0) == 1.0
    # relative to the true value, not the prediction: 0.9 vs 1.0 is within 10%, 1.0 vs 0.9 is not (11.1%)
    assert acc_within([0.9], [1.0], 0.1) == 1.0
    assert acc_within([1.0], [0.9], 0.1) == 0.0
    for bad in (-0.1, float("nan"), float("inf"), True, "0.1"):
        with pytest.raises(ValueError, match="tol must be"):
            acc_within(PRED, TRUE, bad)


def test_rank_correlations_by_hand():
    assert spearman(PRED, TRUE) == pytest.approx(1.0)
    assert kendall(PRED, TRUE) == pytest.approx(1.0)
    # ranks (3,1,2) vs (1,2,3): sum d^2 = 6, rho = 1 - 6*6 / (3*8) = -0.5; one concordant, two discordant pairs
    assert spearman([3, 1, 2], [1, 2, 3]) == pytest.approx(-0.5)
    assert kendall([3, 1, 2], [1, 2, 3]) == pytest.approx(-1 / 3)
    # one tie in pred: tau-b = (2 - 0) / sqrt((3 - 1) * 3)
    assert kendall([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))


def test_rank_correlations_undefined_are_nan():
    assert math.isnan(spearman([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]))
    assert math.isnan(kendall([1.0, 2.0], [3.0, 3.0]))
    assert math.isnan(spearman([1.0], [2.0]))


def test_report_states_samples_and_split():
    out = report(np.array(PRED), np.array(TRUE), n_target_samples=10, split="query[900:1900]")
    assert set(out) == {"rmse", "mae", "mape", "acc5", "acc10", "spearman", "kendall", "n",
                        "n_target_samples", "split"}
    assert out["n"] == 4 and out["n_target_samples"] == 10 and out["split"] == "query[900:1900]"
    assert out["acc10"] == 0.75 and out["mape"] == pytest.approx(12.5)
    assert all(isinstance(out[k], float) for k in ("rmse", "mae", "mape", "acc5", "acc10", "spearman", "kendall"))
    for bad in (-1, 1.5, True, None):
        with pytest.raises(ValueError, match="n_target_samples"):
            report(PRED, TRUE, bad, "test")
    for bad in ("", "  ", None):
        with pytest.raises(ValueError, match="split"):
            report(PRED, TRUE, 10, bad)


@pytest.mark.parametrize(("pred", "true", "message"), [
    ([1.0, 2.0], [1.0], "same length"),
    ([], [], "empty"),
    ([[1.0, 2.0]], [[1.0, 2.0]], "1-D"),
    ([1.0, float("nan")], [1.0, 2.0], "pred has 1 non-finite value"),
    ([1.0, 2.0], [1.0, float("inf")], "true has 1 non-finite"),
    ([1.0, 2.0], [1.0, 0.0], "true latencies must be positive.*index 1"),
    ([1.0, 2.0], [-1.0, 2.0], "true latencies must be positive.*index 0"),
    (["a", "b"], [1.0, 2.0], "pred must be a sequence of numbers"),
])
def test_bad_input_names_the_problem(pred, true, message):
    for fn in (rmse, mae, mape, spearman, kendall):
        with pytest.raises(ValueError, match=message):
            fn(pred, true)


def test_negative_predictions_are_allowed():
    """A regressor may predict below zero; only the ground truth must be positive."""
    assert acc_within([-1.0, 2.0], [1.0, 2.0], 0.1) == 0.5
    assert mape([-1.0], [1.0]) == pytest.approx(200.0)


def test_accuracies_may_be_zero_and_relative_errors_skip_them():
    # a network that learned nothing scores 0%: a value for an accuracy predictor, an error for a latency one
    pred, true = [2.0, 45.0, 60.0], [0.0, 50.0, 60.0]
    with pytest.raises(ValueError, match="must be positive"):
        report(pred, true, n_target_samples=0, split="s")
    m = report(pred, true, n_target_samples=0, split="s", positive=False)
    assert m["mae"] == pytest.approx(7.0 / 3) and m["n"] == 3
    assert m["mape"] == pytest.approx(5.0) and m["acc10"] == 1.0 and m["acc5"] == 0.5  # over the two above 0
    assert m["spearman"] == pytest.approx(1.0)
    assert math.isnan(report([1.0], [0.0], n_target_samples=0, split="s", positive=False)["mape"])
    with pytest.raises(ValueError, match="must be >= 0"):
        report([1.0], [-1.0], n_target_samples=0, split="s", positive=False)
