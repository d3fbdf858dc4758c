"""Does the agent measure what a plain ONNX Runtime loop measures, and does it repeat itself?

For N NB201 networks on this CPU, the agent's median (one fresh process per model, through the local
transport, exactly as `edgeprof profile` runs it) is compared with an independent reference: a plain
ONNX Runtime timing loop in its own fresh process, with the same thread settings and the same input.
This shared machine drifts by tens of percent between processes on sub-millisecond models, so agent and
reference are interleaved per model (A B A B ...) over several rounds, and per-model ratios of medians
(median over rounds) are compared. The agent's per-round medians give the pass-to-pass Spearman rho.

Targets (issue 2): median of agent/reference within 1 +/- 0.05; 90% of models within +/- 15%;
Spearman rho between agent passes >= 0.95.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from profiler.config import parse_config, resolve_device
from profiler.jobs import ModelTask, build_job
from profiler.session import ProfileReport, Progress, run_job
from profiler.store import Store
from profiler.transports.local import LocalTransport
from spaces import create_space, export_onnx

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


def agent_median(transport: LocalTransport, config, store: Store, sha: str, shape: tuple[int, ...]) -> float:
    job = build_job(config, [ModelTask(sha, shape)], batch=1)
    rep = ProfileReport(device=config.name, space="nb201", requested=1, already_measured=0)
    run_job(transport, job, store, Progress(), rep)
    (row,) = [r for r in store.rows() if r["job_id"] == job["job_id"]]
    if row["status"] != "ok":
        raise RuntimeError(f"agent failed on {sha}: {row['error_type']}: {row['error_message']}")
    return float(row["median_ms"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="NB201 networks (default 20)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds, at least 2 (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=resolve_device("local-cpu").runtime.intra_op_threads,
                    help="intra-op threads for both (default: local-cpu's setting; 0: ORT decides)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args()
    if args.rounds < 2:
        ap.error("--rounds must be at least 2 (rho is computed between passes)")

    space = create_space("nb201")
    archs = space.sample_unique(args.n, np.random.default_rng(args.seed))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        config = parse_config({"name": "bench-cpu", "kind": "cpu",
                               "connection": {"transport": "local", "workdir": str(tmp_path / "work")},
                               "runtime": {"backend": "onnxruntime", "intra_op_threads": args.threads,
                                           "inter_op_threads": args.threads}})
        models = [export_onnx(space, a, tmp_path / "models") for a in archs]
        shape = space.input_shape(1)
        transport = LocalTransport(config)
        transport.prepare()
        for m in models:
            transport.put_model(Path(m.path))
        agent = np.zeros((args.rounds, args.n))
        ref = np.zeros((args.rounds, args.n))
        protocol = {**config.protocol}
        warm_s = float(protocol.get("warmup_min_s", 1.0))
        t0 = time.perf_counter()
        with Store(tmp_path / "bench.db") as store:
            store.add_device(config.name, config.kind, {})
            for r in range(args.rounds):
                for i, m in enumerate(models):
                    # A then B, order alternating between rounds so neither always goes first.
                    order = ("agent", "reference") if (r + i) % 2 == 0 else ("reference", "agent")
                    for which in order:
                        if which == "agent":
                            agent[r, i] = agent_median(transport, config, store, m.sha256, shape)
                        else:
                            ref[r, i] = reference_median(Path(m.path), args.threads, warm_s, 200)
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
        "n_models": args.n, "rounds": args.rounds, "threads": args.threads, "wall_s": round(wall, 1),
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
