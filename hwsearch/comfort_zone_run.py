"""The Comfort Zone measured on a board (thesis §3.3.6): the conv sweep, the width sweep, the scaled network and
a roofline, every network through the agent with the device's protocol.

`conv_sweep` measures one convolution (the `conv-probe` space) over a grid of input × output channels and finds
the zone around the base cell (`hwsearch.comfort_zone.conv_zone`); `width_sweep` measures a network at a uniform
width multiplier ϕ = 1, 1.25, … and picks the widest whose latency stays within the tolerance of ϕ = 1
(`choose_width`); `scale_network` exports the chosen network, verifies it in rounds like a search result and
writes it as one (`edgeprof report search` and `search --verify` read it). Every measurement is stored, so a
rerun measures only what is missing (the store's resume check is per space config: each ϕ is its own config).
The CLI (`edgeprof comfort-zone`), SurgeNAS' `--scale` and `benchmarks/comfort_zone_local.py` all call these.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwsearch.comfort_zone import choose_width, conv_zone, roofline
from hwsearch.pipeline import Log, ProgressFactory, _no_progress, _quiet, measure_rounds, verification
from hwsearch.result import SearchResult
from spaces import SearchSpace, create_space
from spaces.errors import RuntimeFailure, UserInputError

if TYPE_CHECKING:
    from profiler.config import DeviceConfig
    from profiler.store import Store

DEFAULT_TOLERANCE = 0.10
DEFAULT_STEP = 0.25
DEFAULT_CAP = 3.0  # the thesis' ϕ on desktop GPUs and Xavier; a board with room beyond it shows it at the cap


def width_steps(step: float = DEFAULT_STEP, cap: float = DEFAULT_CAP) -> list[float]:
    """ϕ = 1, 1 + step, … up to `cap` (included when it falls on a step)."""
    if not (math.isfinite(step) and step > 0):
        raise UserInputError(f"--step must be a positive number, got {step}")
    if not (math.isfinite(cap) and cap > 1):
        raise UserInputError(f"--cap must be above 1, got {cap}")
    n = int(math.floor((cap - 1.0) / step + 1e-9))
    if n > 40:
        raise UserInputError(f"--step {step} up to --cap {cap} is {n + 1} networks; take a larger step")
    return [round(1.0 + i * step, 6) for i in range(n + 1)]


def check_steps(phis: Sequence[float], option: str = "--phis") -> list[float]:
    """Width steps as the sweep needs them: from 1 (the network as found), rising; UserInputError otherwise."""
    steps = [float(p) for p in phis]
    if not steps or steps[0] != 1.0 or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise UserInputError(f"{option} must start at 1 and rise, got {', '.join(f'{p:g}' for p in steps)}")
    return steps


LATENCIES = {"end-to-end": "latency", "device": "device_latency"}  # --latency -> the store's quantity


def _quantity(latency: str) -> str:
    if latency not in LATENCIES:
        raise UserInputError(f"--latency must be one of {', '.join(LATENCIES)}, got {latency!r}")
    return LATENCIES[latency]


def _measure(config: DeviceConfig, space: SearchSpace, archs: list[tuple[int, ...]], batch: int, store: Store,
             progress: ProgressFactory, protocol: dict[str, Any] | None,
             latency: str = "end-to-end") -> dict[str, float]:
    """Measure what the store lacks of `archs` (one agent job) and return arch id -> median latency (ms) of
    every stored ok measurement of them under the device's setting at `batch`: end to end (the agent's
    headline, host-device copies included where the backend makes them), or the device's own compute time."""
    from profiler.session import profile  # the exporters (torch): only when something is measured

    with progress() as bars:
        rep = profile(config, space, n=len(archs), seed=0, batch=batch, store=store, progress=bars,
                      archs=archs, protocol_overrides=protocol)
    if rep.interrupted:
        raise KeyboardInterrupt
    setting = {**config.setting(), "batch": batch}
    costs = store.arch_costs(config.name, space.name, space.config, quantity=_quantity(latency), **setting)
    if rep.errors and not costs:
        e = rep.errors[0]
        raise RuntimeFailure(f"{config.name} could not run {space.name}: {e.get('type')}: {e.get('message')}")
    if not costs and latency == "device" and store.arch_costs(config.name, space.name, space.config, **setting):
        raise RuntimeFailure(f"{config.name}'s backend ({config.runtime.backend}) records no device time for "
                             "these networks (TensorRT and torch on CUDA do): use --latency end-to-end; the "
                             "measurements are stored")
    return costs


