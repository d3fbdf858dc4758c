#!/usr/bin/env bash
# The Comfort Zone on a real CUDA GPU (issue 13, "when a GPU machine is at hand"): the conv sweep and the width
# sweep of the small-MBConv median network at batch 1, through the agent on this machine (local transport).
#
# Run from the repository root:   OUT=/some/folder bash benchmarks/comfort_zone_gpu.sh
# Needs `python` (override with PYTHON=...) able to `import edgeprof` (pip install -e . or a venv) and one of:
#   onnxruntime-gpu with CUDAExecutionProvider  -> backend onnxruntime, providers [CUDA, CPU]
#   torch with CUDA                              -> backend torch, device "cuda" (eager, the space's package)
# BACKEND=onnxruntime|torch forces one; otherwise the first available in that order. Under ~6 minutes on a
# desktop/server GPU: a short protocol (below), the default 8x8 channel grid (16..256) at 14x14, 8 widths.
# Writes $OUT/gpu.toml, $OUT/cz.db, $OUT/conv/*.png, $OUT/width/*.png, $OUT/*.json and prints the figures.
set -euo pipefail

PYTHON=${PYTHON:-python}
OUT=${OUT:-$PWD/gpu-comfort-zone}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

"$PYTHON" -c "import edgeprof" || { echo "error: $PYTHON cannot import edgeprof (run from the repo root after pip install -e .)" >&2; exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "(no nvidia-smi)"

if [ -z "${BACKEND:-}" ]; then
  if "$PYTHON" -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; then
    BACKEND=onnxruntime
  elif "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    BACKEND=torch
  else
    echo "error: no CUDA backend: neither onnxruntime's CUDAExecutionProvider nor torch.cuda is available" >&2
    exit 1
  fi
fi
case "$BACKEND" in
  onnxruntime) RUNTIME='backend = "onnxruntime"
providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]' ;;
  torch) RUNTIME='backend = "torch"
device = "cuda"' ;;
  *) echo "error: BACKEND must be onnxruntime or torch, got $BACKEND" >&2; exit 2 ;;
esac
echo "backend: $BACKEND"

cat > "$OUT/gpu.toml" <<EOF
name = "local-gpu"
kind = "gpu"
description = "this machine's CUDA GPU ($BACKEND), batch 1"
[connection]
transport = "local"
workdir = "$OUT/work"
python = "$(command -v "$PYTHON")"
[runtime]
$RUNTIME
precision = "fp32"
[protocol]
warmup_min_runs = 20
warmup_min_s = 0.3
min_runs = 50
max_runs = 1000
target_rel_ci = 0.02
max_time_s = 5
EOF

ARCH=$("$PYTHON" - <<'EOF'
import numpy as np
from spaces import create_space
space = create_space("mbconv-small")  # the median network by FLOPs of 21 sampled with seed 0 (as the benchmark)
archs = space.sample_unique(21, np.random.default_rng(0))
flops = [space.costs(a)["flops"] for a in archs]
print(space.arch_id(archs[int(np.argsort(flops)[len(archs) // 2])]))
EOF
)
echo "width sweep network: mbconv-small $ARCH"

T0=$(date +%s)
"$PYTHON" -m edgeprof comfort-zone "$OUT/gpu.toml" --conv --db "$OUT/cz.db" --out "$OUT/conv" --json -q \
  > "$OUT/conv.json"
T1=$(date +%s)
"$PYTHON" -m edgeprof comfort-zone "$OUT/gpu.toml" --width --space mbconv-small --arch "$ARCH" \
  --phis 1,1.25,1.5,2,2.5,3,3.5,4 --verify --rounds 3 --db "$OUT/cz.db" --out "$OUT/width" --json -q \
  > "$OUT/width.json"
T2=$(date +%s)

# the reports in words (a rerun measures nothing), then the figures
"$PYTHON" -m edgeprof comfort-zone "$OUT/gpu.toml" --conv --db "$OUT/cz.db" --out "$OUT/conv" -q
"$PYTHON" -m edgeprof comfort-zone "$OUT/gpu.toml" --width --space mbconv-small --arch "$ARCH" \
  --phis 1,1.25,1.5,2,2.5,3,3.5,4 --db "$OUT/cz.db" --out "$OUT/width" -q
"$PYTHON" - "$OUT" "$BACKEND" "$((T1 - T0))" "$((T2 - T1))" <<'EOF'
import json, sys
from pathlib import Path
out, backend, conv_s, width_s = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
c, w = json.loads((out / "conv.json").read_text()), json.loads((out / "width.json").read_text())
conv, width = c["conv"], w["width"]
print(f"\n== {backend} on {conv['device']}, batch 1 ==")
print(f"conv sweep ({conv_s} s): {conv['probe']}; latency range {conv['latency_range_ms']} ms; failed {conv['failed']}")
print("  latency (ms), rows I, columns O =", conv["out_channels"])
for ci, row in zip(conv["in_channels"], conv["latency_ms"]):
    print(f"  I={ci:4d} " + " ".join("   -   " if v is None else f"{v:7.4f}" for v in row))
z = conv["zone"]
print(f"  zone: I {z['i_range']}, O {z['o_range']}, {z['cells']} cells; {z.get('verdict')}")
print(f"width sweep ({width_s} s): mbconv-small {width['arch_id']}")
for s in width["steps"]:
    print(f"  phi {s['phi']:<5g} latency {s['latency_ms']} ms  intensity {s['intensity']}")
ch = width["choice"]
print(f"  chosen phi {ch['phi']}: {ch.get('verdict')}")
v = (width.get("scaled") or {}).get("verify") or {}
if v:
    print(f"  verified: median {v['median']:.4f} ms over {v['rounds']} rounds, {100 * v['error_vs_target']:+.1f}% vs phi=1")
r = w["roofline"]
print(f"roofline (width points): peak {r['peak_mac_s'] / 1e9:.1f} GMAC/s, bandwidth {r['bandwidth_gb_s']:.1f} GB/s")
r = c["roofline"]
print(f"roofline (conv points):  peak {r['peak_mac_s'] / 1e9:.1f} GMAC/s, bandwidth {r['bandwidth_gb_s']:.1f} GB/s")
for rep in (c, w):
    for k, p in rep["plots"].items():
        print(f"  {k}: {p}")
EOF
