import time

import numpy as np
import pytest
from agent_helpers import FAST, task, write_job
from fake_boards import make_board

from agents.backends.debug import DebugBackend
from agents.meters import METERS
from agents.meters.base import PowerMeter, PowerTrace
from agents.options import Option
from agents.protocol import RESULT_KEYS, load_job
from agents.worker import check_model_file, run_task


@pytest.fixture
def model_file(tmp_path):
    p = tmp_path / "m.bin"
    p.write_bytes(b"any bytes: the debug backend does not read them")
    return p


def job_for(tmp_path, tasks, protocol=None, **extra):
    path = write_job(tmp_path, tasks, protocol=protocol, **extra)
    return load_job(str(path)), str(path)


def test_ok_result_with_debug_backend(tmp_path, model_file):
    job, path = job_for(
        tmp_path, [task("t1", model_file.name, {"x": [1, 8]}, backend="debug", options={"latency_ms": 2.0})]
    )
    r = run_task(job, "t1", path)
    assert tuple(r) == RESULT_KEYS
    assert r["status"] == "ok" and r["error"] is None
    lat = r["latency_ms"]
    assert FAST["min_runs"] <= lat["n"] <= FAST["max_runs"] and lat["n"] == len(r["samples_ms"])
    assert 1.9 <= lat["median"] <= 3.5  # sleep overshoots a little
    assert lat["min"] <= lat["median"] <= lat["max"] and isinstance(lat["converged"], bool)
    assert len(r["warmup_ms"]) >= FAST["warmup_min_runs"]
    assert r["energy"] is None
    assert r["environment"]["agent_version"] and r["environment"]["libraries"] == {"debug": "0.1.0"}
    assert "loadavg_after" in r["environment"] and "thermal_c_after" in r["environment"]
    assert r["backend_info"]["load_s"] >= 0 and r["backend_info"]["options"]["latency_ms"] == 2.0
    assert r["protocol"] == job["protocol"]
    assert r["wall_s"] > 0 and r["started_at"] <= r["finished_at"]


@pytest.mark.parametrize(
    "options, etype, text",
    [
        ({"fail_on": "load"}, "ModelLoadError", "fail_on=load"),
        ({"fail_on": "run", "fail_after": 4}, "InferenceError", "run 4"),
        ({"nonsense": 1}, "BackendOptionError", "unknown option"),
    ],
)
def test_errors_become_error_results(tmp_path, model_file, options, etype, text):
    job, path = job_for(tmp_path, [task("t1", model_file.name, {"x": [1]}, backend="debug", options=options)])
    r = run_task(job, "t1", path)
    assert r["status"] == "error" and r["error"]["type"] == etype and text in r["error"]["message"]
    assert r["latency_ms"] is None and r["samples_ms"] is None and r["warmup_ms"] is None
    assert r["environment"]["agent_version"]


def test_sha256_is_checked(tmp_path, model_file):
    """A file with another hash is a ModelChecksumError and is moved aside, so the host sees it missing."""
    import hashlib

    data = model_file.read_bytes()
    job, path = job_for(tmp_path, [task("t1", model_file.name, {"x": [1]}, backend="debug", sha="0" * 64)])
    r = run_task(job, "t1", path)
    assert r["error"]["type"] == "ModelChecksumError" and "sha256" in r["error"]["message"]
    assert "moved aside" in r["error"]["message"]
    assert not model_file.exists() and (tmp_path / (model_file.name + ".damaged")).read_bytes() == data
    model_file.write_bytes(data)
    check_model_file(str(model_file), hashlib.sha256(data).hexdigest())


def test_hot_board_warns_and_still_measures(tmp_path, model_file):
    root = make_board(tmp_path / "board", "nano")
    proto = {"thermal_max_c": 20.0, "thermal_wait_max_s": 0.0, "thermal_poll_s": 0.01}
    job, path = job_for(
        tmp_path,
        [task("t1", model_file.name, {"x": [1]}, backend="debug", options={"latency_ms": 0.2})],
        protocol=proto,
    )
    r = run_task(job, "t1", path, root=root)
    assert r["status"] == "ok"
    assert any(w.startswith("thermal gate timed out") for w in r["warnings"])
    assert r["environment"]["thermal_gate"]["gated"] is True
    assert r["environment"]["thermal_c"]["CPU-therm"] == 31.0
    assert r["environment"]["l4t"] == "32.7.1"


