"""Fixtures of the search tests: one torch thread, the tiny NB201 space, a real fitted MLP predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from search_helpers import NB_BASE, NB_CONFIG, NB_TABLE

from spaces import create_space


@pytest.fixture(autouse=True)
def _one_thread():
    """The dev machine's other core runs latency measurements: keep torch on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def nb_space():
    return create_space("nb201", **NB_CONFIG)


@pytest.fixture(scope="session")
def nb_mlp(nb_space):
    """A real MLP predictor fitted on 200 archs whose latency is the sum of per-op costs."""
    from predictors.registry import create_predictor

    archs = nb_space.sample_unique(200, np.random.default_rng(0))
    y = [NB_BASE + float(NB_TABLE[np.arange(6), list(a)].sum()) for a in archs]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return create_predictor("mlp", space="nb201", space_config=NB_CONFIG, epochs=60).fit(
            [nb_space.arch_id(a) for a in archs], np.array(y))
    finally:
        torch.set_num_threads(threads)
