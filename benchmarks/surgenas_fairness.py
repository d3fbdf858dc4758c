"""SurgeNAS's ordered sampling is fair, and every sampled (layer, op) gets an α-gradient (thesis ch. 3, Alg. 1).

Counts: `hwsearch.gumbel.ordered_samples` draws |O| hard one-hots per iteration without replacement per layer,
so after N iterations every (layer, op) must have been sampled exactly N times, whatever α and τ are. Checked on
mbconv (21 layers x 7 ops) and nb201 (6 edges x 5 ops) over --iterations iterations (default 1,000) with τ
decaying geometrically from 1 to 0.05 (the search's schedule, `surgenas_engine.tau_at`) and α not uniform:
random logits (N(0, 2²)), strongly peaked logits (one op per layer +8 over N(0, 1)), and, for nb201, the α a
real short SurgeNAS search ended with.

Gradients: per iteration, a random linear function of the sub-networks' one-hots (Σᵢ <Wᵢ, sampleᵢ>, W ~ N(0, 1)
drawn afresh) is backpropagated to α, and the share of α's entries with a non-zero gradient is recorded (all of
them are sampled every iteration). In float32, as the search runs, a very peaked α at τ near 0 can underflow a
soft sample's off-argmax entries to exactly 0; the same draws in float64 tell underflow from a structural zero.
Then real supernet iterations (`surgenas_engine._Run._iteration`, β = 0, α-steps from the first one) on nb201
and mbconv-small over digits: per-entry α-gradients, the sampled counts, and a SurgeNAS search with
`warmup_epochs=0` whose every step's `alpha_grad_norm` must be > 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import torch

from hwsearch import create_search, digits_proxy
from hwsearch.data import batches
from hwsearch.distributed import DistContext
from hwsearch.gumbel import ordered_samples
from hwsearch.surgenas_engine import _Run, _Step, phi_at, tau_at
from spaces import create_space
from spaces.nb201 import live_edges

SPACES = ("mbconv", "nb201")
TAU0, TAU_END = 1.0, 0.05
QUICK = {"iterations": 50, "digits": 120, "search_epochs": 2, "real_iterations": 2}
# real iterations: small inputs so that a CPU runs them in seconds (mbconv-small's 5 stride-2 stages: 32 -> 1)
REAL = {"nb201": {"space": "nb201", "resolution": 8},
        "mbconv-small": {"space": "mbconv-small", "resolution": 32}}


def alphas(n_layers: int, n_ops: int, seed: int, searched: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """The non-uniform α's the counts are checked under."""
    g = torch.Generator().manual_seed(seed)
    peaked = torch.randn(n_layers, n_ops, generator=g)
    peaked[torch.arange(n_layers), torch.randint(0, n_ops, (n_layers,), generator=g)] += 8.0
    out = {"random": 2.0 * torch.randn(n_layers, n_ops, generator=g), "peaked": peaked}
    if searched is not None:
        out["searched"] = searched.detach().clone().float()
    return out


