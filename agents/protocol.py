"""The job (host -> agent) and result (agent -> host) documents: the one contract both sides share.

See docs/contracts.md. The host imports this module to read results, so it stays stdlib-only and free of
side effects. Validation errors name the exact field path, because a job is usually written by a program
and the person reading the error has to find the bad field in a generated file.

Why one module over 450 lines: it is the contract between the host and the agent (job and result
schema, their defaults and validation); one file keeps both sides reading the same definitions.
"""

import copy
import datetime
import difflib
import json
import math
import os
import re

JOB_SCHEMA = "edgeprof.job/1"
# `agents run` exit status when another job holds the board's lock: nothing was measured, the host waits and
# starts the job again (under a new id: the first one's start is recorded)
EXIT_BOARD_BUSY = 75
RESULT_SCHEMA = "edgeprof.result/1"

DEFAULT_PROTOCOL = {
    "warmup_min_runs": 10,
    "warmup_min_s": 1.0,
    "min_runs": 20,
    "max_runs": 200,
    "target_rel_ci": 0.01,
    "confidence": 0.95,
    "max_time_s": 60.0,
    "timeout_s": 600.0,
    "thermal_max_c": None,
    "thermal_zones": [],
    "thermal_wait_max_s": 300.0,
    "thermal_poll_s": 1.0,
    "layer_profile_runs": 0,
}

# options: the meter's own (PowerMeter.OPTIONS), passed to its constructor
DEFAULT_METER = {"kind": "none", "rail": None, "rate_hz": 100.0, "idle_s": 2.0, "options": {}}

# optional board setup before the job (agents/setup.py); absent from a job means this
DEFAULT_SETUP = {"nvpmodel_mode": None, "jetson_clocks": False}

TASK_DEFAULTS = {"model_sha256": None, "dtype": "float32", "precision": "fp32", "batch": 1, "options": {}}
TASK_REQUIRED = ("task_id", "model", "inputs", "backend")
JOB_KEYS = ("schema", "job_id", "device", "protocol", "meter", "setup", "owner", "tasks")
# optional: the dataset that started the job (host side); the agent only checks its shape
OWNER_KEYS = ("dataset_id", "db", "host")

DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int32", "int64", "bool")
# Which precisions exist is each backend's declaration (Backend.PRECISIONS); a job only needs a name.
PRECISION_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")

LATENCY_KEYS = (
    "median",
    "mean",
    "std",
    "min",
    "max",
    "p10",
    "p90",
    "p99",
    "iqr_mean",
    "cv",
    "n",
    "ci_halfwidth",
    "ci_rel",
    "confidence",
    "converged",
)
ENERGY_KEYS = (
    "gross_mj",
    "net_mj",
    "mean_power_mw",
    "idle_power_mw",
    "rail",
    "rule",
    "sample_rate_hz",
    "n_samples",
    "window_s",
    "extended",
    "n_runs",
)
RESULT_KEYS = (
    "schema",
    "job_id",
    "task_id",
    "model_sha256",
    "device",
    "backend",
    "precision",
    "batch",
    "status",
    "error",
    "latency_ms",
    "samples_ms",
    "warmup_ms",
    "latency_device_ms",
    "samples_device_ms",
    "layers",
    "energy",
    "environment",
    "protocol",
    "backend_info",
    "warnings",
    "started_at",
    "finished_at",
    "wall_s",
)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class JobError(ValueError):
    """An invalid job document. `field` is the path of the offending field, e.g. "tasks[3].inputs"."""

    def __init__(self, field, message):
        self.field = field
        self.detail = message
        ValueError.__init__(self, f"{field}: {message}" if field else message)


# ---------------------------------------------------------------------------------------------------------
# type checks (bool is an int in Python, and never a valid number in a job)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _int(value, path, minimum):
    if not _is_int(value):
        raise JobError(path, f"expected an integer, got {_describe(value)}")
    if value < minimum:
        raise JobError(path, f"must be >= {minimum}, got {value}")
    return value


def _float(value, path, positive=True):
    if not _is_number(value):
        raise JobError(path, f"expected a finite number, got {_describe(value)}")
    if positive and value <= 0:
        raise JobError(path, f"must be > 0, got {value!r}")
    if not positive and value < 0:
        raise JobError(path, f"must be >= 0, got {value!r}")
    return float(value)


def _str(value, path, choices=None):
    if not isinstance(value, str) or not value:
        raise JobError(path, f"expected a non-empty string, got {_describe(value)}")
    if choices is not None and value not in choices:
        raise JobError(path, "expected one of {}, got {!r}".format(", ".join(choices), value))
    return value


