"""PyTorch backend, for real on the CPU: TorchScript files and the repository's spaces package as a zip."""

import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.backends import BACKENDS, BackendOptionError, BackendUnavailable, ModelLoadError
from agents.backends.torch import OUTSIDE, TorchBackend
from agents.layers import group_by_op_type, normalise

REPO = Path(__file__).resolve().parents[2]
CONFIG = {"C": 8, "N": 1}  # a small NB201: 3 stages of one cell
INPUT = {"input": [2, 3, 32, 32]}


@pytest.fixture(scope="module")
def space_zip(tmp_path_factory):
    """The host's spaces package as the 'space' model file: spaces/*.py in a zip."""
    path = tmp_path_factory.mktemp("space") / "nb201.zip"
    with zipfile.ZipFile(str(path), "w") as z:
        for f in sorted((REPO / "spaces").glob("*.py")):
            z.write(str(f), "spaces/" + f.name)
    return str(path)


@pytest.fixture(scope="module")
def arch():
    sys.path.insert(0, str(REPO))
    try:
        import spaces
    finally:
        sys.path.remove(str(REPO))
    return [int(a) for a in spaces.create_space("nb201", **CONFIG).sample(np.random.default_rng(3))]


@pytest.fixture(scope="module")
def script_file(tmp_path_factory):
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(8)
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, x):
            y = torch.relu(self.bn(self.conv(x)))
            return self.fc(y.mean(dim=(2, 3)))

    path = tmp_path_factory.mktemp("ts") / "tiny.pt"
    torch.jit.save(torch.jit.script(Tiny().eval()), str(path))
    return str(path)


def space_backend(arch, **extra):
    options = {"model_format": "space", "space": "nb201", "space_config": CONFIG, "arch": arch}
    options.update(extra)
    return TorchBackend(options)


def test_space_format_runs_the_architecture_from_the_zip(space_zip, arch):
    before = sys.modules.get("spaces")
    b = space_backend(arch, threads=1).load(space_zip, INPUT)
    info = b.info()
    assert info["space_source"].startswith(space_zip) and info["arch"] == arch
    assert info["outputs"] == [[2, 10]] and info["params"] > 0 and info["threads"] == 1
    assert info["grad_mode"] == "inference_mode" and info["device"] == "cpu"
    b.run_once()
    assert b.device_time_ms() is None  # no device events on the CPU
    layers = b.layer_profile(3)
    b.close()
    assert sys.modules.get("spaces") is before  # the zip's package is gone again
    assert space_zip not in sys.path
    names = [r["name"] for r in layers]
    assert names[0].startswith("stem") and OUTSIDE in names
    convs = [r for r in layers if r["op_type"] == "Conv2d"]
    assert convs and all(r["time_ms"] > 0 and r["calls"] == 1 for r in convs)
    assert all(r["time_ms"] > 0 for r in layers)
    norm = normalise(layers)
    assert sum(r["share"] for r in norm) == pytest.approx(1.0)
    assert "Conv2d" in {g["op_type"] for g in group_by_op_type(layers)}
    assert "leaf modules" in info.get("layer_profile", "") or "leaf modules" in b.info()["layer_profile"]


def test_space_format_channels_last_and_module_isolation(space_zip, arch):
    b = space_backend(arch, channels_last=True).load(space_zip, {"input": [1, 3, 32, 32]})
    b.run_once()
    assert b.info()["channels_last"] is True
    b.close()


def test_space_import_failure_explains_the_python_requirement(tmp_path, arch):
    bad = tmp_path / "new_python.zip"
    with zipfile.ZipFile(str(bad), "w") as z:
        z.writestr("spaces/__init__.py", "def f(x):\n    match x:\n        case 1: return (y := 1\n")
    with pytest.raises(ModelLoadError, match="needs the Python and packages the host uses") as err:
        space_backend(arch).load(str(bad), INPUT)
    assert "torchscript" in str(err.value) and "onnxruntime or tensorrt" in str(err.value)
    assert str(bad) not in sys.path
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(str(empty), "w") as z:
        z.writestr("other/__init__.py", "")
    with pytest.raises(ModelLoadError, match="holds no package spaces/|needs the Python"):
        space_backend(arch).load(str(empty), INPUT)
    notzip = tmp_path / "m.onnx"
    notzip.write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="is not a zip"):
        space_backend(arch).load(str(notzip), INPUT)


