"""BTE and TSE on hand-made loss logs (each negative-factor rule worked out by hand), their input checks, and
loss_log's training contract: fixed batches seen identically every epoch, deterministic, the loss falls."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from hwsearch.bte import MIN_LOSS, NEGATIVE_RULES, bte, budgets, factors, loss_log, loss_logs, per_batch, tse
from spaces.errors import UserInputError

# Three batches over three epochs:
#   batch 1: 2 -> 1 -> 0.5   factors +0.5, +0.5   product +0.25 (every rule)
#   batch 2: 2 -> 1 -> 1.5   factors +0.5, -0.5   product -0.25 (literal, signed), 0 (zero)
#   batch 3: 1 -> 2 -> 4     factors -1,   -1     product +1 (literal), -1 (signed), 0 (zero)
LOG = [[2.0, 2.0, 1.0],
       [1.0, 1.0, 2.0],
       [0.5, 1.5, 4.0]]


def test_factors_and_each_negative_rule_by_hand():
    assert np.allclose(factors(LOG), [[0.5, 0.5, -1.0], [0.5, -0.5, -1.0]])
    assert np.allclose(per_batch(LOG, "literal"), [0.25, -0.25, 1.0])
    assert np.allclose(per_batch(LOG, "signed"), [0.25, -0.25, -1.0])
    assert np.allclose(per_batch(LOG, "zero"), [0.25, 0.0, 0.0])
    assert bte(LOG, "literal") == pytest.approx(1.0)  # two rises count as a gain when read literally
    assert bte(LOG, "signed") == pytest.approx(-1.0)
    assert bte(LOG, "zero") == pytest.approx(0.25)


def test_two_epochs_one_factor_per_batch():
    two = np.asarray(LOG)[:2]  # factors +0.5, +0.5, -1
    assert bte(two, "literal") == pytest.approx(0.0)
    assert bte(two, "signed") == pytest.approx(0.0)  # one factor: signed is literal
    assert bte(two, "zero") == pytest.approx(1.0)


def test_tse_sums_every_loss_and_budgets_use_prefixes():
    assert tse(LOG) == pytest.approx(15.0)
    assert tse([[3.0, 1.0]]) == pytest.approx(4.0)  # one epoch is a valid TSE
    b = budgets(LOG)
    assert sorted(b) == [2, 3]
    assert b[2]["tse"] == pytest.approx(9.0) and b[3]["tse"] == pytest.approx(15.0)
    for rule in NEGATIVE_RULES:
        assert b[2][f"bte_{rule}"] == pytest.approx(bte(np.asarray(LOG)[:2], rule))
        assert b[3][f"bte_{rule}"] == pytest.approx(bte(LOG, rule))


def test_a_diverged_log_ranks_last():
    bad = np.array(LOG)
    bad[2, 1] = np.nan
    for rule in NEGATIVE_RULES:
        assert bte(bad, rule) == -math.inf
    assert tse(bad) == math.inf
    bad[2, 1] = np.inf
    assert bte(bad) == -math.inf and tse(bad) == math.inf


@pytest.mark.parametrize(("losses", "words"), [
    ([1.0, 0.5], "2-D"),
    ([[1.0, 0.5]], "at least 2 epochs"),
    (np.zeros((3, 0)), "no batches"),
    ([[1.0, 0.5], [0.0, 0.4]], "positive"),
    ([[1.0, 0.5], [-0.1, 0.4]], "epoch 2, batch 1"),
    ([["a", "b"], ["c", "d"]], "numbers"),
])
def test_bad_logs_are_user_errors(losses, words):
    with pytest.raises(UserInputError, match=words):
        bte(losses)


def test_unknown_rule_is_a_user_error():
    with pytest.raises(UserInputError, match="zero, signed, literal"):
        bte(LOG, "abs")


# --- loss_log ------------------------------------------------------------------------------------------------

def _task(n: int = 72, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """An easy 2-class task: the label is the sign of the first feature."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, (x[:, 0] > 0).long()


def _net(seed: int = 0, bn: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)] if bn else [nn.Linear(6, 2)]
    return nn.Sequential(*layers)


def test_loss_log_sees_the_same_batches_every_epoch_in_order():
    x, y = _task(70)  # 70 // 16 = 4 full batches, the last 6 images dropped
    net = _net()
    seen: list[torch.Tensor] = []
    net.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()))
    log = loss_log(net, x, y, epochs=3, batch_size=16)
    assert log.shape == (3, 4)
    assert len(seen) == 12
    for e in range(3):
        for n in range(4):
            assert torch.equal(seen[e * 4 + n], x[n * 16:(n + 1) * 16])
    assert loss_log(_net(), x, y, epochs=2, batch_size=16, max_batches=2).shape == (2, 2)


def test_loss_log_is_deterministic_leaves_the_model_alone_and_the_loss_falls():
    x, y = _task()
    net = _net(bn=True)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    a = loss_log(net, x, y, epochs=3, batch_size=12, lr=0.1)
    b = loss_log(net, x, y, epochs=3, batch_size=12, lr=0.1)
    assert np.array_equal(a, b)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert a[2].mean() < a[0].mean()
    assert bte(a) > 0 and tse(a) == pytest.approx(a.sum())


def test_reevaluation_does_not_change_the_training_and_trains_under_no_grad():
    x, y = _task()
    net = _net(bn=True).eval()
    with torch.no_grad():  # a caller's no_grad or eval mode must not stop the training
        logs = loss_logs(net, x, y, epochs=2, batch_size=12, lr=0.1, reevaluate=True)
    plain = loss_log(_net(bn=True), x, y, epochs=2, batch_size=12, lr=0.1)
    assert np.array_equal(logs["logged"], plain)  # BN running stats moved by re-evaluation do not matter
    again = logs["reevaluated"]
    assert again.shape == plain.shape and not np.array_equal(again, plain)
    assert again.mean() < plain[0].mean()  # after an epoch the loss is below the first epoch's logged
    assert logs["reevaluate_s"] > 0 and logs["train_s"] > 0


def test_divergence_fills_nan_and_scores_minus_inf():
    x, y = _task()
    log = loss_log(_net(), x * 1e6, y, epochs=3, batch_size=12, lr=1e30)
    assert not np.isfinite(log).all()
    assert np.isnan(log[-1]).all()  # stopped after the first epoch with a non-finite loss
    assert bte(log) == -math.inf and tse(log) == math.inf


def test_zero_loss_is_floored():
    x, y = _task(24)
    net = nn.Sequential(nn.Linear(6, 2))
    with torch.no_grad():  # a huge margin on the right class: CE underflows to exactly 0
        net[0].weight.copy_(torch.tensor([[-1e4, 0, 0, 0, 0, 0], [1e4, 0, 0, 0, 0, 0]]))
        net[0].bias.zero_()
    x = x.sign() * (x.abs() + 1.0)
    log = loss_log(net, x, y, epochs=2, batch_size=12, lr=1e-9)
    assert (log == MIN_LOSS).all()
    assert bte(log) == 0.0


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 100}, "no full mini-batch"),
    ({"lr": 0.0}, "lr"),
    ({"momentum": -1.0}, "momentum"),
    ({"max_batches": 0}, "max_batches"),
])
def test_bad_training_arguments_are_user_errors(kwargs, words):
    x, y = _task()
    with pytest.raises(UserInputError, match=words):
        loss_log(_net(), x, y, **kwargs)


def test_labels_beyond_the_outputs_are_a_user_error():
    x, y = _task()
    with pytest.raises(UserInputError, match="labels go up to 5"):
        loss_log(_net(), x, y + 4, epochs=1, batch_size=12)