def _mapping(value, path, what="a mapping"):
    if not isinstance(value, dict):
        raise JobError(path, f"expected {what}, got {_describe(value)}")
    return value


def _describe(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean %s" % ("true" if value else "false")
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _reject_unknown(mapping, known, path):
    for key in mapping:
        if key not in known:
            msg = "unknown key (known: {})".format(", ".join(known))
            close = difflib.get_close_matches(str(key), list(known), n=1)
            if close:
                msg += f"; did you mean {close[0]!r}?"
            raise JobError(_join(path, key), msg)


def _join(path, key):
    return f"{path}.{key}" if path else str(key)


# ---------------------------------------------------------------------------------------------------------
# validation


def validate_protocol(raw, path="protocol"):
    """The protocol block with defaults filled in; raises JobError naming the bad field."""
    raw = _mapping({} if raw is None else raw, path)
    _reject_unknown(raw, list(DEFAULT_PROTOCOL), path)
    p = copy.deepcopy(DEFAULT_PROTOCOL)
    p.update(raw)
    out = {}
    out["warmup_min_runs"] = _int(p["warmup_min_runs"], path + ".warmup_min_runs", 0)
    out["warmup_min_s"] = _float(p["warmup_min_s"], path + ".warmup_min_s", positive=False)
    out["min_runs"] = _int(p["min_runs"], path + ".min_runs", 2)
    out["max_runs"] = _int(p["max_runs"], path + ".max_runs", 2)
    if out["min_runs"] > out["max_runs"]:
        raise JobError(path + ".min_runs", "{} > max_runs ({})".format(out["min_runs"], out["max_runs"]))
    out["target_rel_ci"] = _float(p["target_rel_ci"], path + ".target_rel_ci")
    conf = _float(p["confidence"], path + ".confidence")
    if not 0.0 < conf < 1.0:
        raise JobError(path + ".confidence", f"must be between 0 and 1 (exclusive), got {conf!r}")
    out["confidence"] = conf
    out["max_time_s"] = _float(p["max_time_s"], path + ".max_time_s")
    out["timeout_s"] = _float(p["timeout_s"], path + ".timeout_s")
    tmax = p["thermal_max_c"]
    out["thermal_max_c"] = None if tmax is None else _float(tmax, path + ".thermal_max_c")
    zones = p["thermal_zones"]
    if not isinstance(zones, list):
        raise JobError(path + ".thermal_zones", f"expected a list of zone names, got {_describe(zones)}")
    out["thermal_zones"] = [_str(z, f"{path}.thermal_zones[{i}]") for i, z in enumerate(zones)]
    out["thermal_wait_max_s"] = _float(p["thermal_wait_max_s"], path + ".thermal_wait_max_s", positive=False)
    out["thermal_poll_s"] = _float(p["thermal_poll_s"], path + ".thermal_poll_s")
    out["layer_profile_runs"] = _int(p["layer_profile_runs"], path + ".layer_profile_runs", 0)
    return out


def validate_meter(raw, path="meter", meters=None):
    """The meter block with defaults filled in. `meters`: known meter names, checked when given."""
    raw = _mapping({} if raw is None else raw, path)
    _reject_unknown(raw, list(DEFAULT_METER), path)
    m = dict(DEFAULT_METER)
    m.update(raw)
    kind = _str(m["kind"], path + ".kind")
    if meters is not None and kind not in meters:
        raise JobError(path + ".kind", _unknown_name("meter", kind, meters))
    rail = m["rail"]
    return {
        "kind": kind,
        "rail": None if rail is None else _str(rail, path + ".rail"),
        "rate_hz": _float(m["rate_hz"], path + ".rate_hz"),
        "idle_s": _float(m["idle_s"], path + ".idle_s", positive=False),
        "options": copy.deepcopy(_mapping(m["options"], path + ".options")),
    }


def validate_setup(raw, path="setup"):
    """The optional board-setup block: {"nvpmodel_mode": int >= 0 or null, "jetson_clocks": bool}."""
    raw = _mapping({} if raw is None else raw, path)
    _reject_unknown(raw, list(DEFAULT_SETUP), path)
    s = dict(DEFAULT_SETUP)
    s.update(raw)
    mode = s["nvpmodel_mode"]
    clocks = s["jetson_clocks"]
    if not isinstance(clocks, bool):
        raise JobError(path + ".jetson_clocks", f"expected true or false, got {_describe(clocks)}")
    return {
        "nvpmodel_mode": None if mode is None else _int(mode, path + ".nvpmodel_mode", 0),
        "jetson_clocks": clocks,
    }


def validate_owner(raw, path="owner"):
    """The optional owner block: {"dataset_id": non-empty string, "db": string or null, "host": string or null}.

    The host that starts a job records which dataset it measures for; another dataset sharing the board
    then leaves the job alone (it never ingests it or marks it ingested). The agent only checks the shape.
    """
    raw = _mapping(raw, path)
    _reject_unknown(raw, list(OWNER_KEYS), path)
    if "dataset_id" not in raw:
        raise JobError(path + ".dataset_id", "required key is missing")
    out = {"dataset_id": _str(raw["dataset_id"], path + ".dataset_id")}
    for key in ("db", "host"):
        value = raw.get(key)
        out[key] = None if value is None else _str(value, f"{path}.{key}")
    return out


def job_setup(job):
    """The job's setup block, or the default (nothing to do) when the job has none."""
    return dict(job.get("setup") or DEFAULT_SETUP)


def _unknown_name(kind, name, known):
    known = sorted(known)
    msg = "unknown {} {!r} (known: {})".format(kind, name, ", ".join(known) or "none")
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        msg += f"; did you mean {close[0]!r}?"
    return msg


def _validate_inputs(raw, path):
    what = "a mapping of name -> shape list"
    if not isinstance(raw, dict) or not raw:
        raise JobError(path, f"expected {what}, got {_describe(raw)}")
    out = {}
    for name, shape in raw.items():
        sub = f"{path}.{name}"
        if not isinstance(shape, list) or not shape:
            raise JobError(sub, f"expected a non-empty list of positive integers, got {_describe(shape)}")
        for i, dim in enumerate(shape):
            _int(dim, f"{sub}[{i}]", 1)
        out[name] = list(shape)
    return out


def _precision(value, path):
    value = _str(value, path)
    if not PRECISION_RE.match(value):
        raise JobError(path, f"expected a precision name such as fp32, fp16, bf16 or int8, got {value!r}")
    return value


def validate_task(raw, path, backends=None):
    """One task with defaults filled in. `backends`: known backend names, checked when given."""
    _mapping(raw, path)
    _reject_unknown(raw, list(TASK_REQUIRED) + list(TASK_DEFAULTS), path)
    for key in TASK_REQUIRED:
        if key not in raw:
            raise JobError(_join(path, key), "required key is missing")
    t = copy.deepcopy(TASK_DEFAULTS)
    t.update(raw)
    backend = _str(t["backend"], path + ".backend")
    if backends is not None and backend not in backends:
        raise JobError(path + ".backend", _unknown_name("backend", backend, backends))
    sha = t["model_sha256"]
    if sha is not None and (not isinstance(sha, str) or not _SHA256_RE.match(sha)):
        raise JobError(
            path + ".model_sha256", f"expected 64 lowercase hex digits or null, got {_describe(sha)}"
        )
    return {
        "task_id": _str(t["task_id"], path + ".task_id"),
        "model": _str(t["model"], path + ".model"),
        "model_sha256": sha,
        "inputs": _validate_inputs(t["inputs"], path + ".inputs"),
        "dtype": _str(t["dtype"], path + ".dtype", DTYPES),
        "backend": backend,
        "precision": _precision(t["precision"], path + ".precision"),
        "batch": _int(t["batch"], path + ".batch", 1),
        "options": copy.deepcopy(_mapping(t["options"], path + ".options")),
    }


def validate_job(raw, backends=None, meters=None):
    """A validated copy of a job document with every default filled in.

    Rejects unknown keys, wrong types, non-positive numbers, min_runs > max_runs and duplicate task ids.
    `backends` / `meters` (collections of names) also check the names used, so a typo fails before any
    task runs instead of producing one error line per task.
    """
    _mapping(raw, "", "a JSON object")
    _reject_unknown(raw, list(JOB_KEYS), "")
    for key in ("schema", "job_id", "tasks"):
        if key not in raw:
            raise JobError(key, "required key is missing")
    if raw["schema"] != JOB_SCHEMA:
        raise JobError("schema", "expected {!r}, got {}".format(JOB_SCHEMA, _describe(raw["schema"])))
    tasks = raw["tasks"]
    if not isinstance(tasks, list) or not tasks:
        raise JobError("tasks", f"expected a non-empty list of tasks, got {_describe(tasks)}")
    job = {
        "schema": JOB_SCHEMA,
        "job_id": _str(raw["job_id"], "job_id"),
        "device": _str(raw.get("device", "unknown"), "device"),
        "protocol": validate_protocol(raw.get("protocol"), "protocol"),
        "meter": validate_meter(raw.get("meter"), "meter", meters),
        "tasks": [],
    }
    if "setup" in raw:  # optional; kept out of jobs that do not ask, so they validate to themselves
        job["setup"] = validate_setup(raw["setup"], "setup")
    if "owner" in raw:  # optional too: jobs of older hosts have none
        job["owner"] = validate_owner(raw["owner"], "owner")
    seen = {}
    for i, task in enumerate(tasks):
        path = f"tasks[{i}]"
        t = validate_task(task, path, backends)
        if t["task_id"] in seen:
            raise JobError(
                path + ".task_id",
                "duplicate task id {!r} (also tasks[{}])".format(t["task_id"], seen[t["task_id"]]),
            )
        seen[t["task_id"]] = i
        job["tasks"].append(t)
    return job


def load_job(path, backends=None, meters=None):
    """Read and validate job.json; every failure (unreadable, not JSON, invalid) is a JobError."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except OSError as exc:
        raise JobError("", f"cannot read job file {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise JobError("", f"job file {path} is not valid JSON: {exc}") from exc
    return validate_job(raw, backends=backends, meters=meters)


def find_task(job, task_id):
    """The task with task_id; JobError when the job has none."""
    for task in job["tasks"]:
        if task["task_id"] == task_id:
            return task
    raise JobError("tasks", f"no task with task_id {task_id!r}")


def resolve_model_path(job_path, model):
    """`model` is relative to the folder holding job.json (the bundle), or absolute."""
    if os.path.isabs(model):
        return model
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(job_path)), model))


# ---------------------------------------------------------------------------------------------------------
# results


def utc_now_iso():
    """UTC time as 2026-11-22T13:30:00.123Z (millisecond precision, like the contract's example)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def make_result(
    job,
    task,
    status="ok",
    error=None,
    latency_ms=None,
    samples_ms=None,
    warmup_ms=None,
    energy=None,
    environment=None,
    protocol=None,
    backend_info=None,
    warnings=None,
    started_at=None,
    finished_at=None,
    wall_s=None,
    latency_device_ms=None,
    samples_device_ms=None,
    layers=None,
):
    """A result dict with every contract key, in the contract's order."""
    if status not in ("ok", "error"):
        raise ValueError(f"status must be 'ok' or 'error', got {status!r}")
    return {
        "schema": RESULT_SCHEMA,
        "job_id": job["job_id"],
        "task_id": task["task_id"],
        "model_sha256": task.get("model_sha256"),
        "device": job.get("device"),
        "backend": task.get("backend"),
        "precision": task.get("precision"),
        "batch": task.get("batch"),
        "status": status,
        "error": error,
        "latency_ms": latency_ms,
        "samples_ms": samples_ms,
        "warmup_ms": warmup_ms,
        "latency_device_ms": latency_device_ms,
        "samples_device_ms": samples_device_ms,
        "layers": layers,
        "energy": energy,
        "environment": environment if environment is not None else {},
        "protocol": protocol if protocol is not None else job.get("protocol"),
        "backend_info": backend_info if backend_info is not None else {},
        "warnings": list(warnings or []),
        "started_at": started_at,
        "finished_at": finished_at if finished_at is not None else utc_now_iso(),
        "wall_s": wall_s,
    }


def error_result(
    task,
    job,
    exc_type,
    message,
    environment=None,
    warnings=None,
    started_at=None,
    finished_at=None,
    wall_s=None,
    backend_info=None,
):
    """A status "error" result: latency, samples and warm-up are null, error holds type and message."""
    return make_result(
        job,
        task,
        status="error",
        error={"type": str(exc_type), "message": str(message)},
        environment=environment,
        backend_info=backend_info,
        warnings=warnings,
        started_at=started_at,
        finished_at=finished_at,
        wall_s=wall_s,
    )


def _json_safe(value):
    """Plain JSON values: numpy scalars become Python numbers, NaN/inf become null."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if _is_int(value):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalar, without importing numpy here
        return _json_safe(value.item())
    return str(value)


def result_to_line(result):
    """One compact JSON line (no trailing newline) for results.jsonl."""
    return json.dumps(_json_safe(result), separators=(",", ":"), allow_nan=False)


def read_results(path):
    """Parsed result lines of a results.jsonl; a truncated last line (a crash mid-write) is skipped."""
    results = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # partial last line
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    results.append(obj)
    except OSError:
        return []
    return results