def test_space_build_errors(space_zip, arch):
    import sys

    before = {k: v for k, v in sys.modules.items() if k == "spaces" or k.startswith("spaces.")}
    with pytest.raises(ModelLoadError, match="cannot build arch"):
        space_backend([99] * len(arch)).load(space_zip, INPUT)
    with pytest.raises(ModelLoadError, match="cannot build arch"):
        TorchBackend({"model_format": "space", "space": "nope", "arch": arch}).load(space_zip, INPUT)
    # the zip's `spaces` is gone after a failed build: the process's own modules are back, and only they
    after = {k: v for k, v in sys.modules.items() if k == "spaces" or k.startswith("spaces.")}
    assert after == before and space_zip not in sys.path


def test_torchscript_runs_and_profiles_aten_ops(script_file):
    b = TorchBackend({"threads": 1}).load(script_file, {"x": [2, 3, 16, 16]})
    b.run_once()
    assert b.info()["outputs"] == [[2, 4]] and b.info()["model_format"] == "torchscript"
    layers = b.layer_profile(3)
    assert layers and all(r["time_ms"] > 0 for r in layers)
    assert any("conv" in r["name"] for r in layers) and any(r["name"].startswith("aten::") for r in layers)
    assert "aten ops" in b.info()["layer_profile"]
    b.close()


def test_model_and_input_errors(script_file, tmp_path):
    with pytest.raises(ModelLoadError, match="does not run on inputs"):
        TorchBackend().load(script_file, {"x": [2, 5, 16, 16]})
    with pytest.raises(ModelLoadError, match="cannot load TorchScript model"):
        bad = tmp_path / "bad.pt"
        bad.write_bytes(b"nope")
        TorchBackend().load(str(bad), {"x": [1, 3, 8, 8]})
    with pytest.raises(ModelLoadError, match="model file not found"):
        TorchBackend().load(str(tmp_path / "none.pt"), {"x": [1, 3, 8, 8]})


def test_device_and_precision_errors(script_file):
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match=r"torch.cuda.is_available\(\) is False"):
            TorchBackend({"device": "cuda"}).load(script_file, {"x": [1, 3, 8, 8]})
    with pytest.raises(BackendUnavailable, match="fp16 .* CUDA only"):
        TorchBackend().load(script_file, {"x": [1, 3, 8, 8]}, precision="fp16")
    with pytest.raises(BackendUnavailable, match="int8"):
        TorchBackend().load(script_file, {"x": [1, 3, 8, 8]}, precision="int8")


@pytest.mark.parametrize(
    "options, match",
    [
        ({"device": "gpu"}, "device"),
        ({"model_format": "onnx"}, "model_format"),
        ({"model_format": "space", "arch": [1, 2]}, "space"),
        ({"model_format": "space", "space": "nb201"}, "arch"),
        ({"model_format": "space", "space": "nb201", "arch": [1, True]}, "arch"),
        ({"arch": [1]}, "need model_format 'space'"),
        ({"threads": -1}, "threads"),
        ({"channels_last": 1}, "channels_last"),
    ],
)
def test_option_errors(options, match):
    with pytest.raises(BackendOptionError, match=match):
        TorchBackend(options)


def test_registered_and_versions():
    assert BACKENDS.get("torch") is TorchBackend
    assert TorchBackend.available() is None
    v = TorchBackend.versions()
    assert v["torch"] == torch.__version__ and "torch_cuda" in v


def test_torch_missing_is_a_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    reason = TorchBackend.available()
    assert reason.startswith("torch is not importable") and "Python" in reason
    with pytest.raises(BackendUnavailable, match="torch is not importable"):
        TorchBackend().load("m.pt", {"x": [1]})
