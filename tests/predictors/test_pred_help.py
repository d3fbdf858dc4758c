"""Accuracy smoke test on real data: HELP's NB201 raspi4 table, HELP's training pool (indices 0..899).

Evaluated on the next 1000 archs (indices 900..1899, HELP's query pool, outliers kept). Epochs are cut
down and lr raised for the GNN so the test stays in seconds; the full protocol is
benchmarks/supervised_nb201.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from predictors.data import load_xy
from predictors.importers import IMPORTERS
from predictors.metrics import spearman
from predictors.registry import create_predictor
from profiler.store import Store
from spaces import create_space

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
RASPI4 = SHARED / "data" / "HELP" / "data" / "nasbench201" / "latency" / "raspi4.pt"


@pytest.fixture(scope="module")
def raspi4(tmp_path_factory):
    if not RASPI4.exists():
        pytest.skip(f"HELP data not found at {RASPI4}")
    with Store(tmp_path_factory.mktemp("help") / "lat.db") as store:
        IMPORTERS["help"](store, SHARED, spaces=("nb201",), devices=["raspi4"])
        ids, y = load_xy(store, "raspi4", "nb201")
    sp = create_space("nb201")
    by_index = dict(zip((sp.index(sp.parse(a)) for a in ids), zip(ids, y, strict=True), strict=True))
    train = [by_index[i] for i in range(900)]
    test = [by_index[i] for i in range(900, 1900)]
    return ([a for a, _ in train], np.array([v for _, v in train]),
            [a for a, _ in test], np.array([v for _, v in test]))


@pytest.mark.parametrize(("kind", "hp"), [("mlp", {"epochs": 60}),
                                          ("gnn", {"epochs": 60, "batch_size": 16, "lr": 3e-3})])
def test_spearman_on_help_raspi4(raspi4, kind, hp):
    train_ids, train_y, test_ids, test_y = raspi4
    pred = create_predictor(kind, **hp).fit(train_ids, train_y)
    rho = spearman(pred.predict(test_ids), test_y)
    assert rho >= 0.9, f"{kind}: Spearman {rho:.3f} on HELP raspi4 (900 train, 1000 test)"
