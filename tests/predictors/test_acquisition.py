"""Acquisition rules (predictors.acquisition): which K networks to measure before adapting a meta-trained
latency predictor. A tiny HelpEnsemble meta-trained on synthetic op-cost devices stands in for HELP's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from predictors import acquisition
from predictors.acquisition import RULES, doptimal, select
from predictors.hardware_adaptive import HELP_NB201_REFERENCE
from predictors.help import HelpPredictor
from predictors.help_ensemble import HelpEnsemble
from spaces import create_space
from spaces.errors import UserInputError

TINY = {"hidden": [8], "meta_iters": 3, "meta_batch": 1, "n_support": 5, "n_query": 10, "inner_steps": 1}


def op_cost(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.1, 2.0, 5)


def latency(arch: tuple[int, ...], cost: np.ndarray) -> float:
    return 1.0 + float(cost[list(arch)].sum())


@pytest.fixture(scope="module")
def setup() -> dict:
    """A meta-trained 2-member ensemble (not adapted), 300 candidate ids and a target's reference latencies."""
    sp = create_space("nb201")
    rows = [i for i in range(0, 15625, 41) if i not in HELP_NB201_REFERENCE]
    refs = [sp.arch_id(sp.from_index(i)) for i in HELP_NB201_REFERENCE]
    tasks = {}
    for d in (1, 2):
        archs = [sp.from_index(i) for i in [*rows[:120], *HELP_NB201_REFERENCE]]
        tasks[f"s{d}"] = ([sp.arch_id(a) for a in archs], np.array([latency(a, op_cost(d)) for a in archs]))
    pred = HelpEnsemble(space="nb201", members=[TINY, TINY]).meta_fit(tasks)
    target = op_cost(3)
    reference = {sp.arch_id(sp.from_index(i)): latency(sp.from_index(i), target) for i in HELP_NB201_REFERENCE}
    cands = [sp.arch_id(sp.from_index(i)) for i in rows[120:420]]
    return {"pred": pred, "cands": cands, "refs": refs, "reference": reference, "space": sp}


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_is_seeded_bounded_and_proposes_only_new_candidates(setup: dict, rule: str) -> None:
    pred, cands, refs, reference = setup["pred"], setup["cands"], setup["refs"], setup["reference"]
    offered = [*cands, *refs[:3], cands[0]]  # references and a repeat slipped in: never proposed
    picks = select(pred, offered, 12, rule, seed=4, reference=reference)
    assert len(picks) == 12 and len(set(picks)) == 12
    assert set(picks) <= set(cands) and not set(picks) & set(refs)
    assert select(pred, offered, 12, rule, seed=4, reference=reference) == picks
    assert not getattr(pred, "adapted_", False)  # worked on a copy
    assert len(select(pred, cands, len(cands), rule, reference=reference)) == len(cands)  # K = every candidate
    for k in (0, len(cands) + 1):
        with pytest.raises(UserInputError, match="K"):
            select(pred, cands, k, rule, reference=reference)


def test_unknown_rules_and_rules_needing_the_references_are_refused(setup: dict) -> None:
    pred, cands, reference = setup["pred"], setup["cands"], setup["reference"]
    with pytest.raises(UserInputError, match="unknown acquisition rule 'best'"):
        select(pred, cands, 3, "best", reference=reference)
    partial = dict(list(reference.items())[:7])
    for rule in ("coverage", "disagreement"):
        for ref in (None, partial):
            with pytest.raises(UserInputError, match="measure the references first"):
                select(pred, cands, 3, rule, reference=ref)
    for rule in ("random", "doptimal"):  # device-free: they propose before the references are measured
        assert len(select(pred, cands, 3, rule, reference=None)) == 3
    single = pred.members_[0]  # a meta-trained HelpPredictor: nothing to disagree with
    assert isinstance(single, HelpPredictor)
    with pytest.raises(UserInputError, match="needs an ensemble"):
        select(single, cands, 3, "disagreement", reference=reference)


def _covered(x: np.ndarray) -> int:
    return int((x.sum(axis=0) > 0).sum())


def test_doptimal_covers_every_one_hot_column_where_random_draws_miss_some() -> None:
    """4 layers x 3 ops: 3 archs can hold every op at every layer once; the design does, random rarely."""
    archs = list(itertools.product(range(3), repeat=4))
    x = np.zeros((len(archs), 12))
    for r, a in enumerate(archs):
        x[r, [layer * 3 + op for layer, op in enumerate(a)]] = 1
    for seed in range(5):
        picks = doptimal(x, 3, np.random.default_rng(seed))
        assert len(set(picks)) == 3 and _covered(x[picks]) == 12
    random_cover = [_covered(x[np.random.default_rng(s).choice(len(x), 3, replace=False)]) for s in range(20)]
    assert np.mean(random_cover) < 11.5


def test_doptimal_design_beats_random_draws_on_the_space(setup: dict) -> None:
    """On NB201 candidates the greedy design's log det exceeds every one of 20 random K-sets' (refs counted)."""
    pred, cands = setup["pred"], setup["cands"]
    known = np.concatenate([pred.encode(setup["refs"]), np.ones((len(setup["refs"]), 1))], axis=1)

    def logdet(ids: list[str]) -> float:
        x = np.concatenate([pred.encode(ids), np.ones((len(ids), 1))], axis=1)
        a = x.T @ x + known.T @ known + acquisition.DOPT_RIDGE * np.eye(x.shape[1])
        return float(np.linalg.slogdet(a)[1])

    best = logdet(select(pred, cands, 8, "doptimal"))
    assert all(best > logdet(select(pred, cands, 8, "random", seed=s)) for s in range(20))


def test_coverage_puts_one_pick_in_each_band_of_the_predicted_range(setup: dict) -> None:
    pred, cands, reference = setup["pred"], setup["cands"], setup["reference"]
    k = 6
    picks = select(pred, cands, k, "coverage", reference=reference)
    log_pred = dict(zip(cands, np.log(acquisition.reference_adapted(pred, reference).predict(cands)), strict=True))
    edges = np.quantile(list(log_pred.values()), np.linspace(0, 1, k + 1))
    bands = sorted(int(np.clip(np.searchsorted(edges, log_pred[a], side="right") - 1, 0, k - 1)) for a in picks)
    assert bands == list(range(k))
    span = max(log_pred[a] for a in picks) - min(log_pred[a] for a in picks)
    assert span > 0.6 * (edges[-2] - edges[1])  # from the low band to the high one, not a crowded middle


def test_disagreement_takes_the_most_disputed_archs_but_never_near_duplicates(setup: dict) -> None:
    pred, cands, reference = setup["pred"], setup["cands"], setup["reference"]
    adapted = acquisition.reference_adapted(pred, reference)
    spread = np.std([np.log(m.predict(cands)) for m in adapted.members_], axis=0)
    picks = select(pred, cands, 8, "disagreement", reference=reference)
    assert picks[0] == cands[int(np.argmax(spread))]
    sp = setup["space"]
    for a, b in itertools.combinations(picks, 2):
        assert sum(x != y for x, y in zip(sp.parse(a), sp.parse(b), strict=True)) >= 2
    assert np.mean(spread[[cands.index(a) for a in picks]]) > np.quantile(spread, 0.75)