class OneWattMeter(PowerMeter):
    """1000 mW, sampled every millisecond on perf_counter between start() and stop()."""

    name = "onewatt"

    def start(self):
        self.t0 = time.perf_counter()

    def stop(self):
        t = list(np.arange(self.t0, time.perf_counter() + 0.001, 0.001))
        return PowerTrace(t, [1000.0] * len(t), "VDD_TEST")


def test_energy_covers_the_timed_window(tmp_path, model_file, monkeypatch):
    monkeypatch.setitem(METERS._entries, "onewatt", OneWattMeter)
    job, path = job_for(
        tmp_path,
        [task("t1", model_file.name, {"x": [1]}, backend="debug", options={"latency_ms": 2.0})],
        meter={"kind": "onewatt"},
    )
    r = run_task(job, "t1", path, idle_power_mw=250.0)
    e = r["energy"]
    mean_ms = float(np.mean(r["samples_ms"]))
    # 1 W for the mean latency -> mJ per inference equals the mean latency in ms (loop overhead aside)
    assert e["gross_mj"] == pytest.approx(mean_ms, rel=0.1)
    assert e["net_mj"] == pytest.approx(0.75 * e["gross_mj"], rel=1e-6)
    assert e["mean_power_mw"] == pytest.approx(1000.0)
    assert e["rail"] == "VDD_TEST" and e["idle_power_mw"] == 250.0 and e["n_samples"] > 10


def test_unavailable_meter_warns(tmp_path, model_file, monkeypatch):
    class Absent(PowerMeter):
        @classmethod
        def available(cls, root="/"):
            return "no INA3221 here"

    monkeypatch.setitem(METERS._entries, "absent", Absent)
    job, path = job_for(
        tmp_path,
        [task("t1", model_file.name, {"x": [1]}, backend="debug", options={"latency_ms": 0.2})],
        meter={"kind": "absent"},
    )
    r = run_task(job, "t1", path)
    assert r["status"] == "ok" and r["energy"] is None
    assert any("no INA3221 here" in w for w in r["warnings"])


def test_meter_options_are_checked_then_passed_to_the_meter(tmp_path, model_file, monkeypatch):
    class Scaled(OneWattMeter):
        OPTIONS = {"scale": Option(1.0, "number", "power multiplier")}  # noqa: RUF012

        def __init__(self, rail=None, rate_hz=100.0, root="/", scale=1.0):
            OneWattMeter.__init__(self, rail=rail, rate_hz=rate_hz, root=root)
            self.scale = scale

        def stop(self):
            trace = OneWattMeter.stop(self)
            return PowerTrace(trace.t_s, [p * self.scale for p in trace.power_mw], trace.rail)

    monkeypatch.setitem(METERS._entries, "scaled", Scaled)
    one = [task("t1", model_file.name, {"x": [1]}, backend="debug", options={"latency_ms": 0.5})]
    job, path = job_for(tmp_path, one, meter={"kind": "scaled", "options": {"scale": 2.0}})
    assert run_task(job, "t1", path)["energy"]["mean_power_mw"] == pytest.approx(2000.0)
    job, path = job_for(tmp_path, one, meter={"kind": "scaled", "options": {"scael": 2.0}})
    r = run_task(job, "t1", path)
    assert r["status"] == "ok" and r["energy"] is None
    assert any("scaled meter: unknown option 'scael'" in w for w in r["warnings"])


def test_a_precision_the_backend_does_not_declare_is_an_error_result(tmp_path, model_file, monkeypatch):
    monkeypatch.setattr(DebugBackend, "PRECISIONS", ("fp32",))
    job, path = job_for(tmp_path, [task("t1", model_file.name, {"x": [1]}, backend="debug", precision="int4")])
    r = run_task(job, "t1", path)
    assert r["error"]["type"] == "BackendUnavailable"
    assert "debug backend: precision 'int4' is not one it offers (fp32)" in r["error"]["message"]
