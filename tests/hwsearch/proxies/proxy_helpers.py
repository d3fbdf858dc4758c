"""What the proxy tests share (imported by name, like tests/hwsearch/search_helpers.py): NASLib's reference
scores and its cells as our NB201 archs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hwsearch.proxy_eval import naslib_arch_id
from spaces.nb201 import nb201

NASLIB_ZC = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "NASLib-zc" / "zc_nasbench201.json"
needs_naslib = pytest.mark.skipif(not NASLIB_ZC.exists(), reason="needs ../shared/data/NASLib-zc/zc_nasbench201.json")


def naslib_cells(task: str = "cifar100") -> dict[str, tuple[tuple[int, ...], dict[str, Any]]]:
    """NASLib's cells of `task`, by their key in the file (file order): (our arch, NASLib's record). NASLib's
    `arch` tuple is in its EDGE_LIST order, not the NB201 string's (hwsearch.proxy_eval.naslib_arch_id, tested
    in tests/hwsearch/test_proxy_eval.py: read the string's way its val_accuracy agrees with NB201's at ρ 0.76,
    its own way at 0.996)."""
    space = nb201()
    data = json.loads(NASLIB_ZC.read_text())[task]
    return {key: (space.parse(naslib_arch_id(cell["arch"])), cell) for key, cell in data.items()}
