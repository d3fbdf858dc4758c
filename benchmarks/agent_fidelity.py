"""Does the agent measure what a plain ONNX Runtime loop measures, and does it repeat itself?

For N NB201 networks on this CPU, the agent's median (one fresh process per model, through the local
transport, exactly as `edgeprof profile` runs it) is compared with an independent reference: a plain
ONNX Runtime timing loop in its own fresh process, with the same thread settings and the same input.
This shared machine drifts by tens of percent between processes on sub-millisecond models, so agent and
reference are interleaved per model (A B A B ...) over several rounds, and per-model ratios of medians
(median over rounds) are compared. The agent's per-round medians give the pass-to-pass Spearman rho.

Targets: median of agent/reference within 1 +/- 0.05; 90% of models within +/- 15%;
Spearman rho between agent passes >= 0.95. `--quick` is a smoke size (3 networks, 2 rounds, a short
protocol): it checks that the benchmark runs, its figures mean little.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from profiler.config import parse_config, resolve_device
from profiler.jobs import ModelTask, build_job
from profiler.session import ProfileReport, Progress, export_models, run_job
from profiler.store import Store
from profiler.transports.local import LocalTransport
from spaces import create_space

# --quick: a smoke size, and a short protocol for both the agent and the reference
QUICK = {"n": 3, "rounds": 2, "reference_runs": 30}
QUICK_PROTOCOL = {"warmup_min_runs": 3, "warmup_min_s": 0.05, "min_runs": 5, "max_runs": 30, "target_rel_ci": 0.05}

# The reference loop: nothing from edgeprof, just ONNX Runtime and perf_counter.
REFERENCE = r"""
import sys, time, json
import numpy as np, onnxruntime as ort
path, threads, warm_s, runs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = threads
s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
i = s.get_inputs()[0]
x = np.random.default_rng(0).standard_normal([1] + list(i.shape[1:])).astype(np.float32)
feed = {i.name: x}
t0 = time.perf_counter(); k = 0
while k < 10 or time.perf_counter() - t0 < warm_s:
    s.run(None, feed); k += 1
ts = []
for _ in range(runs):
    a = time.perf_counter(); s.run(None, feed); ts.append((time.perf_counter() - a) * 1e3)
