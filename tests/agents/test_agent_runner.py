"""End-to-end: `python -m agents run` as a subprocess on real tiny ONNX models and the debug backend."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from agent_helpers import agent_env, read_lines, run_agent, task, write_job

from agents.protocol import EXIT_BOARD_BUSY
from agents.runner import ResultsLock, repair_results, worker_environ


@pytest.fixture
def bundle(tmp_path, models):
    """A job folder with the models copied in, referenced relative to job.json."""
    d = tmp_path / "bundle"
    (d / "models").mkdir(parents=True)
    for name in ("conv", "matmul", "corrupt"):
        src, _ = models[name]
        (d / "models" / src.name).write_bytes(src.read_bytes())
    return d


def test_real_models_errors_and_environment(bundle, models):
    tasks = [
        task(
            "conv",
            "models/conv.onnx",
            {"input": [1, 3, 16, 16]},
            sha=models["conv"][1],
            options={"intra_op_threads": 1},
        ),
        task("corrupt", "models/corrupt.onnx", {"input": [1, 3, 16, 16]}, sha=models["corrupt"][1]),
        task("missing", "models/missing.onnx", {"input": [1, 3, 16, 16]}),
        task("matmul", str(bundle / "models" / "matmul.onnx"), {"x": [1, 64]}, sha=models["matmul"][1]),
    ]
    job = write_job(bundle, tasks)
    proc = run_agent(["run", job], cwd=bundle.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    lines = read_lines(bundle / "results.jsonl")
    by_id = {r["task_id"]: r for r in lines}
    assert [r["task_id"] for r in lines] == ["conv", "corrupt", "missing", "matmul"]
    for tid in ("conv", "matmul"):
        r = by_id[tid]
        assert r["status"] == "ok", r["error"]
        lat = r["latency_ms"]
        assert 5 <= lat["n"] <= 30 and len(r["samples_ms"]) == lat["n"]
        assert 0 < lat["min"] <= lat["median"] <= lat["max"] < 1000
        assert lat["p10"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert len(r["warmup_ms"]) >= 3
        assert r["model_sha256"] == models[tid][1]
        env = r["environment"]
        assert env["agent_version"] == "0.1.0" and "onnxruntime" in env["libraries"]
        assert env["python"]["executable"] == sys.executable
        assert r["backend_info"]["providers"][-1] == "CPUExecutionProvider"
        assert r["device"] == "test-cpu" and r["backend"] == "onnxruntime" and r["batch"] == 1
    assert by_id["conv"]["backend_info"]["intra_op_threads"] == 1
    for tid, text in (("corrupt", "corrupt.onnx"), ("missing", "model file not found")):
        r = by_id[tid]
        assert (
            r["status"] == "error"
            and r["error"]["type"] == "ModelLoadError"
            and text in r["error"]["message"]
        )
        assert r["latency_ms"] is None and r["samples_ms"] is None
    progress = [ln for ln in proc.stderr.splitlines() if ln.startswith("[")]
    assert len(progress) == 4 and progress[0].startswith("[1/4] conv onnxruntime fp32: ok")
    assert "error ModelLoadError" in progress[1]
    status = json.loads((bundle / "status.json").read_text())
    assert status["state"] == "finished" and status["done"] == status["total"] == 4
    assert not (bundle / "results.jsonl.lock").exists()
    assert not [p for p in os.listdir(str(bundle)) if p.startswith(".worker-")]


def test_invalid_job_exits_2_naming_the_field(tmp_path):
    job = write_job(tmp_path, [task("t1", "m.onnx", [1, 3, 16, 16])])
    proc = run_agent(["run", job], cwd=tmp_path)
    assert proc.returncode == 2
    assert "tasks[0].inputs: expected a mapping of name -> shape list" in proc.stderr
    assert not (tmp_path / "results.jsonl").exists()
    job = write_job(tmp_path, [task("t1", "m.onnx", {"x": [1]}, backend="onnxrt")])
    proc = run_agent(["run", job], cwd=tmp_path)
    assert proc.returncode == 2 and "tasks[0].backend: unknown backend 'onnxrt'" in proc.stderr
    assert "did you mean 'onnxruntime'" in proc.stderr


def debug_task(tid, **options):
    options.setdefault("latency_ms", 0.5)
    return task(tid, "m.bin", {"x": [1]}, backend="debug", options=options)


@pytest.fixture
def dbg(tmp_path):
    (tmp_path / "m.bin").write_bytes(b"debug")
    return tmp_path


def test_resume_skips_done_tasks_and_drops_a_partial_line(dbg):
    job = write_job(dbg, [debug_task("a"), debug_task("b")])
    assert run_agent(["run", job], cwd=dbg).returncode == 0
    out = dbg / "results.jsonl"
    first = out.read_text()
    with open(str(out), "a") as f:
        f.write('{"task_id": "c", "status": "ok", "trunc')  # a crash mid-append
    job = write_job(dbg, [debug_task("a"), debug_task("b"), debug_task("c")])
    proc = run_agent(["run", job], cwd=dbg)
    assert proc.returncode == 0, proc.stderr
    progress = [ln for ln in proc.stderr.splitlines() if ln.startswith("[")]
    assert len(progress) == 1 and progress[0].startswith("[3/3] c debug")
    assert "2 already done" in proc.stderr
    text = out.read_text()
    assert text.startswith(first) and text.endswith("\n")
    assert [r["task_id"] for r in read_lines(out)] == ["a", "b", "c"]
    proc = run_agent(["run", job, "--no-resume", "--quiet"], cwd=dbg)
    assert proc.returncode == 0 and proc.stderr == ""
    assert len(read_lines(out)) == 6  # --no-resume appends, never deletes measured lines


def test_timeout_and_crash_become_error_lines(dbg):
    job = write_job(
        dbg,
        [debug_task("slow", latency_ms=60000.0), debug_task("crash", fail_on="exit"), debug_task("fine")],
        protocol={"timeout_s": 2.0},
    )
    t0 = time.monotonic()
    (dbg / "out").mkdir()
    proc = run_agent(["run", job, "--out", dbg / "out" / "r.jsonl"], cwd=dbg)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - t0 < 30
    by_id = {r["task_id"]: r for r in read_lines(dbg / "out" / "r.jsonl")}
    assert by_id["slow"]["error"]["type"] == "Timeout" and "timeout_s=2" in by_id["slow"]["error"]["message"]
    assert by_id["crash"]["error"]["type"] == "WorkerCrashed"
    assert "exited with code 3" in by_id["crash"]["error"]["message"]
    assert by_id["fine"]["status"] == "ok"
    assert by_id["slow"]["environment"]["agent_version"] == "0.1.0"
    assert (dbg / "out" / "status.json").exists()


def test_the_lock_refuses_a_second_runner_and_a_stale_lock_is_taken_over(dbg):
    job = write_job(dbg, [debug_task("a")])
    lock = dbg / "results.jsonl.lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": "x"}))
    proc = run_agent(["run", job], cwd=dbg)
    assert proc.returncode == 1 and f"locked by pid {os.getpid()}" in proc.stderr
    assert not (dbg / "results.jsonl").exists() and lock.exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started_at": "x"}))
    proc = run_agent(["run", job], cwd=dbg)
    assert proc.returncode == 0, proc.stderr
    assert not lock.exists() and len(read_lines(dbg / "results.jsonl")) == 1


def test_lock_object(tmp_path):
    path = str(tmp_path / "r.jsonl.lock")
    with ResultsLock(path) as lock:
        assert lock.read_owner()["pid"] == os.getpid()
        from agents.runner import LockError

        with pytest.raises(LockError):
            ResultsLock(path).acquire()
    assert not os.path.exists(path)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_kills_the_worker_writes_nothing_and_releases_the_lock(dbg, signum, code):
    job = write_job(dbg, [debug_task("long", latency_ms=60000.0), debug_task("next")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "agents", "run", str(job)],
        cwd=str(dbg),
        env=agent_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
    )
    status = dbg / "status.json"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if status.exists() and json.loads(status.read_text() or "{}").get("current") == "long":
            break
        time.sleep(0.05)
    time.sleep(0.5)  # let the worker start
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "interrupted" in err
    assert not (dbg / "results.jsonl").exists() or read_lines(dbg / "results.jsonl") == []
    assert not (dbg / "results.jsonl.lock").exists()
    assert json.loads(status.read_text())["state"] == "interrupted"
    time.sleep(0.2)
    for pid in os.listdir("/proc"):  # the worker is gone too
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            assert str(job).encode() not in cmd or b"worker" not in cmd


def test_info_json():
    proc = run_agent(["info", "--json"], cwd="/")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["agent_version"] == "0.1.0"
    ort = info["backends"]["onnxruntime"]
    assert ort["available"] is True and "CPUExecutionProvider" in ort["providers"]
    assert info["backends"]["debug"]["available"] is True
    trt = info["backends"]["tensorrt"]
    assert trt["registered"] is True and trt["available"] is False and "tensorrt" in trt["reason"].lower()
    assert info["backends"]["torch"]["registered"] is True  # available where torch is installed
    pycuda = info["backends"]["pycuda"]
    assert pycuda["registered"] is False and pycuda["available"] is False and pycuda["reason"]
    assert info["meters"]["none"]["available"] is True
    for name in ("rapl", "ina3221", "nvml", "tegrastats"):
        m = info["meters"][name]
        assert m["available"] is False and m["reason"] and "found" in m
    text = run_agent(["info"], cwd="/")
    assert text.returncode == 0 and "onnxruntime  yes" in text.stdout


def test_usage_errors():
    proc = run_agent([], cwd="/")
    assert proc.returncode == 2 and "a command is required" in proc.stderr


def test_repair_and_worker_environ(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_bytes(b'{"a": 1}\n{"b"')
    assert repair_results(str(p)) is True and p.read_bytes() == b'{"a": 1}\n'
    assert repair_results(str(p)) is False
    assert repair_results(str(tmp_path / "none")) is False
    env = worker_environ(
        {
            "PATH": "/bin",
            "HOME": "/h",
            "LC_ALL": "C",
            "OMP_NUM_THREADS": "2",
            "AWS_SECRET": "x",
            "PYTHONPATH": "/extra",
            "CUDA_VISIBLE_DEVICES": "0",
            "LD_LIBRARY_PATH": "/l",
        }
    )
    assert set(env) == {
        "PATH",
        "HOME",
        "LC_ALL",
        "OMP_NUM_THREADS",
        "PYTHONPATH",
        "CUDA_VISIBLE_DEVICES",
        "LD_LIBRARY_PATH",
    }
    assert env["PYTHONPATH"].split(os.pathsep)[1] == "/extra"
    assert os.path.isdir(os.path.join(env["PYTHONPATH"].split(os.pathsep)[0], "agents"))


def test_workers_get_a_clean_environment(dbg):
    job = write_job(dbg, [debug_task("a")])
    env = agent_env()
    env.update(OMP_NUM_THREADS="1", TF_EDGEPROF_PROBE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "agents", "run", str(job)],
        cwd=str(dbg),
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    (r,) = read_lines(dbg / "results.jsonl")
    assert r["environment"]["env"].get("OMP_NUM_THREADS") == "1"
    assert "TF_EDGEPROF_PROBE" not in r["environment"]["env"]  # recorded if set, but not passed to workers


def test_the_board_lock_keeps_a_second_job_off_a_busy_board(dbg):
    """Two jobs with different results files still may not measure on one board at the same time."""
    job = write_job(dbg, [debug_task("a")])
    board = dbg / "board.lock"
    board.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": "x"}))
    proc = run_agent(["run", job, "--board-lock", str(board)], cwd=dbg)
    assert proc.returncode == EXIT_BOARD_BUSY and "board is busy" in proc.stderr  # the host waits and retries
    assert not (dbg / "results.jsonl").exists()
    board.unlink()
    proc = run_agent(["run", job, "--board-lock", str(board)], cwd=dbg)
    assert proc.returncode == 0, proc.stderr
    assert not board.exists() and len(read_lines(dbg / "results.jsonl")) == 1


def test_device_time_and_layer_profile_reach_the_result(tmp_path):
    """A backend offering device (GPU compute) time and a layer profile: both land in the result line,
    device time per timed run (never warm-up), the profile only when the protocol asks for it."""
    (tmp_path / "m.bin").write_bytes(b"x")
    opts = {"latency_ms": 0.3, "device_fraction": 0.5, "layers": 4}
    job = write_job(tmp_path, [task("gpu", "m.bin", {"x": [1]}, backend="debug", options=opts)],
                    protocol={"layer_profile_runs": 3})
    proc = run_agent(["run", job], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (r,) = read_lines(tmp_path / "results.jsonl")
    assert r["status"] == "ok"
    assert len(r["samples_device_ms"]) == len(r["samples_ms"])
    assert r["latency_device_ms"]["median"] < r["latency_ms"]["median"]
    assert len(r["layers"]) == 4 and abs(sum(x["share"] for x in r["layers"]) - 1) < 1e-6
    job = write_job(tmp_path / "b", [task("cpu", str(tmp_path / "m.bin"), {"x": [1]}, backend="debug",
                                          options={"latency_ms": 0.3})])
    assert run_agent(["run", job], cwd=tmp_path / "b").returncode == 0
    (r,) = read_lines(tmp_path / "b" / "results.jsonl")
    assert r["latency_device_ms"] is None and r["layers"] is None
