"""What does SSH cost? The same 20-model NB201 job through the local transport and through SSH to loopback.

A throwaway OpenSSH server (the one the ssh tests use) stands in for a board. Every run starts from
an empty work folder, so it pays for the agent upload, the model uploads, the job, the polling and the
ingest. The two transports alternate (L S, then S L, ...) so drift on a shared machine hits both equally.
Target (issue 3): SSH adds under 10% wall time to a 20-model job.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "ssh"))

from sshd import SshServer, keygen

from profiler.config import DeviceConfig, parse_config, resolve_device
from profiler.jobs import ModelTask, build_job
from profiler.session import ProfileReport, Progress, run_job
from profiler.store import Store
from profiler.transports import open_transport
from spaces import create_space, export_onnx


def one_run(config: DeviceConfig, models: list, shape: tuple[int, ...], db: Path) -> tuple[float, int]:
    """Wall time of prepare + uploads + job + ingest from an empty work folder; returns (s, ok)."""
    t0 = time.perf_counter()
    with Store(db) as store, open_transport(config) as t:
        store.add_device(config.name, config.kind, {})
        t.prepare()
        missing = set(t.missing_models([Path(m.path).name for m in models]))
        for m in models:
            if Path(m.path).name in missing:
                t.put_model(Path(m.path))
        job = build_job(config, [ModelTask(m.sha256, shape) for m in models], batch=1)
        rep = ProfileReport(device=config.name, space="nb201", requested=len(models), already_measured=0)
        run_job(t, job, store, Progress(), rep)
    return time.perf_counter() - t0, rep.ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="models in the job (default 20)")
    ap.add_argument("--rounds", type=int, default=2, help="runs per transport, alternating (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    base = resolve_device("local-cpu")
    space = create_space("nb201")
    archs = space.sample_unique(args.n, np.random.default_rng(args.seed))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        models = [export_onnx(space, a, tmp_path / "models") for a in archs]
        key = keygen(tmp_path / "id_ed25519")
        server = SshServer(tmp_path / "sshd", key).start()
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{server.port} {server.host_public_key()}\n")
        common = {"kind": "cpu", "runtime": {"backend": "onnxruntime",
                                             "intra_op_threads": base.runtime.intra_op_threads,
                                             "inter_op_threads": base.runtime.inter_op_threads},
                  "protocol": dict(base.protocol)}
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
                    wall, ok = one_run(config, models, space.input_shape(1), tmp_path / f"{kind}-{r}.db")
                    if ok != args.n:
                        raise SystemExit(f"{kind} run {r}: only {ok} of {args.n} models measured")
                    walls[kind].append(wall)
                    shutil.rmtree(work, ignore_errors=True)
                    if not args.json:
                        print(f"round {r + 1}: {kind:<5} {wall:6.1f} s", file=sys.stderr)
        finally:
            server.stop()

    local, ssh = float(np.median(walls["local"])), float(np.median(walls["ssh"]))
    res = {"n_models": args.n, "rounds": args.rounds, "wall_s": walls,
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