print(json.dumps({"median": float(np.median(ts)), "n": len(ts)}))
"""


def reference_median(path: Path, threads: int, warm_s: float, runs: int) -> float:
    out = subprocess.run([sys.executable, "-c", REFERENCE, str(path), str(threads), str(warm_s), str(runs)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["median"]


def agent_median(transport: LocalTransport, config, store: Store, task: ModelTask) -> float:
    """One job of one model, run and ingested as `edgeprof profile` does (the store knows the model)."""
    job = build_job(config, [task], batch=1)
    rep = ProfileReport(device=config.name, space="nb201", requested=1, already_measured=0)
    run_job(transport, job, store, Progress(), rep)
    rows = [r for r in store.rows(device=config.name) if r["job_id"] == job["job_id"]]
    if len(rows) != 1:
        raise RuntimeError(f"job {job['job_id']}: {len(rows)} stored results for {task.sha256}, expected 1 "
                           f"(a result the store did not ingest?)")
    (row,) = rows
    if row["status"] != "ok":
        raise RuntimeError(f"agent failed on {task.sha256}: {row['error_type']}: {row['error_message']}")
    return float(row["median_ms"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="NB201 networks (default 20)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds, at least 2 (default 3)")
    ap.add_argument("--reference-runs", type=int, default=200, help="timed runs of the reference loop (default 200)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=resolve_device("local-cpu").runtime.option("intra_op_threads"),
                    help="intra-op threads for both (default: local-cpu's setting; 0: ORT decides)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke size: {QUICK} and a short protocol (explicit options still win)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    if args.quick:
        ap.set_defaults(**QUICK)
        args = ap.parse_args(argv)
    if args.n < 2:
        ap.error("--n must be at least 2 (rho is computed across networks)")
    if args.rounds < 2:
        ap.error("--rounds must be at least 2 (rho is computed between passes)")

    space = create_space("nb201")
    archs = space.sample_unique(args.n, np.random.default_rng(args.seed))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        raw = {"name": "bench-cpu", "kind": "cpu",
               "connection": {"transport": "local", "workdir": str(tmp_path / "work")},
               "runtime": {"backend": "onnxruntime", "intra_op_threads": args.threads,
                           "inter_op_threads": args.threads}}
        config = parse_config({**raw, "protocol": QUICK_PROTOCOL} if args.quick else raw)
        cache = tmp_path / "models"
        transport = LocalTransport(config)
        transport.prepare()
        agent = np.zeros((args.rounds, args.n))
        ref = np.zeros((args.rounds, args.n))
        warm_s = float(config.protocol.get("warmup_min_s", 1.0))
        t0 = time.perf_counter()
        with Store(tmp_path / "bench.db") as store:
            store.add_device(config.name, config.kind, {})
            # exported and registered in the store as `edgeprof profile` does: results of unknown models
            # are not ingested
            tasks = export_models(space, archs, store, Progress(), backend="onnxruntime", cache=cache)
            for task in tasks:
                transport.put_model(cache / task.filename)
            for r in range(args.rounds):
                for i, task in enumerate(tasks):
                    # A then B, order alternating between rounds so neither always goes first.
                    order = ("agent", "reference") if (r + i) % 2 == 0 else ("reference", "agent")
                    for which in order:
                        if which == "agent":
                            agent[r, i] = agent_median(transport, config, store, task)
                        else:
                            ref[r, i] = reference_median(cache / task.filename, args.threads, warm_s,
                                                         args.reference_runs)
                    if not args.json:
                        print(f"round {r + 1}/{args.rounds} model {i + 1:2d}/{args.n}: agent "
                              f"{agent[r, i]:.4f} ms  reference {ref[r, i]:.4f} ms", file=sys.stderr)
        wall = time.perf_counter() - t0
        transport.close()

    agent_med = np.median(agent, axis=0)
    ref_med = np.median(ref, axis=0)
    ratio = agent_med / ref_med
    rhos = [float(spearmanr(agent[a], agent[b])[0]) for a in range(args.rounds) for b in range(a + 1, args.rounds)]
    within15 = float(np.mean(np.abs(ratio - 1) <= 0.15))
    res = {
        "n_models": args.n, "rounds": args.rounds, "threads": args.threads, "quick": args.quick,
        "wall_s": round(wall, 1),
        "latency_ms": {"agent_min": float(agent_med.min()), "agent_max": float(agent_med.max())},
        "ratio": {"median": float(np.median(ratio)), "p5": float(np.percentile(ratio, 5)),
                  "p25": float(np.percentile(ratio, 25)), "p75": float(np.percentile(ratio, 75)),
                  "p95": float(np.percentile(ratio, 95)), "min": float(ratio.min()), "max": float(ratio.max()),
                  "share_within_15pct": within15},
        "rho_between_passes": {"min": min(rhos), "mean": float(np.mean(rhos)), "all": rhos},
        "rho_agent_vs_reference": float(spearmanr(agent_med, ref_med)[0]),
        "targets": {"ratio_median_within_5pct": bool(abs(np.median(ratio) - 1) <= 0.05),
                    "share_within_15pct_ge_90": bool(within15 >= 0.9),
                    "rho_ge_0_95": bool(min(rhos) >= 0.95)},
        "per_model": [{"agent_ms": float(agent_med[i]), "reference_ms": float(ref_med[i]), "ratio": float(ratio[i]),
                       "agent_rounds_ms": agent[:, i].tolist(), "reference_rounds_ms": ref[:, i].tolist()}
                      for i in range(args.n)],
    }
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        q = res["ratio"]
        print(f"agent fidelity: {args.n} NB201 networks x {args.rounds} interleaved rounds, "
              f"threads={args.threads}, {wall:.0f} s")
        print(f"  agent medians          {agent_med.min():.3f} .. {agent_med.max():.3f} ms")
        print(f"  ratio agent/reference  median {q['median']:.3f}  p5 {q['p5']:.3f}  p25 {q['p25']:.3f}  "
              f"p75 {q['p75']:.3f}  p95 {q['p95']:.3f}  (min {q['min']:.3f}, max {q['max']:.3f})")
        print(f"  within +/-15%          {within15 * 100:.0f}% of models")
        print(f"  Spearman rho, passes   min {min(rhos):.3f}  mean {np.mean(rhos):.3f}")
        print(f"  Spearman rho, agent vs reference {res['rho_agent_vs_reference']:.3f}")
        for k, v in res["targets"].items():
            print(f"  target {k:<28} {'met' if v else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