@dataclass
class ConvSweep:
    """A conv sweep's grid (latency and intensity over input × output channels), its zone and roofline points."""

    device: str
    config: dict[str, Any]
    in_channels: list[int]
    out_channels: list[int]
    latency_ms: np.ndarray
    intensity: np.ndarray
    flops: np.ndarray
    mem_access: np.ndarray
    zone: Any
    batch: int = 1
    failed: int = 0

    def to_dict(self) -> dict[str, Any]:
        def grid(a: np.ndarray) -> list[list[float | None]]:
            return [[None if not np.isfinite(v) else float(v) for v in row] for row in a]

        measured = self.latency_ms[np.isfinite(self.latency_ms)]
        return {"device": self.device, "probe": self.config, "batch": self.batch,
                "in_channels": self.in_channels, "out_channels": self.out_channels,
                "latency_ms": grid(self.latency_ms), "intensity": grid(self.intensity),
                "latency_range_ms": [float(measured.min()), float(measured.max())] if measured.size else None,
                "failed": self.failed, "zone": self.zone.to_dict()}


def conv_sweep(config: DeviceConfig, store: Store, h: int = 14, w: int | None = None, k: int = 3, stride: int = 1,
               channels: Sequence[int] | None = None, base: tuple[int, int] | None = None,
               tolerance: float = DEFAULT_TOLERANCE, batch: int = 1, progress: ProgressFactory = _no_progress,
               protocol: dict[str, Any] | None = None, latency: str = "end-to-end") -> ConvSweep:
    """One convolution (h × w input, k × k kernel, `stride`) measured for every (I, O) of `channels` ×
    `channels` on the device, and the zone around `base` (default the smallest cell)."""
    probe: dict[str, Any] = {"h": h, "w": w if w is not None else h, "k": k, "stride": stride}
    if channels is not None:
        probe["channels"] = list(channels)
    space = create_space("conv-probe", **probe)
    archs = list(space.grid())
    chans = [int(c) for c in space.config["channels"]]
    if base is not None and (base[0] not in chans or base[1] not in chans):
        raise UserInputError(f"--base {base[0]},{base[1]} is not a cell of the grid (channels "
                             f"{', '.join(map(str, chans))})")
    costs = _measure(config, space, archs, batch, store, progress, protocol, latency)
    n = len(chans)
    lat, inten, flops, mem = (np.full((n, n), np.nan) for _ in range(4))
    for arch in archs:
        i, o = arch
        c = space.costs(arch)
        inten[i, o], flops[i, o], mem[i, o] = c["intensity"], c["flops"], c["mem_access"]
        lat[i, o] = costs.get(space.arch_id(arch), np.nan)
    zone = conv_zone(chans, chans, lat, base=base, tolerance=tolerance, intensity=inten)
    return ConvSweep(config.name, space.config, chans, chans, lat, inten, flops, mem, zone, batch,
                     failed=int(np.isnan(lat).sum()))


@dataclass
class WidthSweep:
    """A network measured at each width ϕ: latency and costs per step, and the ϕ chosen."""

    device: str
    space: str
    space_config: dict[str, Any]
    arch_id: str
    phis: list[float]
    configs: list[dict[str, Any]]
    latency_ms: list[float]
    flops: list[float]
    mem_access: list[float]
    params: list[float]
    choice: Any
    batch: int = 1
    scaled: dict[str, Any] = field(default_factory=dict)

    @property
    def chosen_index(self) -> int:
        return self.phis.index(self.choice.phi)

    def to_dict(self) -> dict[str, Any]:
        steps = [{"phi": p, "space_config": c, "latency_ms": None if not math.isfinite(v) else v,
                  "flops": f, "mem_access": m, "params": q, "intensity": f / m if m else None}
                 for p, c, v, f, m, q in zip(self.phis, self.configs, self.latency_ms, self.flops,
                                              self.mem_access, self.params, strict=True)]
        return {"device": self.device, "space": self.space, "space_config": self.space_config,
                "arch_id": self.arch_id, "batch": self.batch, "steps": steps, "choice": self.choice.to_dict(),
                "scaled": self.scaled}


def base_network(space: str | None = None, arch: str | None = None, result: str | Path | None = None,
                 space_config: dict[str, Any] | None = None) -> tuple[SearchSpace, tuple[int, ...]]:
    """The network to widen: a search result file, or a space and an arch id."""
    if result is not None:
        path = Path(result)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserInputError(f"--result {path}: no such file") from None
        except (OSError, ValueError) as e:
            raise UserInputError(f"--result {path}: not a search result ({e})") from None
        if not isinstance(data, dict) or not {"space", "arch"} <= set(data):
            raise UserInputError(f"--result {path}: not a search result (no space and arch)")
        sp = create_space(data["space"], **(data.get("space_config") or {}))
        return sp, sp.validate(data["arch"])
    if space is None or arch is None:
        raise UserInputError("the width sweep needs a network: --space S --arch A, or --result RESULT.json")
    sp = create_space(space, **(space_config or {}))
    return sp, sp.parse(arch)


