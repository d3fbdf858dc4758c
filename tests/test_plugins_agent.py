"""A backend and a meter from files outside the package, used end to end from a device config.

The plugins are written into tmp_path by the test; `edgeprof profile` validates the config against
what they register, ships them with the agent (their bytes count in its content hash), and the agent on
the "board" (a local work folder, a separate process) imports them before it reads the job.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.backends import BACKENDS
from agents.meters import METERS
from agents.plugins import BUNDLE_DIR
from profiler.config import ConfigError, load_config
from profiler.transports.base import agent_hash

REPO = Path(__file__).resolve().parents[1]

BACKEND_PLUGIN = '''
"""A runtime that is not one: multiplies two float32 matrices per run (numpy only)."""
import numpy as np

from agents.backends import BACKENDS, Backend, ModelLoadError
from agents.options import Option


@BACKENDS.register("numpy-matmul")
class NumpyMatmulBackend(Backend):
    name = "numpy-matmul"
    OPTIONS = {"size": Option(64, "int", "side of the square matrices multiplied per run")}
    PRECISIONS = ("fp32", "fp16")

    def load(self, model_path, inputs, dtype="float32", precision="fp32"):
        with open(model_path, "rb") as f:
            self.model_bytes = len(f.read())
        if not self.model_bytes:
            raise ModelLoadError("empty model file")
        n = self.options["size"]
        self.a = np.random.RandomState(0).rand(n, n).astype(np.float16 if precision == "fp16" else np.float32)
        return self

    def run_once(self):
        self.a.dot(self.a)

    def info(self):
        return {"size": self.options["size"], "model_bytes": getattr(self, "model_bytes", None)}
'''

METER_PLUGIN = '''
"""A meter that reads a constant power, sampled like a real one (agents.meters.sampler)."""
from agents.meters import METERS
from agents.meters.sampler import SampledMeter
from agents.options import Option


@METERS.register("constant")
class ConstantMeter(SampledMeter):
    name = "constant"
    OPTIONS = {"watts": Option(5.0, "number", "the power it reads, in W")}

    def __init__(self, rail=None, rate_hz=100.0, root="/", watts=5.0):
        SampledMeter.__init__(self, rail=rail or "constant", rate_hz=rate_hz, root=root)
        self.watts = watts
        self.rule = "a constant from the meter's options"

    def read_raw(self):
        return 1000.0 * self.watts
'''


def write_plugins(tmp_path: Path) -> Path:
    d = tmp_path / "plugins"
    d.mkdir()
    (d / "numpy_backend.py").write_text(BACKEND_PLUGIN)
    (d / "constant_meter.py").write_text(METER_PLUGIN)
    return d


def device_config(tmp_path: Path, plugins: str = '["plugins/numpy_backend.py", "plugins/constant_meter.py"]') -> Path:
    p = tmp_path / "plugin-box.toml"
    p.write_text(f"""
name = "plugin-box"
kind = "cpu"
[connection]
transport = "local"
workdir = "{tmp_path / 'work'}"
[runtime]
backend = "numpy-matmul"
precision = "fp16"
[runtime.options]
size = 48
[meter]
kind = "constant"
rate_hz = 200
idle_s = 0.2
[meter.options]
watts = 3.5
[agent]
plugins = {plugins}
[protocol]
warmup_min_runs = 2
warmup_min_s = 0.0
min_runs = 5
max_runs = 30
target_rel_ci = 0.05
""")
    return p


@pytest.fixture
def clean_registries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What the plugins register in this process is undone after the test (other tests list names)."""
    monkeypatch.setattr(BACKENDS, "_entries", dict(BACKENDS._entries))
    monkeypatch.setattr(METERS, "_entries", dict(METERS._entries))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("edgeprof_plugin_"):
            del sys.modules[name]


def test_profile_measures_through_a_plugin_backend_and_meter(tmp_path: Path) -> None:
    write_plugins(tmp_path)
    config = device_config(tmp_path)
    db = tmp_path / "x.db"
    r = subprocess.run([sys.executable, "-m", "edgeprof", "profile", str(config), "--space", "nb201", "--n", "2",
                        "--db", str(db), "--json"], capture_output=True, text=True, check=False, timeout=600,
                       cwd=tmp_path, env=os.environ.copy())
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert (report["measured_ok"], report["measured_error"]) == (2, 0), report

    rows = sqlite3.connect(db).execute(
        "SELECT backend, precision, status, median_ms, energy, backend_info FROM measurements").fetchall()
    assert len(rows) == 2
    for backend, precision, status, median_ms, energy, info in rows:
        assert (backend, precision, status) == ("numpy-matmul", "fp16", "ok")
        assert median_ms > 0
        assert json.loads(info)["size"] == 48  # the option from [runtime.options] reached the plugin
        assert json.loads(info)["model_bytes"] > 0  # it was given the exported ONNX file
        e = json.loads(energy)
        assert e["rail"] == "constant" and e["mean_power_mw"] == pytest.approx(3500.0)  # [meter.options]
        assert e["idle_power_mw"] == pytest.approx(3500.0) and e["net_mj"] == pytest.approx(0.0, abs=1e-6)

    # the plugins travelled with the agent, and their bytes are part of its content hash
    files = [tmp_path / "plugins" / "numpy_backend.py", tmp_path / "plugins" / "constant_meter.py"]
    (bundle,) = [p for p in (tmp_path / "work" / "agent").iterdir() if p.is_dir()]
    assert bundle.name == agent_hash(files) != agent_hash()
    assert sorted(p.name for p in (bundle / BUNDLE_DIR).glob("*.py")) == ["constant_meter.py", "numpy_backend.py"]


