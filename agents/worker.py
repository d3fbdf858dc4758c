"""Runs ONE task in the current process and returns its result dict.

The runner starts a fresh process per task (a crash, leak or hung runtime then costs one task, and each
model gets a clean allocator and runtime state). Every failure becomes an error result; nothing here
prints a traceback.
"""

import json
import os
import time

from .backends import BACKENDS, BackendUnavailable, ModelLoadError
from .checks import stability_warnings
from .energy import energy_per_inference
from .environment import collect_dynamic_state, collect_environment, read_thermal_zones
from .meters import METERS, NULL_METERS
from .protocol import error_result, find_task, make_result, resolve_model_path, utc_now_iso
from .stats import summarize
from .thermal import ThermalGate
from .timing import run_timed, warm_up


def file_sha256(path, chunk=1 << 20):
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def check_model_file(path, sha256):
    """ModelLoadError unless the file exists and, when sha256 is given, has that content hash."""
    if not os.path.isfile(path):
        raise ModelLoadError(f"model file not found: {path}")
    if sha256:
        actual = file_sha256(path)
        if actual != sha256:
            raise ModelLoadError(f"model file {path} has sha256 {actual}, the job expects {sha256}")


def _make_meter(meter_cfg, root, warnings):
    """The job's meter, or None with a warning when it cannot be used (latency is still measured)."""
    kind = meter_cfg["kind"]
    if kind in NULL_METERS:
        return None
    try:
        cls = METERS.get(kind)
        reason = cls.available(root=root)
        if reason:
            warnings.append(f"power meter {kind!r} unavailable, energy not measured: {reason}")
            return None
        return cls(rail=meter_cfg["rail"], rate_hz=meter_cfg["rate_hz"], root=root)
    except Exception as exc:  # noqa: BLE001
        warnings.append(f"power meter {kind!r} failed, energy not measured: {type(exc).__name__}: {exc}")
        return None


def run_task(job, task_id, job_path, idle_power_mw=None, root="/", clock=time.perf_counter):
    """Measure one task of a validated job: thermal gate, load (timed apart), warm-up, timed phase.

    The meter runs around the timed phase only. Returns a result dict, status "ok" or "error".
    """
    started_at = utc_now_iso()
    wall0 = time.monotonic()
    task = find_task(job, task_id)
    protocol = job["protocol"]
    warnings = []
    environment = None
    backend = None
    backend_info = {}
    try:
        gate = ThermalGate.from_protocol(protocol, root=root).wait()
        if gate["warning"]:
            warnings.append(gate["warning"])
        environment = collect_environment(root)
        environment["thermal_gate"] = gate
        model_path = resolve_model_path(job_path, task["model"])
        check_model_file(model_path, task["model_sha256"])

        cls = BACKENDS.get(task["backend"])
        reason = cls.available()
        if reason:
            raise BackendUnavailable(reason)
        environment["libraries"] = cls.versions()
        backend = cls(task["options"])
        t_load = time.monotonic()
        backend.load(model_path, task["inputs"], task["dtype"], task["precision"])
        load_s = time.monotonic() - t_load

        environment["thermal_c"] = read_thermal_zones(root)  # right before the measurement
        warmup_ms = warm_up(backend.run_once, protocol, clock)
        meter = _make_meter(job["meter"], root, warnings)
        if meter is not None:
            meter.start()
        try:
            samples_ms, converged, stopped_by, t0, t1 = run_timed(backend.run_once, protocol, clock)
        finally:
            trace = None
            if meter is not None:
                try:
                    trace = meter.stop()
                finally:
                    meter.close()
        after = collect_dynamic_state(root)
        for key, value in after.items():
            environment[key + "_after"] = value

        backend_info = backend.info()
        backend_info["load_s"] = load_s
        latency = summarize(samples_ms, protocol["confidence"])
        latency["converged"] = converged
        latency["stopped_by"] = stopped_by
        warnings.extend(stability_warnings(latency, samples_ms, protocol, stopped_by))
        energy = None
        if trace is not None:
            try:
                energy = energy_per_inference(trace, t0, t1, len(samples_ms), idle_power_mw)
            except ValueError as exc:
                warnings.append(f"energy not computed: {exc}")
        return make_result(
            job,
            task,
            status="ok",
            latency_ms=latency,
            samples_ms=samples_ms,
            warmup_ms=warmup_ms,
            energy=energy,
            environment=environment,
            protocol=protocol,
            backend_info=backend_info,
            warnings=warnings,
            started_at=started_at,
            finished_at=utc_now_iso(),
            wall_s=time.monotonic() - wall0,
        )
    except Exception as exc:  # noqa: BLE001
        if backend is not None and not backend_info:
            try:
                backend_info = backend.info()
            except Exception:  # noqa: BLE001
                backend_info = {}
        if environment is None:
            try:
                environment = collect_environment(root)
            except Exception:  # noqa: BLE001
                environment = {}
        return error_result(
            task,
            job,
            type(exc).__name__,
            str(exc) or repr(exc),
            environment=environment,
            warnings=warnings,
            started_at=started_at,
            finished_at=utc_now_iso(),
            wall_s=time.monotonic() - wall0,
            backend_info=backend_info,
        )
    finally:
        if backend is not None:
            try:
                backend.close()
            except Exception:  # noqa: BLE001, S110
                pass


def write_result_file(result, out_path):
    """Write the result as JSON to out_path atomically, so the runner never reads half a file."""
    from .protocol import result_to_line

    tmp = out_path + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(result_to_line(result))
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out_path)


def read_result_file(path):
    """The result written by a worker, or None when missing or unreadable."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            obj = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None
