"""What does SSH cost? The same 20-model NB201 job through the local transport and through SSH to loopback.

A throwaway OpenSSH server (the one the ssh tests use) stands in for a board. Every run starts from
an empty work folder, so it pays for the agent upload, the model uploads, the job, the polling and the
ingest. The two transports alternate (L S, then S L, ...) so drift on a shared machine hits both equally.
Target: SSH adds under 10% wall time to a 20-model job. `--quick` is a smoke size (3 models,
one run per transport, a short protocol): it checks that the benchmark runs, its figures mean little.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from profiler.config import DeviceConfig, parse_config, resolve_device
from profiler.jobs import ModelTask, build_job
from profiler.session import ProfileReport, Progress, record_for, run_job
from profiler.store import ModelRecord, Store
from profiler.transports import open_transport
from spaces import create_space, export_onnx

# the throwaway OpenSSH server of the ssh tests (tests/ is not a package, so its folder goes on the path)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "ssh"))
from sshd import SshServer, keygen

# --quick: a smoke size, and a short protocol
QUICK = {"n": 3, "rounds": 1}
QUICK_PROTOCOL = {"warmup_min_runs": 3, "warmup_min_s": 0.05, "min_runs": 5, "max_runs": 30, "target_rel_ci": 0.05}


def one_run(config: DeviceConfig, tasks: list[ModelTask], records: list[ModelRecord], cache: Path,
            db: Path) -> tuple[float, int]:
    """Wall time of prepare + uploads + job + ingest from an empty work folder; returns (s, ok).

    The models, exported once beforehand, are registered in the store as `edgeprof profile` does (results
    of models a store does not know are not ingested).
    """
    t0 = time.perf_counter()
    with Store(db) as store, open_transport(config) as t:
        store.add_device(config.name, config.kind, {})
        store.add_models(records)
        t.prepare()
        missing = set(t.missing_models([m.filename for m in tasks]))
        for m in tasks:
            if m.filename in missing:
                t.put_model(cache / m.filename)
        job = build_job(config, tasks, batch=1)
        rep = ProfileReport(device=config.name, space="nb201", requested=len(tasks), already_measured=0)
        run_job(t, job, store, Progress(), rep)
    return time.perf_counter() - t0, rep.ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="models in the job (default 20)")
    ap.add_argument("--rounds", type=int, default=2, help="runs per transport, alternating (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke size: {QUICK} and a short protocol (explicit options still win)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        ap.set_defaults(**QUICK)
        args = ap.parse_args(argv)
    if args.n < 1 or args.rounds < 1:
        ap.error("--n and --rounds must be at least 1")

    base = resolve_device("local-cpu")
    space = create_space("nb201")
    archs = space.sample_unique(args.n, np.random.default_rng(args.seed))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        cache = tmp_path / "models"
        exported = [(a, export_onnx(space, a, cache)) for a in archs]  # once, outside the timed runs
        tasks = [ModelTask(m.sha256, space.input_shape(1), filename=m.path.name) for _, m in exported]
        records = [record_for(space, a, m.sha256, m.nbytes) for a, m in exported]
        key = keygen(tmp_path / "id_ed25519")
        server = SshServer(tmp_path / "sshd", key).start()
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{server.port} {server.host_public_key()}\n")
        common = {"kind": "cpu", "runtime": {"backend": "onnxruntime",
                                             "intra_op_threads": base.runtime.option("intra_op_threads"),
                                             "inter_op_threads": base.runtime.option("inter_op_threads")},
                  "protocol": QUICK_PROTOCOL if args.quick else dict(base.protocol)}
        walls: dict[str, list[float]] = {"local": [], "ssh": []}
        try:
            for r in range(args.rounds):
                order = ("local", "ssh") if r % 2 == 0 else ("ssh", "local")
                for kind in order:
                    work = tmp_path / f"work-{kind}-{r}"
                    conn = {"transport": "local", "workdir": str(work)} if kind == "local" else {
                        "transport": "ssh", "host": "127.0.0.1", "port": server.port, "user": server.user,
                        "identity_file": str(key), "known_hosts": str(known), "workdir": str(work),
                        "python": sys.executable}
                    config = parse_config({"name": f"bench-{kind}", "connection": conn, **common})
                    wall, ok = one_run(config, tasks, records, cache, tmp_path / f"{kind}-{r}.db")
                    if ok != args.n:
                        raise SystemExit(f"{kind} run {r}: only {ok} of {args.n} models measured")
                    walls[kind].append(wall)
                    shutil.rmtree(work, ignore_errors=True)
                    if not args.json:
                        print(f"round {r + 1}: {kind:<5} {wall:6.1f} s", file=sys.stderr)
        finally:
            server.stop()

    local, ssh = float(np.median(walls["local"])), float(np.median(walls["ssh"]))
    res = {"n_models": args.n, "rounds": args.rounds, "quick": args.quick, "wall_s": walls,
           "local_median_s": round(local, 2), "ssh_median_s": round(ssh, 2),
           "ratio_ssh_over_local": round(ssh / local, 4), "added_wall_pct": round(100 * (ssh / local - 1), 2),
           "per_model_overhead_ms": round(1000 * (ssh - local) / args.n, 1),
           "models_per_hour": {"local": round(3600 * args.n / local), "ssh": round(3600 * args.n / ssh)},
           "target_under_10pct": bool(ssh / local < 1.10)}
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"transport overhead: {args.n}-model NB201 job, {args.rounds} alternating runs per transport")
        print(f"  local  median {local:6.1f} s   {res['models_per_hour']['local']:6d} models/hour")
        print(f"  ssh    median {ssh:6.1f} s   {res['models_per_hour']['ssh']:6d} models/hour")
        print(f"  ssh/local {res['ratio_ssh_over_local']:.3f} ({res['added_wall_pct']:+.1f}% wall), "
              f"per-model overhead {res['per_model_overhead_ms']:+.0f} ms")
        print(f"  target SSH adds < 10%: {'met' if res['target_under_10pct'] else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