@pytest.mark.usefixtures("clean_registries")
def test_config_validates_against_what_plugins_register(tmp_path: Path) -> None:
    write_plugins(tmp_path)
    c = load_config(device_config(tmp_path))
    assert (c.runtime.backend, c.runtime.precision, c.runtime.options) == ("numpy-matmul", "fp16", {"size": 48})
    assert c.meter_settings()["options"] == {"watts": 3.5}
    assert [p.name for p in c.agent.plugins] == ["numpy_backend.py", "constant_meter.py"]
    assert load_config(device_config(tmp_path)).agent.plugins == c.agent.plugins  # imported once: no duplicate

    for old, new, needle in [
        ('precision = "fp16"', 'precision = "int8"',
         "runtime.precision: the numpy-matmul backend offers 'fp32', 'fp16'"),
        ("size = 48", "sise = 48", "runtime.options.sise: the numpy-matmul backend has no such option (did you"),
        ("size = 48", 'size = "big"', "numpy-matmul backend option size: expected an integer, got 'big'"),
        ("watts = 3.5", "watt = 3", "meter.options.watt: the constant meter has no such option"),
        ("watts = 3.5", "watts = true", "constant meter option watts: expected a number, got True"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(device_config(tmp_path).read_text().replace(old, new))
        with pytest.raises(ConfigError) as e:
            load_config(bad)
        assert str(bad) in str(e.value) and needle in str(e.value)


@pytest.mark.usefixtures("clean_registries")
def test_a_plugin_backend_must_be_shipped(tmp_path: Path) -> None:
    write_plugins(tmp_path)
    load_config(device_config(tmp_path))  # registers both in this process
    with pytest.raises(ConfigError, match=r"runtime.backend: 'numpy-matmul' is registered by .*numpy_backend.py, "
                                          r"which is not in \[agent\] plugins"):
        load_config(device_config(tmp_path, plugins='["plugins/constant_meter.py"]'))


@pytest.mark.usefixtures("clean_registries")
@pytest.mark.parametrize("plugins, needle", [
    ('["plugins/nope.py"]', r"agent\.plugins\[0\]: plugin 'plugins/nope.py': no such file"),
    ('["no_such_module_xyz"]', r"agent\.plugins\[0\]: plugin 'no_such_module_xyz': no module of that name"),
    ('["plugins/broken.py"]', r"agent\.plugins\[0\]: plugin .*broken.py failed to import: NameError"),
])
def test_plugin_errors_name_the_plugin(tmp_path: Path, plugins: str, needle: str) -> None:
    write_plugins(tmp_path)
    (tmp_path / "plugins" / "broken.py").write_text("undefined_name\n")
    with pytest.raises(ConfigError, match=needle):
        load_config(device_config(tmp_path, plugins=plugins))


@pytest.mark.usefixtures("clean_registries")
def test_a_file_in_a_config_and_in_edgeprof_plugins_is_imported_once(tmp_path: Path) -> None:
    """The two loaders are one: a plugin whose stem has a '-' (not a module-name character), named in a device
    config's [agent] plugins and in EDGEPROF_PLUGINS, runs once and registers its backend once."""
    from edgeprof.plugins import load_plugins

    d = write_plugins(tmp_path)
    dashed = d / "numpy-backend.py"
    (d / "numpy_backend.py").rename(dashed)
    load_config(device_config(tmp_path, plugins='["plugins/numpy-backend.py", "plugins/constant_meter.py"]'))
    (module,) = load_plugins(str(dashed))  # a second import would raise: 'numpy-matmul' is already registered
    assert BACKENDS.get("numpy-matmul") is module.NumpyMatmulBackend
    assert [m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == str(dashed)] == [module]


def test_unknown_backend_without_plugins_says_where_they_go(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_text('name = "x"\nkind = "cpu"\n[runtime]\nbackend = "numpy-matmul"\n')
    with pytest.raises(ConfigError, match=r"runtime.backend: unknown backend 'numpy-matmul' \(known: .*\).*"
                                          r"\[agent\] plugins"):
        load_config(p)
