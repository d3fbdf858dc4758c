from __future__ import annotations

from pathlib import Path

import pytest

from profiler.config import ConfigError, list_configs, load_config, parse_config, resolve_device


def write(tmp_path: Path, text: str, name: str = "board.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_builtin_local_cpu_is_valid_and_found_by_name() -> None:
    c = resolve_device("local-cpu")
    assert c.name == "local-cpu" and c.kind == "cpu"
    assert c.connection.transport == "local"
    assert c.runtime.backend == "onnxruntime"
    assert c.task_options()["providers"] == ["CPUExecutionProvider"]
    assert "local-cpu" in list_configs()


def test_every_shipped_config_is_valid() -> None:
    for name, path in list_configs().items():
        assert load_config(path).name == name


@pytest.mark.parametrize("body, needle", [
    ('name = "x"\nkind = "phone"\n', "kind: expected one of"),
    ('name = "x"\n', "kind: required key is missing"),
    ('name = "x"\nkind = "cpu"\n[runtime]\nbakend = "onnxruntime"\n',
     "runtime.bakend: unknown key (did you mean 'backend'?)"),
    ('name = "x"\nkind = "cpu"\n[connection]\ntransport = "ssh"\n', "connection.host: required"),
    ('name = "x"\nkind = "cpu"\n[connection]\nport = 70000\n', "connection.port: expected an integer port"),
    ('name = "x"\nkind = "cpu"\n[connection]\npassword = "hunter2"\n', "secrets do not belong"),
    ('name = "x"\nkind = "cpu"\n[protocol]\nmin_runs = 50\nmax_runs = 10\n', "protocol.min_runs: 50 is larger"),
    ('name = "x"\nkind = "cpu"\n[protocol]\nmin_runs = 0\n', "protocol.min_runs: expected an integer > 0"),
    ('name = "bad name!"\nkind = "cpu"\n', "name: expected a name"),
    ('name = "x"\nkind = "cpu"\nruntime = 3\n', "[runtime] must be a table"),
])
def test_invalid_configs_name_file_and_key(tmp_path: Path, body: str, needle: str) -> None:
    p = write(tmp_path, body)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value)
    assert needle in str(e.value)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "name = \n"))
    with pytest.raises(ConfigError, match="cannot read device config"):
        load_config(tmp_path / "nope.toml")


def test_unknown_device_name_suggests() -> None:
    with pytest.raises(ConfigError, match="did you mean 'local-cpu'"):
        resolve_device("local-cpus")


def test_user_config_folder_is_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "cfg" / "edgeprof" / "devices"
    d.mkdir(parents=True)
    (d / "lab-box.toml").write_text('name = "lab-box"\nkind = "cpu"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert resolve_device("lab-box").name == "lab-box"


def test_relative_workdir_goes_under_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    c = parse_config({"name": "b", "kind": "cpu", "connection": {"workdir": "b"}})
    assert c.workdir() == tmp_path / "edgeprof" / "b"


def test_runtime_options_are_checked_against_the_backend(tmp_path: Path) -> None:
    p = write(tmp_path, 'name = "g"\nkind = "gpu"\n[runtime]\nbackend = "tensorrt"\n[runtime.options]\n'
                        'workspace_mbs = 512\n')
    with pytest.raises(ConfigError, match=r"runtime.options.workspace_mbs: the tensorrt backend has no such "
                                          r"option \(did you mean 'workspace_mb'\?\)"):
        load_config(p)


def test_names_come_from_the_registries(tmp_path: Path) -> None:
    base = 'name = "g"\nkind = "gpu"\n'
    c = load_config(write(tmp_path, base + '[runtime]\nbackend = "tensorrt"\nprecision = "bf16"\n'
                                           '[meter]\nkind = "null"\n'))
    assert (c.runtime.precision, c.meter.kind) == ("bf16", "null")  # the old lists refused both
    for body, needle in [
        ('[runtime]\nbackend = "tensorrt"\nprecision = "fp64"\n',
         "runtime.precision: the tensorrt backend offers 'fp32', 'fp16', 'int8', 'bf16', got 'fp64'"),
        ('[runtime]\nbackend = "torch"\nprecision = "int8"\n', "the torch backend offers 'fp32', 'fp16', 'bf16'"),
        ('[runtime]\nbackend = "tensorrtt"\n', ("runtime.backend: unknown backend 'tensorrtt' (known: debug, "
                                              "onnxruntime, tensorrt, torch); did you mean 'tensorrt'?")),
        ('[meter]\nkind = "ina3211"\n', "meter.kind: unknown meter 'ina3211'"),
        ('[connection]\ntransport = "adb"\n', "connection.transport: unknown transport 'adb' (known: local, ssh)"),
        ('[meter.options]\nexe = "/usr/bin/tegrastats"\n', "meter.options.exe: the none meter has no such option"),
        ('[runtime]\nworkspace_mb = 512\n', "runtime.workspace_mb: unknown key"),  # not an onnxruntime option
    ]:
        with pytest.raises(ConfigError) as e:
            load_config(write(tmp_path, base + body))
        assert needle in str(e.value)


def test_any_backend_option_may_be_given_in_runtime(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, 'name = "g"\nkind = "gpu"\n[runtime]\nbackend = "tensorrt"\nworkspace_mb = 512\n'
                                    '[runtime.options]\ncuda_api = "pycuda"\n'))
    assert c.task_options() == {"workspace_mb": 512, "cuda_api": "pycuda"}
    assert c.runtime.option("engine_cache") is True  # the backend's declared default
    with pytest.raises(ConfigError, match="runtime.workspace_mb: set both in"):
        load_config(write(tmp_path, 'name = "g"\nkind = "gpu"\n[runtime]\nbackend = "tensorrt"\nworkspace_mb = 1\n'
                                    '[runtime.options]\nworkspace_mb = 2\n'))
    # the backend's own checks run on the host too: a value of the right type that it refuses
    with pytest.raises(ConfigError, match="workspace_mb: expected a number of MiB > 0"):
        load_config(write(tmp_path, 'name = "g"\nkind = "gpu"\n[runtime]\nbackend = "tensorrt"\nworkspace_mb = -1\n'))
    t = load_config(write(tmp_path, 'name = "t"\nkind = "gpu"\n[meter]\nkind = "tegrastats"\n[meter.options]\n'
                                    'exe = "/opt/tegrastats"\n'))
    assert t.meter_settings()["options"] == {"exe": "/opt/tegrastats"}


def test_every_model_format_has_an_exporter() -> None:
    from agents.backends import BACKENDS
    from agents.backends.base import MODEL_FORMATS
    from profiler.session import EXPORTERS, model_format

    assert set(EXPORTERS) == set(MODEL_FORMATS)
    assert {name: model_format(name) for name in BACKENDS.names()} == {
        "debug": "onnx", "onnxruntime": "onnx", "tensorrt": "onnx", "torch": "space"}
