"""Board setup (nvpmodel -m, jetson_clocks) through a fake `sudo`, and the job's `setup` block."""

import copy
import shutil
from pathlib import Path

import pytest
from fake_boards import install_tools, make_board

from agents.protocol import DEFAULT_SETUP, JobError, job_setup, validate_job, validate_setup
from agents.setup import apply_setup
from agents.worker import prepare_job


@pytest.fixture
def nano(tmp_path):
    return make_board(tmp_path / "nano", "nano")


def only(bin_dir):
    """A `which` that sees nothing but bin_dir (this machine's own sudo must not be used)."""
    which = shutil.which  # the real one, even while a test replaces shutil.which

    return lambda name: which(name, path=bin_dir)


def calls(bin_dir):
    log = Path(bin_dir) / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_nothing_asked_runs_nothing(nano, tmp_path):
    bin_dir = install_tools(tmp_path / "bin", nvpmodel=True, jetson_clocks=True, sudo="ok")
    record, warnings = apply_setup(None, nano, which=only(bin_dir))
    assert record["applied"] is False and record["skipped_reason"] == "not requested"
    assert record["requested"] == DEFAULT_SETUP and record["before"] is None and warnings == []
    assert calls(bin_dir) == []


def test_sudo_refusing_is_a_recorded_skip(nano, tmp_path):
    bin_dir = install_tools(tmp_path / "bin", nvpmodel=True, jetson_clocks=True, sudo="refuse")
    record, warnings = apply_setup({"nvpmodel_mode": 0, "jetson_clocks": True}, nano, which=only(bin_dir))
    assert record["applied"] is False
    assert "sudo -n refused (sudo: a password is required)" in record["skipped_reason"]
    assert f"NOPASSWD: {bin_dir}/nvpmodel, {bin_dir}/jetson_clocks" in record["skipped_reason"]
    assert [a["ok"] for a in record["actions"]] == [False, False]
    assert record["actions"][0]["argv"] == [f"{bin_dir}/sudo", "-n", f"{bin_dir}/nvpmodel", "-m", "0"]
    assert record["before"]["nvpmodel"]["mode"] == "5W"  # nvpmodel -q needs no root
    assert "a password is required" in record["before"]["reasons"]["jetson_clocks"]
    assert len(warnings) == 1 and "not applied" in warnings[0] and "current state" in warnings[0]
    assert calls(bin_dir) == ["nvpmodel -q", "nvpmodel -q"]  # nothing ran through sudo


def test_sudo_ok_applies_and_records_before_after(nano, tmp_path):
    bin_dir = install_tools(tmp_path / "bin", nvpmodel=True, jetson_clocks=True, sudo="ok")
    record, warnings = apply_setup({"nvpmodel_mode": 0, "jetson_clocks": True}, nano, which=only(bin_dir))
    assert record["applied"] is True and record["skipped_reason"] is None and warnings == []
    assert [a["action"] for a in record["actions"]] == ["nvpmodel -m 0", "jetson_clocks"]
    assert (
        record["before"]["nvpmodel"]["mode"] == "5W"
        and record["before"]["jetson_clocks"]["clocks_locked"] is False
    )
    assert record["after"]["nvpmodel"]["mode"] == "MAXN" and record["after"]["nvpmodel"]["id"] == 0
    assert record["after"]["jetson_clocks"]["clocks_locked"] is True
    assert record["after"]["jetson_clocks"]["nvpmodel"] == "MAXN"
    assert "nvpmodel -m 0" in calls(bin_dir) and "jetson_clocks " in calls(bin_dir)
    assert calls(bin_dir).index("nvpmodel -m 0") < calls(bin_dir).index("jetson_clocks ")  # nvpmodel first


def test_only_jetson_clocks(nano, tmp_path):
    bin_dir = install_tools(tmp_path / "bin", nvpmodel=True, jetson_clocks=True, sudo="ok")
    record, _ = apply_setup({"jetson_clocks": True}, nano, which=only(bin_dir))
    assert record["applied"] and [a["action"] for a in record["actions"]] == ["jetson_clocks"]
    assert "nvpmodel -m" not in " ".join(calls(bin_dir))


def test_without_sudo(nano, tmp_path):
    bin_dir = install_tools(tmp_path / "bin", nvpmodel=True, jetson_clocks=True)
    record, warnings = apply_setup({"nvpmodel_mode": 0}, nano, which=only(bin_dir), euid=1000)
    assert record["skipped_reason"] == "no sudo on PATH and not running as root" and warnings
    record, warnings = apply_setup({"nvpmodel_mode": 0}, nano, which=only(bin_dir), euid=0)  # root: direct
    assert record["applied"] is True and record["actions"][0]["argv"] == [f"{bin_dir}/nvpmodel", "-m", "0"]


