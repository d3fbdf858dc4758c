"""`gnn-att`, the attention GNN of SurgeNAS eq. 3.15: fits, differentiates, its gates matter, saves and loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from predictors.base import InvalidParameterError
from predictors.gnn import GNNNet
from predictors.gnn_att import GATES, GatedDirectedGraphConv
from predictors.io import load_predictor, read_card, save_predictor
from predictors.registry import create_predictor, list_predictors
from spaces import create_space

SHARED = Path(__file__).resolve().parents[3] / "shared"


def additive(space: str, n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """n distinct archs whose latency is 2 ms plus, per layer, its op's cost times the layer's scale.

    Real latency has that structure (an op's cost set by its position's tensor sizes); a free per-(layer, op)
    table would need far more than 80 archs for any graph net.
    """
    sp = create_space(space)
    rng = np.random.default_rng(seed)
    cost, scale = rng.uniform(0.1, 1.0, size=sp.n_ops), rng.uniform(0.5, 1.5, size=sp.n_layers)
    archs = sp.sample_unique(n, rng)
    return [sp.arch_id(a) for a in archs], np.array([2.0 + (scale * cost[np.asarray(a)]).sum() for a in archs])


@pytest.fixture(scope="module", params=["nb201", "mbconv-small"])
def fitted(request: pytest.FixtureRequest):
    """gnn-att fitted on 80 archs of the space; 40 more held out."""
    ids, y = additive(request.param, 120)
    pred = create_predictor("gnn-att", space=request.param, epochs=40, hidden=32, head=(16,), lr=3e-3)
    return pred.fit(ids[:80], y[:80]), ids, y


def test_registered_as_a_supervised_kind() -> None:
    assert "gnn-att" in list_predictors(supervised=True)
    with pytest.raises(InvalidParameterError, match="'gate'"):
        create_predictor("gnn-att", gate="softmax").fit(*additive("nb201", 20))


def test_fits_and_ranks_held_out_archs(fitted) -> None:
    pred, ids, y = fitted
    ms = pred.predict(ids[80:])
    assert ms.shape == (40,) and np.all(np.isfinite(ms)) and np.all(ms > 0)
    assert spearmanr(ms, y[80:]).statistic > 0.9
    assert pred.loss_history_[-1] < 0.2 * pred.loss_history_[0]


def test_gradient_wrt_onehot_is_finite_and_nonzero(fitted) -> None:
    pred, ids, _ = fitted
    model = pred.torch_model()
    onehot = torch.from_numpy(pred.encode(ids[:10])).requires_grad_(True)
    ms = model(onehot)
    np.testing.assert_allclose(ms.detach().numpy(), pred.predict(ids[:10]), rtol=1e-5)
    ms.sum().backward()
    assert onehot.grad is not None and torch.all(torch.isfinite(onehot.grad)) and onehot.grad.abs().sum() > 0
    # a relaxed one-hot of 300 rows (the chunked path) gives what the in-place no-grad path gives
    sp = pred.space_obj()
    soft = torch.softmax(torch.randn(300, sp.n_layers, sp.n_ops, generator=torch.Generator().manual_seed(0)),
                         dim=-1).reshape(300, -1).requires_grad_(True)
    out = model(soft)
    out.sum().backward()
    assert torch.all(torch.isfinite(soft.grad)) and soft.grad[-1].abs().sum() > 0
    with torch.inference_mode():
        np.testing.assert_allclose(model(soft).numpy(), out.detach().numpy(), rtol=1e-5)


def force_gates(convs, logit: float) -> None:
    """Every gate σ(logit), whatever the input: zero weights, the logit as bias (or position)."""
    for conv in convs:
        if conv.gate is not None:
            conv.gate.weight.zero_()
            conv.gate.bias.fill_(logit)
        if conv.position is not None:
            conv.position.fill_(0.0 if conv.gate is not None else logit)


def test_gates_at_one_give_the_plain_gnn_and_other_gates_change_the_output(fitted) -> None:
    pred, ids, _ = fitted
    x = torch.from_numpy(pred.encode(ids))
    att = pred.torch_model().net
    assert all(isinstance(conv, GatedDirectedGraphConv) for conv in att.convs)
    with torch.no_grad():
        trained = att(x).clone()
        fwd_gate, _ = att.convs[0].gates(att.nodes(x))
        assert fwd_gate.std() > 1e-3  # the learned gates differ across nodes and archs: they are not constant
        # the plain gnn with the same convolution and head weights
        plain = GNNNet(pred.space_obj(), pred.layers, pred.hidden, tuple(pred.head))
        state = {k: v for k, v in att.state_dict().items() if ".gate." not in k and not k.endswith(".position")}
        plain.load_state_dict(state, strict=True)
        assert not torch.allclose(plain(x), trained, atol=1e-4)  # the learned gates matter ...
        force_gates(att.convs, 100.0)  # ... and forced to 1 they make it the plain gnn
        np.testing.assert_allclose(att(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-6)
        force_gates(att.convs, 0.0)  # a constant gate of 0.5 halves every message: not the same net either
        assert not torch.allclose(att(x), plain(x), atol=1e-4)


@pytest.mark.parametrize("gate", GATES)
def test_gate_forms_have_their_shapes_and_round_trip(gate: str, tmp_path: Path) -> None:
    ids, y = additive("nb201", 60)
    pred = create_predictor("gnn-att", gate=gate, epochs=3, hidden=16, head=(8,)).fit(ids, y)
    conv = pred.net_.convs[1]
    assert (conv.gate is None) == (gate == "position") and (conv.position is None) == ("position" not in gate)
    if conv.gate is not None:
        assert conv.gate.out_features == (2 if gate == "node" else 2 * 16)
    if conv.position is not None:  # one learned logit per node index (8 NB201 nodes) and channel, trained
        assert conv.position.shape == (8, 2 * 16) and conv.position.abs().sum() > 0
    folder = save_predictor(pred, tmp_path / gate)
    card = read_card(folder)
    assert card["kind"] == "gnn-att" and card["params"]["gate"] == gate
    back = load_predictor(folder)
    np.testing.assert_array_equal(back.predict(ids), pred.predict(ids))
    x = torch.from_numpy(pred.encode(ids[:5]))
    np.testing.assert_array_equal(back.torch_model()(x).detach().numpy(), pred.torch_model()(x).detach().numpy())


def test_edgeprof_trains_and_evaluates_gnn_att(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not (SHARED / "data" / "HELP" / "data" / "nasbench201" / "latency" / "fpga.pt").exists():
        pytest.skip(f"HELP data not found under {SHARED}")
    from edgeprof.cli import main

    db = tmp_path / "h.db"
    assert main(["dataset", "import", "help", str(SHARED), "--space", "nb201", "--devices", "fpga", "--db", str(db),
                 "-q"]) == 0
    capsys.readouterr()
    out = tmp_path / "att"
    assert main(["train", "gnn-att", "--db", str(db), "--device", "fpga", "--space", "nb201", "--train-n", "100",
                 "--epochs", "2", "--out", str(out), "--json", "-q"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["kind"] == "gnn-att" and trained["metrics"]["n_target_samples"] == 100
    assert main(["evaluate", str(out), "--db", str(db), "--device", "fpga", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["metrics"]["spearman"] == pytest.approx(trained["metrics"]["spearman"], abs=1e-9)
