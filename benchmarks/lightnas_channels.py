"""LightNAS stage 2 on this CPU: the stage-2 LightNet (channel scales by BTE) against the stage-1 LightNet at the
same latency target, both measured on `local-cpu` (ONNX Runtime, one thread), small MBConv space.

1. stage 1: measure the first `--n` mbconv-small archs (only those missing from the dataset; the measuring and
   the MLP are benchmarks/lightnas_targets.py's), fit the MLP, take the `--percentile` of the measured latencies
   as the target T and run LightNAS on the digits proxy;
2. measure `--channel-n` channel configurations of the found LightNet (space mbconv-channels over it: the base,
   all scales 1.0, and `--channel-n` - 1 uniform random ones) and fit the per-LightNet channel MLP on 80% of
   them (thesis §2.2: 10,000 configurations on the Xavier; a few hundred here);
3. stage 2: `search lightnas-channels` at the same T (Algorithm 2, BTE on `--images` digits at
   `--bte-resolution` px, `--epochs-bte` epochs). When stage 1's network missed T by more than channel scales can
   make up (the channel predictor, fitted on measured configurations, puts no configuration within ±2% of T),
   stage 2 searches at T2 = the channel predictor's latency of the base instead, i.e. at the latency stage 1
   actually hit, so the two networks still compare at equal latency; the table shows both errors (vs T, vs T2);
4. both networks measured in `--rounds` separate agent jobs, interleaved (stage 1, stage 2, stage 1, ...: a drift
   of the machine hits both), the median of the round medians against T; both trained on the digits proxy with
   one recipe (`--acc-epochs` epochs at 32 px, batch 32, SGD 0.05 cosine: profiler.proxy_accuracy) from
   `--acc-seeds` seeds, held-out accuracy (the 20% split) mean and spread; BTE of both (stage 2's result records
   the base's); the wall time of each stage.
Keep the machine otherwise quiet; the load is recorded. `--quick` is a smoke size (a temporary dataset, 6 + 6
networks, a short protocol, tiny trainings; stage 2's target is then the channel predictor's value of the base,
so a predictor fitted on 8 points cannot make it unreachable): it checks that the path runs, not the figures.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lightnas_targets import QUICK_PROTOCOL, measure_and_fit, parse_and_run

from hwsearch import create_search, digits_proxy
from hwsearch.lightnas_channels import LightNASChannels
from hwsearch.pipeline import measure_rounds
from predictors.data import load_xy
from predictors.metrics import report
from predictors.registry import create_predictor
from profiler.proxy_accuracy import Recipe, load_data, network_seed, train_network, trainable
from profiler.session import Progress, profile
from profiler.store import Store
from spaces.errors import UserInputError
from spaces.mbconv_channels import ONE, channel_space_for

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = ROOT / "benchmarks" / "out" / "lightnas_channels.db"
QUICK = {"n": 6, "channel_n": 6, "epochs": 2, "resolution": 16, "digits": 300, "rounds": 1, "population": 4,
         "iterations": 2, "top_k": 2, "images": 32, "bte_batch": 16, "bte_resolution": 8, "epochs_bte": 2,
         "acc_epochs": 1, "acc_seeds": 1, "acc_digits": 120}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=None, help=f"dataset file (default {DEFAULT_DB.relative_to(ROOT)}; with --quick "
                                               "a temporary one)")
    ap.add_argument("--device", default="local-cpu")
    ap.add_argument("--space", default="mbconv-small", help="stage 1's space (default mbconv-small)")
    ap.add_argument("--n", type=int, default=400, help="stage 1: measured archs for its MLP (default 400)")
    ap.add_argument("--predictor", default="mlp", help="predictor kind of both stages (default mlp, LightNAS')")
    ap.add_argument("--percentile", type=int, default=50, help="the target: this percentile of stage 1's "
                                                               "measured latencies (default 50)")
    ap.add_argument("--epochs", type=int, default=6, help="stage 1: LightNAS epochs (default 6)")
    ap.add_argument("--resolution", type=int, default=16, help="stage 1: supernet image side (default 16)")
    ap.add_argument("--digits", type=int, default=None, help="stage 1: first N digits only (default all)")
    ap.add_argument("--channel-n", type=int, default=160,
                    help="stage 2: measured channel configurations for its MLP (default 160)")
    ap.add_argument("--population", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--images", type=int, default=512, help="stage 2: BTE training images (default 512)")
    ap.add_argument("--bte-batch", type=int, default=64, help="stage 2: BTE batch (default 64)")
    ap.add_argument("--bte-resolution", type=int, default=32,
                    help="stage 2: BTE image side (default 32; at 16 px with 256 images, 12 SGD steps, the losses "
                         "of mbconv-small rise from epoch 1 to 2 and every BTE is negative noise)")
    ap.add_argument("--epochs-bte", type=int, default=3, help="stage 2: BTE epochs E (default 3)")
    ap.add_argument("--acc-epochs", type=int, default=5, help="proxy accuracy: training epochs (default 5)")
    ap.add_argument("--acc-seeds", type=int, default=3, help="proxy accuracy: seeds per network (default 3)")
    ap.add_argument("--acc-digits", type=int, default=None, help="proxy accuracy: first N digits only")
    ap.add_argument("--rounds", type=int, default=5, help="measurement rounds per network (default 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--lock", default=None, metavar="FILE",
                    help="hold this file's lock (flock) while measuring only, so no two measuring runs overlap "
                         "while the trainings in between leave the board to others (e.g. /tmp/edgeprof_measure.lock)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--out-dir", default=None, help="where the two results go (default: beside the dataset)")
    ap.add_argument("--quick", action="store_true", help=f"smoke size: {QUICK} (explicit options still win)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    return ap


def main(argv: list[str] | None = None) -> int:
    return parse_and_run(parser(), argv, QUICK, DEFAULT_DB, run)


@contextmanager
def measuring(lock: str | None, waits: list[float], log: Callable[[str], None]) -> Iterator[None]:
    """Hold `lock` (an exclusive flock) while measuring; the wait is appended to `waits`."""
    if not lock:
        yield
        return
    with open(lock, "a") as f:
        t0 = time.perf_counter()
        fcntl.flock(f, fcntl.LOCK_EX)
        waits.append(round(time.perf_counter() - t0, 1))
        if waits[-1] > 1:
            log(f"waited {waits[-1]:.0f} s for {lock}")
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def stage1_missing(args: argparse.Namespace) -> int:
    """How many of the first `--n` archs stage 1 still has to measure (none: no lock needed for it)."""
    from profiler.config import resolve_device
    from spaces import create_space

    config, space = resolve_device(args.device), create_space(args.space)
    if not Path(args.db).exists():
        return args.n
    with Store(args.db, readonly=True) as store:
        done = store.measured_archs(config.name, space.name, config.runtime.backend, config.runtime.precision, 1,
                                    space_config=space.config)
    return sum(space.arch_id(a) not in done for a in space.sample_unique(args.n, np.random.default_rng(args.seed)))


def fit_channels(args: argparse.Namespace, config: Any, cspace: Any, protocol: Any) -> tuple[Any, dict, float]:
    """Measure the base and `channel_n` - 1 random channel configurations (missing ones only) and fit the MLP
    on 80%: (predictor, held-out report, seconds measuring)."""
    rng = np.random.default_rng(args.seed)
    base = (ONE,) * cspace.n_layers
    archs = [base] + [a for a in cspace.sample_unique(args.channel_n, rng) if tuple(a) != base][:args.channel_n - 1]
    t0 = time.perf_counter()
    with Store(args.db) as store:
        rep = profile(config, cspace, n=len(archs), seed=args.seed, batch=1, store=store, progress=Progress(),
                      protocol_overrides=protocol, archs=archs)
        if rep.interrupted:
            raise KeyboardInterrupt
        ids, y = load_xy(store, config.name, cspace.name, space_config=cspace.config, backend=config.runtime.backend)
    measure_s = time.perf_counter() - t0
    pred = create_predictor(args.predictor, space=cspace.name, space_config=cspace.config, seed=args.seed)
    order = np.random.default_rng(args.seed).permutation(len(ids))
    n_fit = max(2, int(0.8 * len(ids)))
    pred.fit([ids[i] for i in order[:n_fit]], y[order[:n_fit]])
    hold = order[n_fit:] if len(ids) > n_fit else order
    held = report(pred.predict([ids[i] for i in hold]), y[hold], n_target_samples=n_fit,
                  split=f"random {n_fit} train / {len(hold)} held out")
    held.update(n=len(ids), min_ms=float(y.min()), max_ms=float(y.max()), median_ms=float(np.median(y)))
    return pred, held, measure_s


def accuracy(space: Any, arch: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Held-out digits accuracy (%) of the network trained with one recipe from `--acc-seeds` seeds."""
    recipe = Recipe(resolution=32, epochs=args.acc_epochs, batch_size=32, digits_n=args.acc_digits).check()
    train, test = load_data(recipe)
    values, secs = [], 0.0
    for s in range(args.acc_seeds):
        seed = network_seed(args.seed + s, space.arch_id(arch))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = trainable(space, arch)
        r = train_network(module, train, test, recipe, seed)
        values.append(r["accuracy"])
        secs += r["wall_s"]
    return {"mean": float(np.mean(values)), "values": values, "spread": float(np.ptp(values)),
            "train_s": round(secs, 1), "recipe": {"epochs": recipe.epochs, "resolution": recipe.resolution,
                                                   "batch_size": recipe.batch_size, "lr": recipe.lr,
                                                   "test_images": len(test)}}


