import copy
import json
import math
import re

import numpy as np
import pytest

from agents.protocol import (
    DEFAULT_METER,
    DEFAULT_PROTOCOL,
    JOB_SCHEMA,
    LATENCY_KEYS,
    RESULT_KEYS,
    RESULT_SCHEMA,
    JobError,
    error_result,
    load_job,
    make_result,
    read_results,
    resolve_model_path,
    result_to_line,
    utc_now_iso,
    validate_job,
)

SHA = "a" * 64


def minimal():
    return {
        "schema": JOB_SCHEMA,
        "job_id": "j1",
        "device": "local-cpu",
        "tasks": [
            {
                "task_id": "t0001",
                "model": "models/x.onnx",
                "inputs": {"input": [1, 3, 32, 32]},
                "backend": "onnxruntime",
            }
        ],
    }


def test_contract_example_is_valid():
    job = {
        "schema": "edgeprof.job/1",
        "job_id": "20261122T133000-local-cpu-ab12cd",
        "device": "local-cpu",
        "protocol": dict(DEFAULT_PROTOCOL),
        "meter": {"kind": "none", "rail": None, "rate_hz": 100.0, "idle_s": 2.0, "options": {}},
        "tasks": [
            {
                "task_id": "t0001",
                "model": f"models/{SHA}.onnx",
                "model_sha256": SHA,
                "inputs": {"input": [1, 3, 32, 32]},
                "dtype": "float32",
                "backend": "onnxruntime",
                "precision": "fp32",
                "batch": 1,
                "options": {
                    "providers": ["CPUExecutionProvider"],
                    "intra_op_threads": 0,
                    "inter_op_threads": 0,
                },
            }
        ],
    }
    assert validate_job(job) == job


def test_defaults_are_filled_and_input_not_mutated():
    raw = minimal()
    before = copy.deepcopy(raw)
    job = validate_job(raw)
    assert raw == before
    assert job["protocol"] == DEFAULT_PROTOCOL
    assert job["meter"] == DEFAULT_METER
    t = job["tasks"][0]
    assert (t["dtype"], t["precision"], t["batch"], t["options"], t["model_sha256"]) == (
        "float32",
        "fp32",
        1,
        {},
        None,
    )
    # ints are accepted where floats are expected, and stored as floats
    raw["protocol"] = {"max_time_s": 5}
    assert validate_job(raw)["protocol"]["max_time_s"] == 5.0


def _set(path, value):
    def mutate(job):
        target = job
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return mutate


def _proto(**kw):
    return lambda job: job.__setitem__("protocol", kw)


CASES = [
    (
        _set(("tasks", 0, "inputs"), [1, 3, 32, 32]),
        "tasks[0].inputs: expected a mapping of name -> shape list",
    ),
    (_set(("tasks", 0, "inputs"), {"input": [1, 0, 32]}), "tasks[0].inputs.input[1]: must be >= 1"),
    (_set(("tasks", 0, "inputs"), {"input": [1, 3.5]}), "tasks[0].inputs.input[1]: expected an integer"),
    (_set(("tasks", 0, "inputs"), {"input": []}), "tasks[0].inputs.input: expected a non-empty list"),
    (_set(("tasks", 0, "task_id"), KeyError), "tasks[0].task_id: required key is missing"),
    (_set(("tasks", 0, "modle"), "x"), "tasks[0].modle: unknown key"),
    (_set(("tasks", 0, "dtype"), "float8"), "tasks[0].dtype: expected one of"),
    (_set(("tasks", 0, "precision"), "FP 8"), "tasks[0].precision: expected a precision name"),
    (_set(("tasks", 0, "batch"), 0), "tasks[0].batch: must be >= 1"),
    (_set(("tasks", 0, "batch"), True), "tasks[0].batch: expected an integer, got boolean true"),
    (_set(("tasks", 0, "options"), []), "tasks[0].options: expected a mapping"),
    (_set(("tasks", 0, "model_sha256"), "ABC"), "tasks[0].model_sha256: expected 64 lowercase hex"),
    (_set(("tasks",), []), "tasks: expected a non-empty list"),
    (_set(("tasks",), KeyError), "tasks: required key is missing"),
    (_set(("schema",), "edgeprof.job/2"), "schema: expected 'edgeprof.job/1'"),
    (_set(("job_id",), ""), "job_id: expected a non-empty string"),
    (_set(("extra",), 1), "extra: unknown key"),
    (_proto(min_runs=50, max_runs=10), "protocol.min_runs: 50 > max_runs (10)"),
    (_proto(min_runs=1), "protocol.min_runs: must be >= 2"),
    (_proto(max_time_s=0), "protocol.max_time_s: must be > 0"),
    (_proto(timeout_s=-1.0), "protocol.timeout_s: must be > 0"),
    (_proto(warmup_min_s=-0.1), "protocol.warmup_min_s: must be >= 0"),
    (_proto(target_rel_ci="1%"), "protocol.target_rel_ci: expected a finite number, got str"),
    (_proto(target_rel_ci=float("nan")), "protocol.target_rel_ci: expected a finite number"),
    (_proto(confidence=1.5), "protocol.confidence: must be between 0 and 1"),
    (_proto(thermal_zones="CPU"), "protocol.thermal_zones: expected a list"),
    (_proto(thermal_zones=["CPU", 3]), "protocol.thermal_zones[1]: expected a non-empty string"),
    (_proto(max_run=10), "protocol.max_run: unknown key"),
    (lambda job: job.__setitem__("meter", {"rate_hz": 0}), "meter.rate_hz: must be > 0"),
    (lambda job: job.__setitem__("meter", {"kind": ""}), "meter.kind: expected a non-empty string"),
    (lambda job: job.__setitem__("owner", "a.db"), "owner: expected a mapping"),
    (lambda job: job.__setitem__("owner", {"db": "a.db"}), "owner.dataset_id: required key is missing"),
    (lambda job: job.__setitem__("owner", {"dataset_id": "x", "hst": "h"}), "owner.hst: unknown key"),
    (lambda job: job.__setitem__("owner", {"dataset_id": "x", "db": 3}), "owner.db: expected a non-empty string"),
]


