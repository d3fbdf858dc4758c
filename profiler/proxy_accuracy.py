"""Accuracy labels the project makes itself: networks of a space trained briefly on a proxy task, one at a time.

Domino's meta-accuracy predictor (thesis §3.5) learns from many (mask, accuracy) pairs of a cheap proxy task
and a few of the target task. This module trains such networks (a grafting space's trainable grafted network,
`space.build_grafted`, or any space's own network) on a labelled image set and stores each (arch, accuracy)
pair in the dataset's accuracy table as soon as it is known, so an interrupted run keeps every finished
network and a rerun trains only the rest. A task holds one training recipe: a rerun with another recipe under
the same task name is refused, so one task never mixes accuracies that were not trained the same way.

Recipe (a tiny version of the thesis' §3.9): SGD with momentum 0.9 and weight decay 4e-5, learning rate
annealed to 0 by a per-step cosine, cross-entropy, batch 32, 1 epoch at lr 0.05 by default, no augmentation
(on the digits proxy at 32x32: 45 steps, ~6 s for a mobilenetv2-small network on one core, accuracies ~45-80%;
batch 64 halves the steps and leaves many networks near chance).
The data split (80% to train, 20% to score) is fixed (seed 0) for a task, so every network of the task is
scored on the same images; `seed` picks the masks and seeds each network's init and batch order (from the
seed and the arch id, so a resumed run gives the figures an uninterrupted one would).
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from profiler.accuracy import AccuracyRecord, has_table
from profiler.store import Store
from spaces import SearchSpace, create_space
from spaces.errors import UserInputError

SOURCE = "edgeprof-proxy"
METRIC = "test_accuracy"
DATA_SPLIT_SEED = 0  # the same train/score images for every network of a task
TRAIN_FRACTION = 0.8


@dataclass(frozen=True)
class Recipe:
    """How each network is trained; stored in every record's provenance and compared on a rerun."""

    data: str = "digits"  # "digits" (the sklearn digits proxy) or an ImageFolder path
    resolution: int = 32
    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    digits_n: int | None = None  # digits: keep the first n images (a smoke size)

    def check(self) -> Recipe:
        for name in ("resolution", "epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UserInputError(f"--{name.replace('_', '-')} must be an int >= 1, got {v!r}")
        if self.batch_size < 2:
            raise UserInputError(f"--batch-size must be >= 2 (train-mode batch norm needs two images), "
                                 f"got {self.batch_size}")
        for name in ("lr", "momentum", "weight_decay"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
                raise UserInputError(f"--{name.replace('_', '-')} must be a finite number "
                                     f"{'> 0' if name == 'lr' else '>= 0'}, got {v!r}")
        if self.data != "digits" and not Path(self.data).is_dir():
            raise UserInputError(f"--data {self.data}: no such folder (give 'digits' or an ImageFolder: "
                                 "<folder>/<class>/<images>)")
        if self.digits_n is not None and (self.data != "digits" or self.digits_n < 20):
            raise UserInputError("--digits-n keeps the first N digits (N >= 20) of --data digits only")
        return self

    def task_name(self) -> str:
        """A task name that says the recipe (digits-r32-e1-b32[-n120]): what the benchmarks store their pairs
        under, so two of them share the pairs of one recipe."""
        data = "digits" if self.data == "digits" else Path(self.data).name
        return f"{data}-r{self.resolution}-e{self.epochs}-b{self.batch_size}" + (
            f"-n{self.digits_n}" if self.digits_n else "")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "split": f"{TRAIN_FRACTION:.0%} train / {1 - TRAIN_FRACTION:.0%} score, "
                                          f"seed {DATA_SPLIT_SEED}"}


@dataclass
class TrainReport:
    """What a run did: networks trained and stored, skipped (already stored), and whether it was cut short."""

    space: str
    task: str
    requested: int
    skipped: int = 0
    trained: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    remaining: int = 0
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_data(recipe: Recipe) -> tuple[Any, Any]:
    """(train split, score split) of the recipe's data, at its resolution."""
    from hwsearch.data import ImageFolderDataset, digits_proxy, split

    if recipe.data == "digits":
        return digits_proxy(recipe.resolution, channels=3, seed=DATA_SPLIT_SEED, w_fraction=TRAIN_FRACTION,
                            n=recipe.digits_n)
    try:
        return split(ImageFolderDataset(recipe.data, recipe.resolution), TRAIN_FRACTION, DATA_SPLIT_SEED)
    except FileNotFoundError as e:
        raise UserInputError(str(e)) from None


def space_for(name: str, num_classes: int, config: dict[str, Any] | None = None) -> SearchSpace:
    """The space with a classifier of `num_classes` outputs (where its config has a num_classes)."""
    space = create_space(name, **(config or {}))
    if "num_classes" in space.config and space.config["num_classes"] != num_classes:
        space = create_space(name, **{**space.config, "num_classes": num_classes})
    return space


def trainable(space: SearchSpace, arch: Sequence[int]) -> torch.nn.Module:
    """The network that is trained: the grafted one of a grafting space, else the space's own (train mode)."""
    build = getattr(space, "build_grafted", None)
    return (build(arch) if build is not None else space.build(arch)).train()


def network_seed(seed: int, arch_id: str) -> int:
    """The seed of one network's training: from the run's seed and the arch (independent of order)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{arch_id}".encode()).digest()[:4], "little") & 0x7FFFFFFF


def evaluate(module: torch.nn.Module, data: Any, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent of `module` (eval mode) on `data`."""
    from hwsearch.data import batches

    module.eval()
    correct = 0
    with torch.no_grad():
        for x, y in batches(data, list(range(len(data))), batch_size):
            correct += int((module(x).argmax(1) == y).sum())
    return 100.0 * correct / len(data)


def train_network(module: torch.nn.Module, train: Any, test: Any, recipe: Recipe, seed: int
                  ) -> dict[str, float]:
    """Train `module` in place with the recipe; {accuracy (%), final_loss, wall_s}. Leaves torch's RNG alone."""
    from hwsearch.data import batches

    t0 = time.perf_counter()
    n = len(train)
    steps = recipe.epochs * math.ceil(n / recipe.batch_size)
    opt = torch.optim.SGD(module.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=0.0)
    gen = torch.Generator().manual_seed(seed)
    loss_sum, seen = 0.0, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout or anything random in the network
        module.train()
        for _ in range(recipe.epochs):
            loss_sum, seen = 0.0, 0
            for x, y in batches(train, torch.randperm(n, generator=gen).tolist(), recipe.batch_size):
                if len(y) < 2:  # a lone last image: train-mode BN cannot normalise one value per channel
                    continue
                loss = torch.nn.functional.cross_entropy(module(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += loss.item() * len(y)
                seen += len(y)
    final_loss = loss_sum / max(seen, 1)
    acc = evaluate(module, test)
    if not math.isfinite(final_loss):
        acc = 100.0 / getattr(test, "num_classes", 1)  # diverged: chance, stated in the provenance
    return {"accuracy": acc, "final_loss": final_loss, "wall_s": time.perf_counter() - t0}


def stored_recipes(store: Store, space: str, task: str) -> dict[str, dict[str, Any] | None]:
    """{arch_id: recipe of its stored record} of this source's records of `space` on `task`."""
    if not has_table(store):
        return {}
    rows = store.db.execute("SELECT arch_id, provenance FROM accuracies WHERE space=? AND task=? AND metric=? "
                            "AND source=?", (space, task, METRIC, SOURCE)).fetchall()
    return {a: (json.loads(p).get("recipe") if p else None) for a, p in rows}


def check_same_recipe(stored: dict[str, dict[str, Any] | None], recipe: Recipe, space: str, task: str) -> None:
    """UserInputError naming the differences when the task's records were trained with another recipe."""
    want = recipe.as_dict()
    for arch_id, got in stored.items():
        if got != want:
            diff = ", ".join(f"{k} {(got or {}).get(k)!r} there, {want.get(k)!r} here"
                             for k in sorted(set(want) | set(got or {})) if (got or {}).get(k) != want.get(k))
            raise UserInputError(f"task {task!r} of {space} already holds {len(stored)} network(s) trained with "
                                 f"another recipe ({diff}; e.g. {arch_id}); use the same options to extend it, or "
                                 "another --task name")


def parse_masks(space: SearchSpace, text: str) -> list[tuple[int, ...]]:
    """Comma-separated arch ids (masks) of `space`, validated; UserInputError naming a bad one."""
    ids = [t.strip() for t in text.split(",") if t.strip()]
    if not ids:
        raise UserInputError("--masks: give comma-separated arch ids (e.g. 0110...,1111...)")
    return list(dict.fromkeys(space.parse(a) for a in ids))


def train_and_store(store: Store, space_name: str, task: str, recipe: Recipe, *, n: int | None = None,
                    seed: int = 0, archs: Sequence[Sequence[int]] | None = None,
                    save_weights: str | Path | None = None, space_config: dict[str, Any] | None = None,
                    on_start: Callable[[int], None] | None = None,
                    on_network: Callable[[dict[str, Any]], None] | None = None,
                    data: tuple[Any, Any] | None = None) -> TrainReport:
    """Train the space's sample of `n` (stratified where the space is: its `sample_unique`) or `archs`, one at
    a time, and store each accuracy before the next starts; archs stored for `task` already are skipped.

    Ctrl-C (KeyboardInterrupt) ends the run with `interrupted` set; every finished network is stored.
    `on_start(todo)` once, `on_network(row)` after each stored network (progress). `data`: the
    (train, score) splits when the caller holds them already (else loaded from the recipe)."""
    t0 = time.perf_counter()
    recipe = recipe.check()
    if archs is None and (n is None or isinstance(n, bool) or n < 1):
        raise UserInputError(f"--n must be an int >= 1 (networks to train), got {n!r}")
    train, test = data if data is not None else load_data(recipe)
    space = space_for(space_name, train.num_classes, space_config)
    archs = ([space.validate(a) for a in archs] if archs is not None
             else space.sample_unique(n, np.random.default_rng(seed)))
    stored = stored_recipes(store, space.name, task)
    check_same_recipe(stored, recipe, space.name, task)
    todo = [a for a in archs if space.arch_id(a) not in stored]
    report = TrainReport(space=space.name, task=task, requested=len(archs), skipped=len(archs) - len(todo))
    out_dir = Path(save_weights) if save_weights is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    if on_start is not None:
        on_start(len(todo))
    try:
        for arch in todo:
            report.trained.append(train_one(store, space, arch, task, recipe, seed, train, test, out_dir))
            if on_network is not None:
                on_network(report.trained[-1])
    except KeyboardInterrupt:
        report.interrupted = True  # every finished network is stored already
    report.remaining = len(todo) - len(report.trained)
    report.wall_s = time.perf_counter() - t0
    return report


def train_one(store: Store, space: SearchSpace, arch: Sequence[int], task: str, recipe: Recipe, seed: int,
              train: Any, test: Any, out_dir: Path | None) -> dict[str, Any]:
    """Train one network, save its weights (when asked) and store its accuracy; the row for the report."""
    arch_id = space.arch_id(arch)
    net_seed = network_seed(seed, arch_id)
    module = trainable(space, arch)
    got = train_network(module, train, test, recipe, net_seed)
    if out_dir is not None:
        from spaces.export import write_atomic

        path = weights_path(out_dir, space.name, arch_id)
        path.unlink(missing_ok=True)
        buf = _state_bytes(module)
        write_atomic(buf, path)
    provenance = {"recipe": recipe.as_dict(), "seed": seed, "network_seed": net_seed, "data": train.name,
                  "n_train": len(train), "n_test": len(test), "final_loss": got["final_loss"],
                  "wall_s": round(got["wall_s"], 3), "torch_threads": torch.get_num_threads(),
                  "grafted": hasattr(space, "build_grafted")}
    store.add_accuracies([AccuracyRecord(space.name, arch_id, task, METRIC, got["accuracy"], SOURCE,
                                         space_config=space.config, provenance=provenance)])
    return {"arch_id": arch_id, "accuracy": got["accuracy"], "final_loss": got["final_loss"],
            "wall_s": got["wall_s"]}


def weights_path(folder: str | Path, space: str, arch_id: str) -> Path:
    """Where `--save-weights` puts one network's state_dict: <folder>/<space>-<arch id>.pt."""
    return Path(folder) / f"{space}-{arch_id}.pt"


def _state_bytes(module: torch.nn.Module) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.getvalue()


# Merging a trained grafted network into the deployed one (`edgeprof graft merge`).
MERGE_TOLERANCE = 1e-4  # max relative error merged vs grafted before a merged network is refused


def load_weights(module: torch.nn.Module, path: str | Path, space: SearchSpace, arch_id: str) -> None:
    """Load a state_dict file into the grafted network; UserInputError naming the keys/shapes that differ."""
    p = Path(path)
    if not p.is_file():
        raise UserInputError(f"--weights {p}: no such file")
    other = p.stem[len(space.name) + 1:] if p.stem.startswith(f"{space.name}-") else ""  # graft train's name
    if other and other != arch_id and set(other) <= {"0", "1"}:
        raise UserInputError(f"--weights {p}: saved for mask {other}, not {arch_id} (its name says so)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except (RuntimeError, ValueError, EOFError, OSError, pickle.UnpicklingError) as e:  # not a torch file
        raise UserInputError(f"--weights {p}: not a state_dict saved with torch.save ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserInputError(f"--weights {p}: not a state_dict (a dict of tensors)")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} (network {tuple(own[k].shape)})" for k in own
              if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{label} ({len(keys)}): {', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shapes", shapes))
                 if keys]
        raise UserInputError(f"--weights {p} does not fit the grafted {space.name} network of mask {arch_id}: "
                             f"{'; '.join(parts)}")
    module.load_state_dict(state)


def count_convs(module: torch.nn.Module) -> int:
    """Conv layers a network runs (the depth a merge removes)."""
    return sum(isinstance(m, torch.nn.Conv2d) for m in module.modules())


def merge_checked(space: SearchSpace, arch: Sequence[int], weights: str | Path | None = None, seed: int = 0,
                  batch: int = 2) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(merged network, check): the grafted network (with `weights`) merged by the space, compared with the
    grafted one on a seeded random input in eval mode; the check holds conv counts and the errors."""
    from spaces.errors import RuntimeFailure

    if not hasattr(space, "merge") or not hasattr(space, "build_grafted"):
        raise UserInputError(f"space {space.name} is no grafting space (it has no merge); give a grafting space "
                             "such as mobilenetv2 or resnet50")
    arch = space.validate(arch)
    arch_id = space.arch_id(arch)
    grafted = space.build_grafted(arch)
    if weights is not None:
        load_weights(grafted, weights, space, arch_id)
    grafted.eval()
    merged = space.merge(grafted).eval()
    x = torch.randn(space.input_shape_of(arch, batch), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref, got = grafted(x), merged(x)
    max_abs = float((ref - got).abs().max())
    rel = max_abs / max(float(ref.abs().max()), 1e-12)
    check = {"space": space.name, "arch_id": arch_id, "convs_grafted": count_convs(grafted),
             "convs_merged": count_convs(merged), "max_abs_error": max_abs, "max_rel_error": rel,
             "tolerance": MERGE_TOLERANCE, "weights": None if weights is None else str(weights)}
    if not math.isfinite(rel) or rel > MERGE_TOLERANCE:
        raise RuntimeFailure(f"merged {space.name} network {arch_id} differs from the grafted one: max relative "
                             f"error {rel:.3g} > {MERGE_TOLERANCE:g} (max abs {max_abs:.3g}); nothing written")
    return merged, check


def export_merged(space: SearchSpace, arch: Sequence[int], merged: torch.nn.Module, out: str | Path
                  ) -> dict[str, Any]:
    """Write the merged network as ONNX with the space's metadata (+ edgeprof.merged=1): what boards measure."""
    from spaces.export import export_module, onnx_metadata

    meta = {**onnx_metadata(space, arch), "edgeprof.merged": "1"}
    exported = export_module(merged, torch.zeros(space.input_shape_of(arch, 1)), out, meta)
    return {"out": str(exported.path), "sha256": exported.sha256, "nbytes": exported.nbytes}