def run(args: argparse.Namespace) -> int:
    def log(msg: str) -> None:
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    load = os.getloadavg()
    args.threads = max(1, args.threads)
    waits: list[float] = []
    missing = stage1_missing(args)
    with measuring(args.lock if missing else None, waits, log):
        b = measure_and_fit(args, log)  # stage 1's data and MLP (benchmarks/lightnas_targets.py)
    if b is None:
        return 130
    protocol = QUICK_PROTOCOL if args.quick else None
    target = float(np.percentile(b.y, args.percentile))
    t1 = time.perf_counter()
    s1 = create_search("lightnas", predictor=b.pred, target=target, epochs=args.epochs, seed=args.seed,
                       data_resolution=args.resolution).search(
        digits_proxy(resolution=args.resolution, seed=args.seed, n=args.digits))
    stage1_s = time.perf_counter() - t1
    log(f"stage 1: {s1.arch_id} predicted {s1.predicted:.3f} ms for T = {target:.3f} ms ({stage1_s:.0f} s)")
    out_dir = Path(args.out_dir or Path(args.db).parent)
    found = s1.save(out_dir / "lightnas_channels_stage1.json")
    acc1 = accuracy(b.space, tuple(s1.arch), args)
    log(f"stage 1 proxy accuracy {acc1['mean']:.1f}% ({acc1['values']})")
    cspace = channel_space_for(s1.to_dict())
    with measuring(args.lock, waits, log):
        cpred, cheld, channel_measure_s = fit_channels(args, b.config, cspace, protocol)
    log(f"channel MLP on {cheld['n']} configurations of {cspace.base_id} ({channel_measure_s:.0f} s measuring, "
        f"{cheld['min_ms']:.3f}-{cheld['max_ms']:.3f} ms): held-out MAPE {cheld['mape']:.1f}%, "
        f"rho {cheld['spearman']:.3f}")
    base = (ONE,) * cspace.n_layers
    base_ms = float(cpred.predict([cspace.arch_id(base)])[0])  # stage 1's network per the measured channel data
    target2, rule = (base_ms, "quick: the base's channel prediction") if args.quick else (target, "stage 1's target")
    t2 = time.perf_counter()

    def stage2(t: float) -> Any:
        return LightNASChannels(predictor=cpred, target=t, base=s1.to_dict(), population=args.population,
                                iterations=args.iterations, top_k=args.top_k, epochs=args.epochs_bte,
                                resolution=args.bte_resolution, images=args.images, batch_size=args.bte_batch,
                                seed=args.seed, progress=not args.json).search()

    try:
        s2 = stage2(target2)
    except UserInputError as e:  # stage 1 missed T by more than hidden widths can make up: compare at what it hit
        log(f"stage 2 at T = {target2:.3f} ms: {e}")
        target2, rule = base_ms, (f"T unreachable by channel scales ({e}); the latency stage 1's network hit "
                                  "per the channel predictor")
        log(f"stage 2 at {target2:.3f} ms instead: where the measured channel data put stage 1's network")
        t2 = time.perf_counter()
        s2 = stage2(target2)
    stage2_s = time.perf_counter() - t2
    s2.save(out_dir / "lightnas_channels_stage2.json")
    log(f"stage 2: {s2.arch_id} predicted {s2.predicted:.3f} ms, BTE {s2.bte:.4g} (base {s2.base['bte']:.4g}), "
        f"{s2.evaluations} networks trained ({stage2_s:.0f} s)")
    acc2 = acc1 if tuple(s2.arch) == base else accuracy(cspace, tuple(s2.arch), args)  # the base is stage 1's net
    nets = {"stage1": (b.space, tuple(s1.arch), s1.predicted, acc1),
            "stage2": (cspace, tuple(s2.arch), s2.predicted, acc2)}
    rounds: dict[str, list[float]] = {k: [] for k in nets}
    load_measuring = os.getloadavg()
    with measuring(args.lock, waits, log), Store(args.db) as store:
        for _ in range(args.rounds):  # interleaved: a drift of the machine hits both networks alike
            for k, (space, arch, _, _) in nets.items():
                rounds[k] += measure_rounds(b.config, space, arch, "latency", 1, store, protocol=protocol)
    rows = {}
    for k, (space, arch, predicted, acc) in nets.items():
        med = float(np.median(rounds[k]))
        rows[k] = {"arch_id": space.arch_id(arch), "predicted_ms": predicted, "measured_ms": med,
                   "rounds_ms": rounds[k], "spread": float(np.ptp(rounds[k]) / med), "error": med / target - 1,
                   "error_vs_stage2_target": med / target2 - 1, "accuracy": acc}
    rows["stage1"].update(bte=s2.base["bte"], channel_predicted_ms=s2.base["predicted"], wall_s=round(stage1_s, 1))
    rows["stage2"].update(bte=s2.bte, wall_s=round(stage2_s, 1), scales=s2.scales, evaluations=s2.evaluations,
                          draws=s2.sampling["total"], base_in_population=s2.base["in_population"])
    out = {"device": b.config.name, "space": args.space, "quick": args.quick, "target_ms": target,
           "stage2_target_ms": target2, "stage2_target_rule": rule, "percentile": args.percentile,
           "stage1_predictor": {"kind": args.predictor, "n_measured": len(b.ids), "held_out": b.held,
                                "measured_now": missing},
           "channel_predictor": {"kind": args.predictor, "held_out": cheld, "measure_s": round(channel_measure_s, 1)},
           "stage1_search": {"epochs": args.epochs, "resolution": args.resolution, "result": str(found)},
           "stage2_search": {k: s2.params[k] for k in ("population", "iterations", "top_k", "rate", "tolerance")}
           | {"bte_setup": s2.bte_setup, "bte_s": s2.bte_s},
           "rounds": args.rounds, "runs": rows, "load_before": list(load), "load_measuring": list(load_measuring),
           "load_after": list(os.getloadavg()), "lock_waits_s": waits, "wall_s": round(time.perf_counter() - t0, 1)}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print_table(out)
    return 0