def sample_check(alpha: torch.Tensor, iterations: int, seed: int, dtype: torch.dtype = torch.float32
                 ) -> dict[str, Any]:
    """Counts of sampled (layer, op) over `iterations` of ordered_samples with decaying τ, and the share of α's
    entries whose gradient (of a random linear function of the one-hots) is non-zero, overall and by τ."""
    gen, wgen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    a = alpha.to(dtype).clone().requires_grad_(True)
    counts = torch.zeros(alpha.shape, dtype=torch.long)
    nonzero = torch.zeros(alpha.shape, dtype=torch.long)
    late_nonzero, late_n, per_iter_min = 0, 0, 1.0
    bad_rows = 0  # a sample that is not one op per layer
    for it in range(iterations):
        tau = tau_at(it, iterations, TAU0, TAU_END)
        samples = ordered_samples(a, tau, gen)
        loss = sum((torch.randn(s.shape, generator=wgen).to(dtype) * s).sum() for s in samples)
        a.grad = None
        loss.backward()
        for s in samples:
            hard = s.detach().round().long()
            bad_rows += int((hard.sum(-1) != 1).sum())
            counts += hard
        nz = (a.grad != 0).long()
        nonzero += nz
        share = float(nz.float().mean())
        per_iter_min = min(per_iter_min, share)
        if it >= iterations - max(iterations // 10, 1):
            late_nonzero, late_n = late_nonzero + int(nz.sum()), late_n + nz.numel()
    return {"iterations": iterations, "count_min": int(counts.min()), "count_max": int(counts.max()),
            "all_equal": bool((counts == iterations).all()), "rows_not_one_hot": bad_rows,
            "grad_nonzero_share": float(nonzero.sum() / (iterations * nonzero.numel())),
            "grad_nonzero_share_min_iteration": per_iter_min,
            "grad_nonzero_share_last_tenth": late_nonzero / late_n,
            "entries_never_nonzero": int((nonzero == 0).sum()),
            "tau_first_last": [TAU0, tau_at(iterations - 1, iterations, TAU0, TAU_END)]}


def zero_entry(space: Any, drawn: list[tuple[int, ...]], layer: int, op: int) -> dict[str, Any]:
    """Where an α-entry with a zero gradient was drawn: the sample, and in it and before it the layer's ops
    and (NB201) whether the edge was on a path to the output: a `none` op, or an edge that is not run,
    passes no gradient to its one-hot."""
    i = next(n for n, arch in enumerate(drawn) if arch[layer] == op)
    row: dict[str, Any] = {"layer": layer, "op": space.ops[op], "drawn_in_sample": i,
                           "ops_up_to_it": [space.ops[arch[layer]] for arch in drawn[: i + 1]]}
    if space.name == "nb201":
        row["edge_live_up_to_it"] = [layer in live_edges(arch) for arch in drawn[: i + 1]]
    return row


def real_iterations(name: str, cfg: dict[str, Any], data: Any, n: int, seed: int) -> dict[str, Any]:
    """`n` real SurgeNAS iterations (β = 0, α-steps from the first, τ and φ as a search of n α-steps) on one
    batch each: the per-entry α-gradient after each (its share of non-zero entries) and the sampled counts."""
    p = create_search("surgenas", space=cfg["space"], epochs=2, warmup_epochs=0, seed=seed,
                      data_resolution=cfg["resolution"], batch_size=32)
    p._validate()
    space = create_space(cfg["space"])
    run = _Run(p, space, None, torch.device("cpu"), DistContext(), 0.0)
    w_opt = torch.optim.SGD(run.net.parameters(), lr=p.w_lr, momentum=p.w_momentum)
    rows = []
    for k, (x, y) in enumerate(batches(data, list(range(len(data))), p.batch_size)):
        if k == n:
            break
        step = _Step(k, phi_at(k, n, p.phi0), tau_at(k, n, p.tau0, p.tau_end))
        before, state = run.alpha.detach().clone(), run.gen.get_state()
        run._iteration(x, y, step, w_opt)
        g = run.alpha.grad
        redraw = torch.Generator().manual_seed(0)
        redraw.set_state(state)  # the same sub-networks again: in which sample each zero-gradient op was drawn
        drawn = [tuple(int(k) for k in smp.detach().argmax(-1)) for smp in ordered_samples(before, step.tau, redraw)]
        rows.append({"tau": step.tau, "phi": step.phi, "ce": run.log[-1]["ce"],
                     "alpha_grad_norm": run.log[-1]["alpha_grad_norm"],
                     "grad_nonzero_share": float((g != 0).float().mean()), "grad_abs_min": float(g.abs().min()),
                     "grad_finite": bool(torch.isfinite(g).all()),
                     "alpha_moved_share": float((run.alpha.detach() != before).float().mean()),
                     "zero_grad_entries": [zero_entry(space, drawn, int(e), int(k))
                                           for e, k in (g == 0).nonzero().tolist()]})
    f = run.fairness()
    return {"space": cfg["space"], "shape": [space.n_layers, space.n_ops], "resolution": cfg["resolution"],
            "iterations": rows, "counts": f,
            "grad_nonzero_share_min": min(r["grad_nonzero_share"] for r in rows)}


def short_search(data: Any, epochs: int, seed: int) -> tuple[dict[str, Any], torch.Tensor]:
    """A SurgeNAS search on nb201 with warmup_epochs=0: every step is an α-step; its α-gradient norms."""
    s = create_search("surgenas", space="nb201", epochs=epochs, warmup_epochs=0, seed=seed, data_resolution=8,
                      batch_size=32)
    r = s.search(data)
    norms = [row["alpha_grad_norm"] for row in r.log]
    return ({"epochs": epochs, "steps": len(norms), "alpha_grad_norm_min": min(norms),
             "alpha_grad_norm_max": max(norms), "steps_with_zero_grad": sum(1 for v in norms if not v > 0),
             "fairness": r.fairness, "arch": r.arch_id}, s.alpha_)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=1000, help="ordered_samples iterations (default 1,000)")
    ap.add_argument("--real-iterations", type=int, default=4, help="real supernet iterations per space")
    ap.add_argument("--search-epochs", type=int, default=2, help="the short nb201 search's epochs (default 2)")
    ap.add_argument("--digits", type=int, default=400, help="digits used by the real iterations and the search")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help=f"smoke size: {QUICK} (explicit options still win)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    if args.quick:
        ap.set_defaults(**QUICK)
        args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data8 = digits_proxy(resolution=8, seed=args.seed, n=args.digits)[0]
    search, searched_alpha = short_search(data8, args.search_epochs, args.seed)
    sampling: dict[str, Any] = {}
    for name in SPACES:
        space = create_space(name)
        for kind, alpha in alphas(space.n_layers, space.n_ops, args.seed,
                                  searched_alpha if name == "nb201" else None).items():
            row = sample_check(alpha, args.iterations, args.seed)
            if row["entries_never_nonzero"] or row["grad_nonzero_share"] < 1.0:  # underflow or structural?
                f64 = sample_check(alpha, args.iterations, args.seed, torch.float64)
                row["float64"] = {k: f64[k] for k in ("grad_nonzero_share", "grad_nonzero_share_last_tenth",
                                                      "entries_never_nonzero", "count_min", "count_max")}
            sampling[f"{name}/{kind}"] = {"space": name, "alpha": kind, "shape": [space.n_layers, space.n_ops],
                                          "alpha_max_softmax_mean": float(torch.softmax(alpha, -1).max(-1)
                                                                          .values.mean()), **row}
    real = {}
    for name, cfg in REAL.items():
        data = digits_proxy(resolution=cfg["resolution"], seed=args.seed, n=args.digits)[0]
        real[name] = real_iterations(name, cfg, data, args.real_iterations, args.seed)
    out = {"quick": args.quick,
           "protocol": {"iterations": args.iterations, "tau": f"geometric per iteration from {TAU0} to {TAU_END}",
                        "alphas": {"random": "N(0, 2^2) logits", "peaked": "N(0, 1) + 8 on one op per layer",
                                   "searched": f"nb201 only: alpha after the {args.search_epochs}-epoch search"},
                        "gradient": "sum_i <W_i, sample_i>, W ~ N(0,1) per iteration, backpropagated to alpha "
                                    "(float32; float64 rerun where any entry got a zero gradient)",
                        "real": {k: {**v, "batch_size": 32, "digits": args.digits, "beta": 0.0}
                                 for k, v in REAL.items()},
                        "search": {"space": "nb201", "epochs": args.search_epochs, "warmup_epochs": 0,
                                   "resolution": 8, "digits": args.digits}, "seed": args.seed},
           "sampling": sampling, "real_iterations": real, "search": search,
           "summary": {"all_counts_equal": all(r["all_equal"] for r in sampling.values()),
                       "count_min": min(r["count_min"] for r in sampling.values()),
                       "count_max": max(r["count_max"] for r in sampling.values()),
                       "grad_nonzero_share_min": min(r["grad_nonzero_share"] for r in sampling.values()),
                       "real_grad_nonzero_share_min": min(r["grad_nonzero_share_min"] for r in real.values()),
                       "real_counts_equal": all(r["counts"]["equal"] for r in real.values()),
                       "search_steps_with_zero_grad": search["steps_with_zero_grad"]},
           "wall_s": round(time.perf_counter() - t0, 1)}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print_table(out)
    return 0