def width_sweep(config: DeviceConfig, store: Store, space: SearchSpace, arch: Sequence[int],
                phis: Sequence[float] | None = None, tolerance: float = DEFAULT_TOLERANCE, batch: int = 1,
                progress: ProgressFactory = _no_progress, protocol: dict[str, Any] | None = None,
                log: Log = _quiet, latency: str = "end-to-end") -> WidthSweep:
    """`arch` measured at each width ϕ of `phis` (default 1, 1.25, …, 3), one agent job per ϕ, and the
    widest ϕ whose latency stays within `tolerance` of ϕ = 1."""
    phis = check_steps(list(phis) if phis is not None else width_steps())
    arch = space.validate(arch)
    configs, lat, flops, mem, params = [], [], [], [], []
    for phi in phis:
        wide = space.widened(phi)
        log(f"width ϕ = {phi:g}: {wide.name} {wide.config}")
        costs = _measure(config, wide, [arch], batch, store, progress, protocol, latency)
        c = wide.costs(arch)
        configs.append(wide.config)
        lat.append(float(costs.get(wide.arch_id(arch), math.nan)))
        flops.append(float(c["flops"]))
        mem.append(float(c["mem_access"]))
        params.append(float(c["params"]))
    choice = choose_width(phis, lat, tolerance=tolerance)
    return WidthSweep(config.name, space.name, space.config, space.arch_id(arch), phis, configs, lat, flops, mem,
                      params, choice, batch)


def scaled_result(sweep: WidthSweep, arch: Sequence[int]) -> SearchResult:
    """The chosen network as a search result: its space at the chosen width, its arch, and as target the base
    network's measured latency (what widening must not exceed)."""
    i = sweep.chosen_index
    base = sweep.latency_ms[0]
    return SearchResult(search="comfort-zone", space=sweep.space, space_config=sweep.configs[i], arch=list(arch),
                        arch_id=sweep.arch_id, target=base if math.isfinite(base) and base > 0 else None,
                        metric="latency", unit="ms", predicted=None,
                        params={"phi": sweep.phis[i], "tolerance": sweep.choice.tolerance, "device": sweep.device,
                                "base_space_config": sweep.space_config})