def print_table(out: dict[str, Any]) -> None:
    print(f"LightNAS stage 1 vs stage 2 on {out['device']}, {out['space']}, target {out['target_ms']:.3f} ms "
          f"(p{out['percentile']} of {out['stage1_predictor']['n_measured']} measured), {out['rounds']} rounds "
          "interleaved")
    if out["stage2_target_ms"] != out["target_ms"]:
        print(f"stage 2 searched at {out['stage2_target_ms']:.3f} ms: {out['stage2_target_rule']}")
    cp = out["channel_predictor"]["held_out"]
    print(f"channel MLP: {cp['n']} configurations, held-out MAPE {cp['mape']:.1f}%, rho {cp['spearman']:.3f}; "
          f"stage-1 MLP held-out MAPE {out['stage1_predictor']['held_out']['mape']:.1f}%")
    print(f"{'':8s} {'measured':>9s} {'vs T':>8s} {'vs T2':>8s} {'predicted':>10s} {'spread':>7s} "
          f"{'accuracy %':>16s} {'BTE':>8s} {'wall s':>7s}")
    for k, r in out["runs"].items():
        a = r["accuracy"]
        print(f"{k:8s} {r['measured_ms']:9.3f} {100 * r['error']:+7.2f}% {100 * r['error_vs_stage2_target']:+7.2f}% "
              f"{r['predicted_ms']:10.3f} "
              f"{100 * r['spread']:6.1f}% {a['mean']:7.1f} (±{a['spread'] / 2:4.1f}) {r['bte'] or float('nan'):8.4g} "
              f"{r['wall_s']:7.1f}")
    s2 = out["runs"]["stage2"]
    print(f"stage 2: scales {' '.join(f'{x:g}' for x in s2['scales'])}; {s2['evaluations']} networks trained, "
          f"{s2['draws']['draws']:,} draws; base in P_0: {s2['base_in_population']}")
    print(f"load (1 min) {out['load_before'][0]:.2f} at the start, {out['load_measuring'][0]:.2f} before the final "
          f"measurements, {out['load_after'][0]:.2f} at the end; {out['wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
