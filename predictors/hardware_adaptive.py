"""The interface of hardware-adaptive latency predictors (HELP and its ensemble) and their data helpers.

A device is described by its latencies on a fixed set of reference archs (its hardware embedding). A
`HardwareAdaptivePredictor` is meta-trained across source devices, then adapted to a new device from K
samples plus its reference latencies. The commands (`train meta`, `adapt`) and the benchmarks talk to this
interface only, so a single predictor and an ensemble are used the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from predictors.base import InvalidParameterError
from predictors.common import onehot_spec
from predictors.fewshot import FewShotPredictor, FewShotTask
from spaces.errors import UserInputError

# HELP's reference archs for NB201 (`hardware_embedding_index.pt`, NAS-Bench-201 indices).
HELP_NB201_REFERENCE = (11982, 431, 55, 9, 14451, 8636, 9881, 13479, 6196, 1462)
# HELP's reference archs for FBNet: rows of HELP's `data/fbnet/arch.pt`.
HELP_FBNET_REFERENCE_ROWS = (3328, 3790, 3313, 890, 3052, 2538, 1640, 2514, 457, 2100)

Tasks = Mapping[str, tuple[Sequence[str], np.ndarray]]


class HardwareAdaptivePredictor(FewShotPredictor):
    """Few-shot latency predictor whose devices are described by reference-arch latencies.

    Subclasses take a `reference` parameter (arch ids, or None for HELP's set of the space) and implement
    `meta_fit` and `adapt`; `reference_ids` and the card's feature spec are shared.
    """

    kind: ClassVar[str] = "hardware-adaptive"
    reference: Sequence[str] | None

    def reference_ids(self) -> list[str]:
        """The reference arch ids: the `reference` parameter, else HELP's NB201 set for space 'nb201'."""
        if self.reference is not None:
            ids = [str(a) for a in self.reference]
        elif self.space == "nb201":
            sp = self.space_obj()
            ids = [sp.arch_id(sp.from_index(i)) for i in HELP_NB201_REFERENCE]
        else:
            raise InvalidParameterError(f"{type(self).__name__}: space {self.space!r} has no default reference "
                                        f"set; pass reference=[arch ids] (HELP's FBNet set: "
                                        f"help_fbnet_reference())")
        if len(ids) < 2 or len(set(ids)) != len(ids):
            raise InvalidParameterError(f"reference must name >= 2 distinct archs, got {len(ids)}")
        return ids

    def meta_fit(self, tasks: Tasks, valid: Mapping[str, FewShotTask] | None = None,
                 on_iter: Callable[[int, int], None] | None = None) -> HardwareAdaptivePredictor:
        """Meta-train on `tasks[device] = (arch_ids, y_ms)` (reference archs included); `valid` held-out
        devices select what to keep (`valid_score_`: their mean Spearman, None without them);
        `on_iter(done, total)` after each meta-iteration."""
        raise NotImplementedError

    def adapt(self, arch_ids: Sequence[str], y_ms: np.ndarray,
              reference: Mapping[str, float] | None = None) -> HardwareAdaptivePredictor:
        """Adapt to a target device from its samples (ms) and `reference` = {reference arch id: ms}."""
        raise NotImplementedError

    def feature_spec(self) -> dict[str, Any]:
        """The card's `features`: the space's one-hot plus the device embedding (reference archs)."""
        return {**onehot_spec(self), "device_embedding": {
            "reference_archs": self.reference_ids(),
            "values": "the reference latencies, transformed and standardised by their own mean and std "
                      "(the device's shape, its scale removed)"}}


def help_fbnet_reference(help_dir: Any) -> list[str]:
    """HELP's FBNet reference arch ids (rows of `arch.pt` named in `hardware_embedding_index.pt`)."""
    from spaces import create_space
    from spaces.fbnet import find_help_data, help_fbnet_archs, load_plain_torch_file

    data = find_help_data(help_dir)
    rows = load_plain_torch_file(data / "fbnet" / "hardware_embedding_index.pt")
    archs = help_fbnet_archs(data)
    sp = create_space("fbnet")
    return [sp.arch_id(archs[int(i)]) for i in rows]


def common_reference(tasks: Tasks, n: int, seed: int) -> list[str]:
    """`n` archs measured on every source device, drawn with `seed`: a reference set for a space that has
    none of HELP's (a new device must then be measured on these too)."""
    common = set.intersection(*(set(ids) for ids, _ in tasks.values()))
    if len(common) < n:
        raise UserInputError(f"meta-training needs {n} reference archs measured on every source device; only "
                         f"{len(common)} are common to {', '.join(tasks)}")
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(sorted(common), n, replace=False).tolist())


def draw_support(arch_ids: Sequence[str], y_ms: np.ndarray, refs: Sequence[str], k: int, seed: int, where: str
                 ) -> tuple[list[str], np.ndarray, dict[str, float], list[str], np.ndarray]:
    """A device's few-shot split: (K support ids, their ms, {reference id: ms}, the other ids, their ms).

    The support is drawn with `seed` from the non-reference archs. ValueError naming `where` (the device)
    when a reference arch is not measured, listing them so they can be profiled, or when fewer than K + 2
    non-reference archs are measured (K to adapt on, at least 2 left to score).
    """
    table = dict(zip(arch_ids, np.asarray(y_ms, dtype=np.float64).tolist(), strict=True))
    missing = [r for r in refs if r not in table]
    if missing:
        raise UserInputError(f"{where}: the reference architectures are not all measured ({len(missing)} missing): "
                         f"{', '.join(missing)}")
    ref_set = set(refs)
    rest = [a for a in table if a not in ref_set]
    if len(rest) < k + 2:
        raise UserInputError(f"{where}: only {len(rest)} measured archs besides the {len(refs)} references; "
                         f"{k} samples need at least {k + 2}")
    perm = np.random.default_rng(seed).permutation(len(rest))
    sup, others = [rest[i] for i in perm[:k]], [rest[i] for i in perm[k:]]
    return (sup, np.array([table[a] for a in sup]), {r: table[r] for r in refs},
            others, np.array([table[a] for a in others]))


def valid_tasks(tasks: Tasks, refs: Sequence[str], k: int, seed: int, query_n: int = 1000
                ) -> dict[str, FewShotTask]:
    """Held-out devices as few-shot tasks (HELP's meta-valid role): K random non-reference archs to adapt
    on, `query_n` random others to score (HELP's query size: each validation round adapts and ranks them,
    and the whole of a 15,625-arch table made validation cost as much as the meta-iterations)."""
    out = {}
    for d, (ids, y) in tasks.items():
        sup, sup_y, reference, query, query_y = draw_support(ids, y, refs, k, seed, f"--valid-devices: {d}")
        out[d] = FewShotTask(sup, sup_y, query[:query_n], query_y[:query_n], reference)  # query: random order
    return out
