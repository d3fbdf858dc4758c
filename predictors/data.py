"""Training data for the supervised predictors: (arch ids, latencies) of one device and space from the Store.

`load_xy` is the one place that decides which measurements count: status ok, a median present, and one
setting (backend, precision, batch, space config). Mixing settings would train one predictor on two
different latency functions, so when the store holds several and the caller named none, it refuses and
lists them. Repeated measurements of an arch collapse to their median (robust to one bad run).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from profiler.store import Store


def load_xy(store: Store, device: str, space: str, backend: str | None = None, precision: str | None = None,
            batch: int | None = None, space_config: dict[str, Any] | None = None, quantity: str = "latency"
            ) -> tuple[list[str], np.ndarray]:
    """(arch ids, median latency in ms per arch) of the ok measurements of `space` on `device`;
    with quantity="energy", the energy per inference in mJ instead (measurements with an energy figure).

    Arch ids come in the order of their first measurement (for HELP imports: the NB201 index order).
    ValueError when nothing matches (naming the devices that do have data for the space) or when the
    matching rows span several settings and the arguments do not pick one.
    """
    if quantity not in ("latency", "energy"):
        raise ValueError(f"quantity must be 'latency' or 'energy', got {quantity!r}")
    column = "x.median_ms" if quantity == "latency" else "x.energy_mj"
    where = ["x.device = ?", "m.space = ?", "x.status = 'ok'", f"{column} IS NOT NULL"]
    args: list[Any] = [device, space]
    for col, val in (("x.backend", backend), ("x.precision", precision), ("x.batch", batch)):
        if val is not None:
            where.append(f"{col} = ?")
            args.append(val)
    if space_config is not None:
        where.append("m.space_config = ?")
        args.append(json.dumps(space_config, sort_keys=True))
    rows = store.db.execute(
        f"SELECT m.arch_id, m.space_config, x.backend, x.precision, x.batch, {column} "
        "FROM measurements x JOIN models m ON m.sha256 = x.model_sha256 "
        f"WHERE {' AND '.join(where)} ORDER BY x.id", args).fetchall()
    if not rows:
        have = [r[0] for r in store.db.execute(
            "SELECT DISTINCT x.device FROM measurements x JOIN models m ON m.sha256 = x.model_sha256 "
            "WHERE m.space = ? AND x.status = 'ok' ORDER BY x.device", (space,)).fetchall()]
        picked = ", ".join(f"{k}={v!r}" for k, v in (("backend", backend), ("precision", precision),
                                                       ("batch", batch), ("space_config", space_config))
                           if v is not None)
        other = [r[0] for r in store.db.execute(
            "SELECT DISTINCT m.space FROM measurements x JOIN models m ON m.sha256 = x.model_sha256 "
            "WHERE x.device = ? AND x.status = 'ok' AND m.space != ? ORDER BY m.space", (device, space)).fetchall()]
        what = "measurements" if quantity == "latency" else "energy measurements (a power meter on the device?)"
        raise ValueError(f"no ok {what} of space {space!r} on device {device!r}"
                         + (f" with {picked}" if picked else "")
                         + (f" ({device} has data for space {', '.join(other)} only: a space mismatch)"
                            if other else "")
                         + f"; devices with {space} data: {', '.join(have) if have else 'none'}")
    settings = sorted({(r[1], r[2], r[3], r[4]) for r in rows})
    if len(settings) > 1:
        listed = "; ".join(f"space_config={c}, backend={b!r}, precision={p!r}, batch={n}"
                           for c, b, p, n in settings)
        raise ValueError(f"{device}/{space}: measurements under {len(settings)} settings ({listed}); "
                         "pass backend, precision, batch or space_config to pick one")
    by_arch: dict[str, list[float]] = {}
    for arch_id, *_, ms in rows:
        by_arch.setdefault(arch_id, []).append(float(ms))
    ids = list(by_arch)
    return ids, np.array([float(np.median(v)) for v in by_arch.values()], dtype=np.float64)


def split(arch_ids: Sequence[str], y: np.ndarray, train_n: int, seed: int = 0
          ) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """(train ids, train y, test ids, test y): a seeded permutation, the first `train_n` for training.

    Deterministic for a given seed and input order, whatever the global numpy state.
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(arch_ids) != len(y):
        raise ValueError(f"got {len(arch_ids)} archs but {len(y)} latencies")
    if isinstance(train_n, bool) or not isinstance(train_n, int | np.integer) or not 0 < train_n < len(y):
        raise ValueError(f"train_n must be an int in 1..{len(y) - 1} (leaving a test set), got {train_n!r}")
    order = np.random.default_rng(seed).permutation(len(y))
    tr, te = order[:train_n], order[train_n:]
    return [arch_ids[i] for i in tr], y[tr], [arch_ids[i] for i in te], y[te]


def data_fingerprint(arch_ids: Sequence[str], y_ms: np.ndarray) -> str:
    """sha256 over the sorted (arch id, latency) pairs: names the training data in a predictor card."""
    y = np.asarray(y_ms, dtype=np.float64).reshape(-1)
    if len(arch_ids) != len(y):
        raise ValueError(f"got {len(arch_ids)} archs but {len(y)} latencies")
    h = hashlib.sha256()
    for arch_id, ms in sorted(zip(arch_ids, y.tolist(), strict=True)):
        h.update(f"{arch_id}\t{ms!r}\n".encode())
    return h.hexdigest()