def test_not_a_jetson_and_missing_tools(tmp_path):
    bin_dir = install_tools(tmp_path / "bin", nvpmodel=True, sudo="ok")
    x86 = make_board(tmp_path / "x86", "x86")
    record, warnings = apply_setup({"nvpmodel_mode": 0}, x86, which=only(bin_dir))
    assert record["skipped_reason"].startswith("not a Jetson") and "not applied" in warnings[0]
    nano = make_board(tmp_path / "nano", "nano")
    record, _ = apply_setup({"nvpmodel_mode": 0, "jetson_clocks": True}, nano, which=only(bin_dir))
    assert record["applied"] is False and record["skipped_reason"] == "jetson_clocks not found on PATH"
    assert record["actions"][0]["ok"] is True  # nvpmodel still applied


def test_a_hanging_command_times_out(nano, tmp_path):
    bin_dir = install_tools(tmp_path / "bin", sudo="ok")
    hang = Path(bin_dir) / "nvpmodel"
    hang.write_text("#!/bin/sh\nexec sleep 30\n")
    hang.chmod(0o755)
    record, _ = apply_setup({"nvpmodel_mode": 2}, nano, timeout_s=0.3, which=only(bin_dir))
    assert record["applied"] is False and "did not finish within 0.3 s" in record["skipped_reason"]


def test_mode_mismatch_warns(nano, tmp_path):
    bin_dir = install_tools(tmp_path / "bin", nvpmodel=True, sudo="ok")
    stubborn = Path(bin_dir) / "nvpmodel"  # accepts -m but stays in mode 1
    stubborn.write_text(stubborn.read_text().replace('put("nvpmodel.state", ', 'print("ignored", '))
    record, warnings = apply_setup({"nvpmodel_mode": 0}, nano, which=only(bin_dir))
    assert record["applied"] is True and record["after"]["nvpmodel"]["id"] == 1
    assert warnings == ["nvpmodel reports mode 1 (5W) after setup, the job asked for 0"]


def test_prepare_job_applies_setup_before_idle(nano, tmp_path, monkeypatch):
    bin_dir = install_tools(tmp_path / "bin", nvpmodel=True, jetson_clocks=True, sudo="ok")
    monkeypatch.setattr("agents.setup.shutil.which", only(bin_dir))
    job = validate_job(
        {
            "schema": "edgeprof.job/1",
            "job_id": "j",
            "meter": {"kind": "ina3221", "idle_s": 0.05, "rate_hz": 200.0},
            "setup": {"nvpmodel_mode": 0, "jetson_clocks": True},
            "tasks": [{"task_id": "t", "model": "m", "inputs": {"x": [1]}, "backend": "debug"}],
        }
    )
    state = prepare_job(job, nano)
    assert state["setup"]["applied"] is True and state["warnings"] == []
    assert state["idle"]["power_mw"] == pytest.approx(4122.0) and state["idle"]["rail"] == "POM_5V_IN"


# ---------------------------------------------------------------------------------------------------------
# the job's setup block


def minimal(**extra):
    job = {
        "schema": "edgeprof.job/1",
        "job_id": "j",
        "tasks": [{"task_id": "t", "model": "m", "inputs": {"x": [1]}, "backend": "debug"}],
    }
    job.update(extra)
    return job


def test_setup_block_validation():
    assert "setup" not in validate_job(minimal())  # absent: the job validates to itself
    assert job_setup(validate_job(minimal())) == DEFAULT_SETUP
    job = validate_job(minimal(setup={"nvpmodel_mode": 0}))
    assert job["setup"] == {"nvpmodel_mode": 0, "jetson_clocks": False} and job_setup(job) == job["setup"]
    assert validate_setup(None) == DEFAULT_SETUP
    assert validate_setup({"jetson_clocks": True}) == {"nvpmodel_mode": None, "jetson_clocks": True}
    again = copy.deepcopy(job)
    assert validate_job(again) == job


@pytest.mark.parametrize(
    "setup, message",
    [
        ({"nvpmodel_mode": -1}, "setup.nvpmodel_mode: must be >= 0"),
        ({"nvpmodel_mode": "0"}, "setup.nvpmodel_mode: expected an integer"),
        ({"nvpmodel_mode": True}, "setup.nvpmodel_mode: expected an integer"),
        ({"jetson_clocks": "yes"}, "setup.jetson_clocks: expected true or false"),
        ({"jetson_clock": True}, "setup.jetson_clock: unknown key.*did you mean 'jetson_clocks'"),
        ([0], "setup: expected a mapping"),
    ],
)
def test_setup_block_errors(setup, message):
    with pytest.raises(JobError, match=message):
        validate_job(minimal(setup=setup))