def print_table(out: dict[str, Any]) -> None:
    p = out["protocol"]
    print(f"SurgeNAS ordered sampling: {p['iterations']} iterations, tau {p['tau']}; gradient of a random linear "
          "function of the one-hots")
    print(f"{'space/alpha':20s} {'shape':>6s} {'maxP':>5s} {'count min':>9s} {'max':>5s} {'equal':>5s} "
          f"{'grad!=0':>8s} {'worst it':>8s} {'last 10%':>8s} {'never':>5s}  float64 (grad!=0, last 10%)")
    for key, r in out["sampling"].items():
        f64 = r.get("float64")
        print(f"{key:20s} {r['shape'][0]:>3d}x{r['shape'][1]:<2d} {r['alpha_max_softmax_mean']:5.2f} "
              f"{r['count_min']:9d} {r['count_max']:5d} {str(r['all_equal']):>5s} "
              f"{100 * r['grad_nonzero_share']:7.2f}% {100 * r['grad_nonzero_share_min_iteration']:7.2f}% "
              f"{100 * r['grad_nonzero_share_last_tenth']:7.2f}% {r['entries_never_nonzero']:5d}  "
              + ("-" if f64 is None else f"{100 * f64['grad_nonzero_share']:.2f}%, "
                                         f"{100 * f64['grad_nonzero_share_last_tenth']:.2f}%"))
    print("real supernet iterations (beta 0, alpha-steps from the first):")
    for name, r in out["real_iterations"].items():
        its = ", ".join(f"tau {x['tau']:.2f} phi {x['phi']:.2f} |g| {x['alpha_grad_norm']:.3g} "
                        f"nonzero {100 * x['grad_nonzero_share']:.0f}%" for x in r["iterations"])
        c = r["counts"]
        print(f"  {name:13s} {r['shape'][0]}x{r['shape'][1]} @{r['resolution']}px: counts {c['min']}..{c['max']} "
              f"over {c['iterations']} iterations (equal {c['equal']}); {its}")
        for k, x in enumerate(r["iterations"]):
            for z in x["zero_grad_entries"][:6]:
                live = z.get("edge_live_up_to_it")
                print(f"    iteration {k + 1}: zero gradient at layer {z['layer']} op {z['op']}, drawn in sample "
                      f"{z['drawn_in_sample'] + 1} (layer's ops up to it: {', '.join(z['ops_up_to_it'])}"
                      + ("" if live is None else f"; edge live: {live}") + ")")
            if len(x["zero_grad_entries"]) > 6:
                print(f"    iteration {k + 1}: ... {len(x['zero_grad_entries']) - 6} more zero-gradient entries")
    s = out["search"]
    print(f"  search nb201 {s['epochs']} epochs, warmup 0: {s['steps']} alpha-steps, |grad alpha| "
          f"{s['alpha_grad_norm_min']:.3g}..{s['alpha_grad_norm_max']:.3g}, {s['steps_with_zero_grad']} steps with a "
          f"zero gradient; counts {s['fairness']['min']}..{s['fairness']['max']} (equal {s['fairness']['equal']})")
    print(f"{out['wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
