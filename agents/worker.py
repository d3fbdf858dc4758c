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
from .energy import energy_per_inference, window_sample_count
from .environment import collect_dynamic_state, collect_environment
from .layers import normalise as normalise_layers
from .meters import METERS, NULL_METERS
from .meters.base import measure_idle
from .options import option_problems
from .protocol import error_result, find_task, job_setup, make_result, resolve_model_path, utc_now_iso
from .stats import summarize
from .sysfs import read_thermal_zones
from .thermal import ThermalGate
from .timing import run_timed, warm_up

ENERGY_MIN_SAMPLES = 5  # fewer power samples in the timed window: the energy window is extended
ENERGY_EXTEND_MAX_S = 30.0  # longest extension, whatever the meter's rate


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


class ModelChecksumError(ModelLoadError):
    """The model file's content is not the one the job names (a damaged transfer or disk): the file is moved
    aside, so the host sees the model missing and sends it again."""


def check_model_file(path, sha256):
    """ModelLoadError unless the file exists and, when sha256 is given, has that content hash.

    A file with another hash is renamed to `<path>.damaged` (replacing an older one) before
    ModelChecksumError is raised: left in place, it would fail every later job that names it, because the
    host sends only the models a board lacks.
    """
    if not os.path.isfile(path):
        raise ModelLoadError(f"model file not found: {path}")
    if sha256:
        actual = file_sha256(path)
        if actual != sha256:
            where = "moved aside to " + os.path.basename(path) + ".damaged"
            try:
                os.replace(path, path + ".damaged")
            except OSError as exc:
                where = f"could not be moved aside ({exc.strerror or exc})"
            raise ModelChecksumError(
                f"model file {path} has sha256 {actual}, the job expects {sha256}; the file {where}"
            )


def _make_meter(meter_cfg, root, warnings):
    """The job's meter, or None with a warning when it cannot be used (latency is still measured)."""
    kind = meter_cfg["kind"]
    if kind in NULL_METERS:
        return None
    try:
        cls = METERS.get(kind)
        problems = option_problems(getattr(cls, "OPTIONS", {}), meter_cfg["options"], f"{kind} meter")
        if problems:
            warnings.append("power meter {!r} not used, energy not measured: {}".format(kind, "; ".join(problems)))
            return None
        reason = cls.available(root=root)
        if reason:
            warnings.append(f"power meter {kind!r} unavailable, energy not measured: {reason}")
            return None
        return cls(rail=meter_cfg["rail"], rate_hz=meter_cfg["rate_hz"], root=root, **meter_cfg["options"])
    except Exception as exc:  # noqa: BLE001
        warnings.append(f"power meter {kind!r} failed, energy not measured: {type(exc).__name__}: {exc}")
        return None


def _start_meter(meter, warnings):
    """meter once started, or None (closed, with a warning) when start() fails."""
    if meter is None:
        return None
    try:
        meter.start()
        return meter
    except Exception as exc:  # noqa: BLE001
        warnings.append(f"power meter {meter.name!r} failed to start, energy not measured: {exc}")
        _close_meter(meter)
        return None


def _stop_meter(meter, warnings):
    """The meter's trace, or None with a warning; the meter is closed either way."""
    if meter is None:
        return None
    try:
        return meter.stop()
    except Exception as exc:  # noqa: BLE001
        warnings.append(
            f"power meter {meter.name!r} failed, energy not measured: {type(exc).__name__}: {exc}"
        )
        return None
    finally:
        _close_meter(meter)


def _close_meter(meter):
    try:
        meter.close()
    except Exception:  # noqa: BLE001, S110
        pass


