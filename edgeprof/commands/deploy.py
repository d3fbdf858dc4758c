"""Put the agent on a board (content-hashed: unchanged agents are not sent again) and say what it offers."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from edgeprof.output import err, out, print_json
from profiler.config import resolve_device
from profiler.transports import open_transport


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("device", help="a device name or a path to a TOML file")
    p.add_argument("--json", action="store_true", help="print JSON")


# How to get what a board lacks. The agent uses the runtimes the board already has (on Jetsons:
# JetPack's system TensorRT and pycuda, for JetPack's own Python), never pip wheels it cannot run.
HINTS = {
    "tensorrt": "Jetson: TensorRT comes with JetPack (sudo apt install nvidia-tensorrt, or python3-libnvinfer "
                "on JetPack 4) and is importable only by the system Python: set connection.python = "
                "\"/usr/bin/python3\". Desktop GPU: pip install tensorrt matching the driver's CUDA.",
    "pycuda": "pip3 install pycuda with CUDA on PATH (export PATH=/usr/local/cuda/bin:$PATH; on a Jetson "
              "also CPATH=/usr/local/cuda/include).",
    "onnxruntime": "x86 CPU: pip install onnxruntime; NVIDIA GPU: pip install onnxruntime-gpu; Jetson: the "
                   "Jetson Zoo / jetson-ai-lab wheel for the JetPack's Python (PyPI wheels do not run there).",
    "torch": "Jetson: NVIDIA's PyTorch for Jetson wheel for the JetPack release; elsewhere pip install torch.",
    "rapl": "energy_uj is root-only since Linux 5.10 (CVE-2020-8694): add a udev rule or run "
            "sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj (until reboot).",
    "nvml": "install the NVIDIA driver (libnvidia-ml.so.1); pip install nvidia-ml-py for pynvml (optional).",
    "ina3221": "only on Jetson boards; on JetPack 5+ the rails are under /sys/bus/i2c/drivers/ina3221/*/hwmon.",
    "tegrastats": "only on Jetson boards (JetPack ships /usr/bin/tegrastats).",
}


def offer(info: dict[str, Any], backend: str, meter: str = "none") -> dict[str, Any]:
    """The parts of `agents info` a user decides with: runtimes, meters, board, and what is missing."""
    backends = info.get("backends", {})
    missing = []
    wanted = backends.get(backend, {})
    if not wanted.get("available"):
        missing.append({"what": f"backend {backend}", "reason": wanted.get("reason") or "not reported by the agent",
                        "how": HINTS.get(backend, "")})
    if backend == "tensorrt" and not backends.get("pycuda", {}).get("available", True):
        missing.append({"what": "pycuda (for tensorrt)", "reason": backends["pycuda"].get("reason"),
                        "how": HINTS["pycuda"]})
    m = info.get("meters", {}).get(meter, {})
    if meter not in ("none", "null", "auto") and not m.get("available"):
        missing.append({"what": f"power meter {meter}", "reason": m.get("reason") or "not reported by the agent",
                        "how": HINTS.get(meter, "")})
    env = info.get("environment") or {}
    board = {k: env.get(k) for k in ("hostname", "machine", "board_model", "l4t", "jetpack", "kernel")}
    board["cpu_model"] = (env.get("cpu") or {}).get("model")
    return {"backends": backends, "meters": info.get("meters", {}), "board": board,
            "python": info.get("python"), "missing": missing}


def run(args: argparse.Namespace) -> int:
    config = resolve_device(args.device)
    with open_transport(config) as transport:
        digest = transport.prepare()
        info = transport.agent_info()
        uploaded = getattr(transport, "agent_uploaded", None)
    report = {"device": config.name, "agent_hash": digest, "agent_uploaded": uploaded,
              **offer(info, config.runtime.backend, config.meter.kind), "info": info}
    if args.json:
        print_json(report)
        return 0 if not report["missing"] else 1
    err.print(f"{config.name}: agent {digest} " + ("uploaded" if uploaded else "already there (not sent again)")
              if uploaded is not None else f"{config.name}: agent {digest} ready")
    py = info.get("python") or {}
    board = ", ".join(f"{k} {v}" for k, v in report["board"].items() if v)
    err.print(f"python {py.get('version')} ({py.get('executable')}); {board}")
    t = Table("runtime", "available", "version / reason")
    for name, b in sorted(report["backends"].items()):
        t.add_row(name, "yes" if b.get("available") else "no",
                  ", ".join(f"{k} {v}" for k, v in (b.get("versions") or {}).items() if isinstance(v, str))
                  if b.get("available") else str(b.get("reason")))
    out.print(t)
    m = Table("power meter", "available", "detail")
    for name, b in sorted(report["meters"].items()):
        detail = b.get("rail") or b.get("reason") or b.get("note") or ""
        m.add_row(name, "yes" if b.get("available") else "no", str(detail))
    out.print(m)
    for m in report["missing"]:
        err.print(f"[yellow]missing:[/] {m['what']}: {m['reason']}")
        if m["how"]:
            err.print(f"  how to get it: {m['how']}")
    return 0 if not report["missing"] else 1