def scale_network(sweep: WidthSweep, config: DeviceConfig, store: Store, arch: Sequence[int], out: Path,
                  rounds: int = 0, progress: ProgressFactory = _no_progress, protocol: dict[str, Any] | None = None,
                  log: Log = _quiet, latency: str = "end-to-end") -> dict[str, Any]:
    """Write the chosen network (`out`/width_scaled.json as a search result, `out`/width_scaled.onnx) and,
    with `rounds`, measure it in that many separate jobs like `search --verify`: the median against the
    base network's latency. Stored in the dataset like every measurement."""
    from profiler.session import model_cache_dir
    from spaces.export import export_onnx

    result = scaled_result(sweep, arch)
    wide = create_space(result.space, **result.space_config)
    out.mkdir(parents=True, exist_ok=True)
    model = export_onnx(wide, arch, model_cache_dir())
    onnx_path = out / "width_scaled.onnx"
    shutil.copyfile(model.path, onnx_path)
    res: dict[str, Any] = {**result.to_dict(), "onnx": str(onnx_path), "model_sha256": model.sha256}
    if rounds:
        values = measure_rounds(config, wide, tuple(arch), _quantity(latency), rounds, store, log, progress,
                                protocol)
        res["verify"] = {**verification(config.name, values, result.target, None), "latency": latency}
    path = out / "width_scaled.json"
    path.write_text(json.dumps(res, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    res["path"] = str(path)
    sweep.scaled = res
    return res


def roofline_points(conv: ConvSweep | None, width: WidthSweep | None) -> tuple[list[tuple[float, float, str]], Any]:
    """(intensity, attained, group) of every measured point of the sweeps, and the roofline they imply."""
    flops, lat, mem, groups = [], [], [], []
    if conv is not None:
        ok = np.isfinite(conv.latency_ms)
        flops += list(conv.flops[ok] * conv.batch)
        lat += list(conv.latency_ms[ok])
        mem += list(conv.mem_access[ok] * conv.batch)
        groups += ["conv sweep"] * int(ok.sum())
    if width is not None:
        for f, v, m in zip(width.flops, width.latency_ms, width.mem_access, strict=True):
            if math.isfinite(v):
                flops.append(f * width.batch)
                lat.append(v)
                mem.append(m * width.batch)
                groups.append("width sweep")
    if not flops:
        raise RuntimeFailure("no measured point to draw a roofline from")
    roof = roofline(flops, lat, mem)
    intensity = np.asarray(flops) / np.asarray(mem)
    attained = np.asarray(flops) / (np.asarray(lat) / 1000.0)
    return [(float(i), float(a), g) for i, a, g in zip(intensity, attained, groups, strict=True)], roof


def comfort_zone(config: DeviceConfig, db: str | Path, out: Path, conv: bool = True, width: bool = False,
                 tolerance: float = DEFAULT_TOLERANCE, batch: int = 1, conv_options: dict[str, Any] | None = None,
                 network: dict[str, Any] | None = None, phis: Sequence[float] | None = None,
                 step: float = DEFAULT_STEP, cap: float = DEFAULT_CAP, rounds: int = 0,
                 progress: ProgressFactory = _no_progress, protocol: dict[str, Any] | None = None,
                 log: Log = _quiet, latency: str = "end-to-end") -> dict[str, Any]:
    """The sweeps asked for, their pictures in `out` (conv_sweep.png, width_sweep.png, and the roofline of what
    this run measured: roofline_conv.png, roofline_width.png, or roofline.png for both, so a --conv run and a
    --width run into one folder keep both) and the
    scaled network: the report `edgeprof comfort-zone` prints (and gives as JSON)."""
    from hwsearch import comfort_zone_plot as plot
    from profiler.store import Store

    _quantity(latency)
    steps = check_steps(phis) if phis is not None else width_steps(step, cap)
    base_space, arch = base_network(**(network or {})) if width else (None, None)
    if width:
        base_space.widened(steps[-1])  # a space without a width multiplier says so before anything runs
    out.mkdir(parents=True, exist_ok=True)
    rep: dict[str, Any] = {"device": config.name, "db": str(db), "tolerance": tolerance, "batch": batch,
                           "latency": latency, "plots": {}}
    conv_res = width_res = None
    with Store(db) as store:
        if conv:
            opts = {k: v for k, v in (conv_options or {}).items() if v is not None}
            log(f"conv sweep on {config.name}")
            conv_res = conv_sweep(config, store, tolerance=tolerance, batch=batch, progress=progress,
                                  protocol=protocol, latency=latency, **opts)
            rep["conv"] = conv_res.to_dict()
            rep["plots"]["conv"] = str(plot.plot_conv_sweep(
                conv_res.in_channels, conv_res.out_channels, conv_res.intensity, conv_res.latency_ms,
                conv_res.zone, out / "conv_sweep.png", title=_probe_title(config.name, conv_res)))
        if width:
            assert base_space is not None and arch is not None
            width_res = width_sweep(config, store, base_space, arch, steps, tolerance, batch, progress, protocol,
                                    log, latency)
            if math.isfinite(width_res.latency_ms[width_res.chosen_index]):
                scale_network(width_res, config, store, arch, out, rounds, progress, protocol, log, latency)
            rep["width"] = width_res.to_dict()
            rep["plots"]["width"] = str(plot.plot_width(
                width_res.phis, width_res.latency_ms, width_res.choice, out / "width_sweep.png",
                title=f"{width_res.space} {_short(width_res.arch_id)} on {config.name}"))
    points, roof = roofline_points(conv_res, width_res)
    rep["roofline"] = roof.to_dict()
    name = "roofline.png" if conv and width else f"roofline_{'conv' if conv else 'width'}.png"
    rep["plots"]["roofline"] = str(plot.plot_roofline(points, roof, out / name,
                                                      title=f"Roofline measured on {config.name}"))
    return rep


def _short(arch_id: str, n: int = 40) -> str:
    return arch_id if len(arch_id) <= n else arch_id[:n].rstrip("-|+~") + "…"


def _probe_title(device: str, sweep: ConvSweep) -> str:
    p = sweep.config
    return f"{device}: one conv, {p['h']}x{p['w']} input, k{p['k']} s{p['stride']}, batch {sweep.batch}"


def scale_on_devices(result: SearchResult, devices: Sequence[str], db: str | Path, out: Path,
                     tolerance: float = DEFAULT_TOLERANCE, rounds: int = 3, phis: Sequence[float] | None = None,
                     progress: ProgressFactory = _no_progress, protocol: dict[str, Any] | None = None,
                     log: Log = _quiet) -> list[dict[str, Any]]:
    """Comfort-Zone scaling of a found network per board (thesis §5.4: one base network for a group of
    boards, widened within each board's own zone): the width sweep, the scaled network and its verification
    on each device, pictures in `out`/<device>/."""
    from profiler.config import resolve_device

    configs = [resolve_device(d) for d in devices]  # every device is checked before any is measured
    base = create_space(result.space, **(result.space_config or {}))
    base.widened(2.0)  # a space without a width multiplier says so before anything runs
    done = []
    for config in configs:
        rep = comfort_zone(config, db, out / config.name, conv=False, width=True, tolerance=tolerance,
                           network={"result": None, "space": result.space, "arch": result.arch_id,
                                    "space_config": result.space_config},
                           phis=phis, rounds=rounds, progress=progress, protocol=protocol, log=log)
        done.append({"device": config.name, **rep["width"], "plots": rep["plots"]})
    return done