def extend_energy_window(
    run_once,
    meter,
    t0,
    t1,
    n_runs,
    clock=time.perf_counter,
    min_samples=ENERGY_MIN_SAMPLES,
    max_extra_s=ENERGY_EXTEND_MAX_S,
):
    """(window end, runs in [t0, end], extended): keep running the model after the timed phase until the
    window [t0, end] holds min_samples power samples.

    A short timed phase at a slow meter (tegrastats at 1 Hz, a 20 ms model) holds too few samples for an
    energy integral. The extra runs are for energy only: latency samples stay as measured. The meter
    keeps sampling meanwhile; samples_in() says how many it has (or, when a meter cannot tell before
    stop(), its rate estimates it). The extension stops after max_extra_s in any case.
    """

    def count(end):
        n = meter.samples_in(t0, end)
        if n is None:
            n = int((end - t0) * float(meter.rate_hz))
        return n

    if count(t1) >= min_samples:
        return t1, n_runs, False
    rate = float(meter.rate_hz) if meter.rate_hz else 1.0
    limit = min(max_extra_s, max(0.5, 2.0 * (min_samples + 1) / rate))
    end = t1
    while True:
        run_once()
        n_runs += 1
        end = clock()
        if count(end) >= min_samples or end - t1 >= limit:
            return end, n_runs, True


def run_task(job, task_id, job_path, idle_power_mw=None, root="/", clock=time.perf_counter, job_state=None):
    """Measure one task of a validated job: thermal gate, load (timed apart), warm-up, timed phase.

    The meter runs around the timed phase only (and the energy-only extension, when the timed window
    holds too few power samples). job_state: what prepare_job recorded once for the job (setup, idle
    power, warnings). Returns a result dict, status "ok" or "error".
    """
    started_at = utc_now_iso()
    wall0 = time.monotonic()
    task = find_task(job, task_id)
    protocol = job["protocol"]
    warnings = list((job_state or {}).get("warnings") or [])
    environment = None
    backend = None
    backend_info = {}
    try:
        gate = ThermalGate.from_protocol(protocol, root=root).wait()
        if gate["warning"]:
            warnings.append(gate["warning"])
        environment = collect_environment(root)
        _add_job_state(environment, job_state)
        environment["thermal_gate"] = gate
        model_path = resolve_model_path(job_path, task["model"])
        check_model_file(model_path, task["model_sha256"])

        cls = BACKENDS.get(task["backend"])
        precisions = tuple(getattr(cls, "PRECISIONS", ()))
        if task["precision"] not in precisions:
            raise BackendUnavailable(
                "{} backend: precision {!r} is not one it offers ({})".format(
                    task["backend"], task["precision"], ", ".join(precisions) or "none declared"
                )
            )
        reason = cls.available()
        if reason:
            raise BackendUnavailable(reason)
        environment["libraries"] = cls.versions()
        backend = cls(task["options"]).set_job_dir(os.path.dirname(os.path.abspath(job_path)))
        t_load = time.monotonic()
        backend.load(model_path, task["inputs"], task["dtype"], task["precision"])
        load_s = time.monotonic() - t_load

        environment["thermal_c"] = read_thermal_zones(root)  # right before the measurement
        warmup_ms = warm_up(backend.run_once, protocol, clock)
        meter = _start_meter(_make_meter(job["meter"], root, warnings), warnings)
        window = None
        try:
            device_ms = []
            samples_ms, converged, stopped_by, t0, t1 = run_timed(
                backend.run_once, protocol, clock, after_run=lambda: device_ms.append(backend.device_time_ms())
            )
            if meter is not None:
                try:
                    window = (t0,) + extend_energy_window(
                        backend.run_once, meter, t0, t1, len(samples_ms), clock
                    )
                except Exception as exc:  # noqa: BLE001 - latency is measured; energy is lost
                    warnings.append(
                        f"energy not measured: the energy-window runs failed: {type(exc).__name__}: {exc}"
                    )
        finally:
            trace = _stop_meter(meter, warnings)
        if meter is not None:
            environment["power_meter"] = _describe(meter)
        after = collect_dynamic_state(root)
        for key, value in after.items():
            environment[key + "_after"] = value

        layers = None
        n_layer_runs = protocol.get("layer_profile_runs", 0)
        if n_layer_runs:
            try:
                layers = normalise_layers(backend.layer_profile(n_layer_runs))
            except Exception as exc:  # noqa: BLE001 - latency is measured; the profile is extra
                warnings.append(f"layer profile failed: {type(exc).__name__}: {exc}")
        latency_device = None
        if device_ms and all(v is not None for v in device_ms):
            latency_device = summarize(device_ms, protocol["confidence"])
        else:
            device_ms = None
        backend_info = backend.info()
        backend_info["load_s"] = load_s
        latency = summarize(samples_ms, protocol["confidence"])
        latency["converged"] = converged
        latency["stopped_by"] = stopped_by
        warnings.extend(stability_warnings(latency, samples_ms, protocol, stopped_by))
        energy = None
        if trace is not None and window is not None:
            e0, e1, n_energy, extended = window
            try:
                energy = energy_per_inference(trace, e0, e1, n_energy, idle_power_mw, extended=extended)
            except ValueError as exc:
                warnings.append(f"energy not computed: {exc}")
            else:
                if window_sample_count(trace.t_s, e0, e1) < ENERGY_MIN_SAMPLES:
                    warnings.append(
                        "energy window holds only {} power samples (extended {:.2f} s past the timed phase); "
                        "raise meter.rate_hz or max_time_s".format(energy["n_samples"], e1 - t1)
                    )
                if idle_power_mw is None:
                    why = ((job_state or {}).get("idle") or {}).get("reason") or "not measured before the job"
                    warnings.append(f"idle power unknown ({why}): energy net_mj is null")
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
            latency_device_ms=latency_device,
            samples_device_ms=device_ms,
            layers=layers,
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


