"""Small spaces the proxy tests score networks of (fast on 2 cores)."""

from __future__ import annotations

import pytest

from spaces import create_space


@pytest.fixture(scope="module")
def nb_small():
    return create_space("nb201", C=8, N=1, num_classes=100)


@pytest.fixture(scope="module")
def mb_small():
    return create_space("mbconv", width_mult=0.25, resolution=64, num_classes=10)