@pytest.mark.parametrize("mutate, expected", CASES, ids=[c[1].split(":")[0] for c in CASES])
def test_invalid_jobs_name_the_field(mutate, expected):
    job = minimal()
    mutate(job)
    with pytest.raises(JobError) as info:
        validate_job(job)
    assert expected in str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(info.value.field)


def test_owner_is_optional_and_kept():
    """Jobs of older hosts have no owner and validate to themselves; an owner is kept, db and host filled."""
    assert "owner" not in validate_job(minimal())
    job = minimal()
    job["owner"] = {"dataset_id": "ab12", "host": "lab-pc"}
    assert validate_job(job)["owner"] == {"dataset_id": "ab12", "db": None, "host": "lab-pc"}
    assert validate_job(validate_job(job)) == validate_job(job)


def test_unknown_key_suggests_the_right_one():
    job = minimal()
    job["protocol"] = {"max_run": 10}
    with pytest.raises(JobError, match="did you mean 'max_runs'"):
        validate_job(job)


def test_duplicate_task_ids():
    job = minimal()
    job["tasks"].append(dict(job["tasks"][0]))
    with pytest.raises(JobError) as info:
        validate_job(job)
    assert info.value.field == "tasks[1].task_id"
    assert "duplicate task id 't0001' (also tasks[0])" in str(info.value)


def test_known_names_are_checked_when_given():
    job = minimal()
    job["tasks"][0]["backend"] = "onnxrt"
    with pytest.raises(JobError) as info:
        validate_job(job, backends=["onnxruntime", "debug"])
    assert info.value.field == "tasks[0].backend"
    assert "did you mean 'onnxruntime'" in str(info.value)
    validate_job(job)  # without a list of names any backend string passes
    job = minimal()
    job["meter"] = {"kind": "ina"}
    with pytest.raises(JobError, match="meter.kind: unknown meter 'ina'"):
        validate_job(job, meters=["none", "null"])


def test_load_job_errors(tmp_path):
    with pytest.raises(JobError, match="cannot read job file"):
        load_job(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(JobError, match="not valid JSON"):
        load_job(str(bad))
    good = tmp_path / "job.json"
    good.write_text(json.dumps(minimal()))
    assert load_job(str(good))["job_id"] == "j1"


def test_resolve_model_path(tmp_path):
    job_path = str(tmp_path / "jobs" / "j1" / "job.json")
    assert resolve_model_path(job_path, "../../models/m.onnx") == str(tmp_path / "models" / "m.onnx")
    assert resolve_model_path(job_path, "/abs/m.onnx") == "/abs/m.onnx"


def test_results_have_every_contract_key_in_order():
    job = validate_job(minimal())
    t = job["tasks"][0]
    ok = make_result(
        job,
        t,
        latency_ms=dict.fromkeys(LATENCY_KEYS, 1.0),
        samples_ms=[1.0],
        warmup_ms=[2.0],
        started_at=utc_now_iso(),
        wall_s=0.1,
    )
    assert tuple(ok) == RESULT_KEYS
    assert ok["schema"] == RESULT_SCHEMA and ok["status"] == "ok" and ok["protocol"] == job["protocol"]
    err = error_result(t, job, "ModelLoadError", "model file not found: x")
    assert tuple(err) == RESULT_KEYS
    assert err["status"] == "error"
    assert err["error"] == {"type": "ModelLoadError", "message": "model file not found: x"}
    assert err["latency_ms"] is None and err["samples_ms"] is None and err["warmup_ms"] is None
    with pytest.raises(ValueError):
        make_result(job, t, status="maybe")


def test_result_line_is_strict_json():
    job = validate_job(minimal())
    r = make_result(
        job,
        job["tasks"][0],
        samples_ms=[np.float64(1.5), float("nan")],
        backend_info={"n": np.int64(3), "inf": math.inf},
    )
    line = result_to_line(r)
    assert "\n" not in line
    back = json.loads(line)
    assert back["samples_ms"] == [1.5, None]
    assert back["backend_info"] == {"n": 3, "inf": None}


def test_read_results_skips_a_partial_last_line(tmp_path):
    p = tmp_path / "results.jsonl"
    p.write_text('{"task_id": "a"}\n\n{"task_id": "b"}\nnot json\n{"task_id": "c", "trunc')
    assert [r["task_id"] for r in read_results(str(p))] == ["a", "b"]
    assert read_results(str(tmp_path / "none.jsonl")) == []


def test_utc_now_iso_format():
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", utc_now_iso())