def _describe(meter):
    """The meter's summary after stop() (rail, rule, achieved rate, notes) for the environment."""
    try:
        return meter.describe()
    except Exception as exc:  # noqa: BLE001
        return {"kind": meter.name, "error": f"{type(exc).__name__}: {exc}"}


def _add_job_state(environment, job_state):
    if job_state:
        environment["setup"] = job_state.get("setup")
        environment["idle_power"] = job_state.get("idle")


def measure_job_idle(job, root="/"):
    """Idle power sampled once per job before the first task: {"power_mw", "idle_s", "n_samples", "rail",
    "rule", "reason"}; power_mw None (with the reason) when there is no usable meter. Never raises."""
    cfg = job["meter"]
    out = {
        "power_mw": None,
        "idle_s": cfg["idle_s"],
        "n_samples": 0,
        "rail": None,
        "rule": None,
        "reason": None,
    }
    if cfg["kind"] in NULL_METERS:
        out["reason"] = "no power meter"
        return out
    if cfg["idle_s"] <= 0:
        out["reason"] = "meter.idle_s is 0"
        return out
    warnings = []
    meter = _make_meter(cfg, root, warnings)
    if meter is None:
        out["reason"] = warnings[0] if warnings else "no meter"
        return out
    try:
        out.update(measure_idle(meter, cfg["idle_s"]))
        if out["power_mw"] is None:
            out["reason"] = "fewer than 2 power samples over the idle window"
    except Exception as exc:  # noqa: BLE001 - the worker reports the meter problem in each result
        out["reason"] = f"idle measurement failed: {type(exc).__name__}: {exc}"
    finally:
        _close_meter(meter)
    return out


def prepare_job(job, root="/"):
    """Once per job, before the first task: the board setup (when asked), then the idle power.

    Returns the job state handed to every worker: {"setup", "idle", "warnings"}. Never raises: a setup
    that cannot be applied or a meter that cannot be read only warns.
    """
    from .setup import apply_setup

    state = {"setup": None, "idle": None, "warnings": []}
    try:
        state["setup"], warns = apply_setup(job_setup(job), root)
        state["warnings"].extend(warns)
    except Exception as exc:  # noqa: BLE001
        state["warnings"].append(f"board setup failed: {type(exc).__name__}: {exc}")
    state["idle"] = measure_job_idle(job, root)
    return state


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
        with open(path, encoding="utf-8") as f:
            obj = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None
