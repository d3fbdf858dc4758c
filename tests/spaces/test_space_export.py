"""ONNX export: content addressing, byte determinism, metadata, and that onnxruntime runs the result."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from spaces import create_space, export_onnx, onnx_metadata, read_onnx_metadata

REPO = Path(__file__).resolve().parents[2]
NB201_ARCH = (3, 1, 2, 4, 3, 1)


@pytest.fixture(scope="module")
def nb201_export(tmp_path_factory):
    space = create_space("nb201")
    return space, export_onnx(space, NB201_ARCH, tmp_path_factory.mktemp("models"))


def test_file_is_named_by_its_hash(nb201_export):
    _, model = nb201_export
    data = model.path.read_bytes()
    assert model.path.name == f"{model.sha256}.onnx"
    assert hashlib.sha256(data).hexdigest() == model.sha256
    assert model.nbytes == len(data)
    assert model.path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in model.path.parent.iterdir()] == [model.path.name]  # no temp files left


def test_export_is_byte_deterministic(nb201_export, tmp_path):
    space, model = nb201_export
    again = export_onnx(space, list(NB201_ARCH), tmp_path)
    assert again.sha256 == model.sha256 and again.nbytes == model.nbytes
    # an existing file is kept, not rewritten
    mtime = again.path.stat().st_mtime_ns
    assert export_onnx(space, NB201_ARCH, tmp_path).path.stat().st_mtime_ns == mtime
    other = export_onnx(space, (3, 1, 2, 4, 3, 2), tmp_path)
    assert other.sha256 != model.sha256


def test_export_is_deterministic_across_processes(nb201_export, tmp_path):
    _, model = nb201_export
    code = (
        "import sys; from spaces import create_space, export_onnx; "
        f"print(export_onnx(create_space('nb201'), {NB201_ARCH!r}, sys.argv[1]).sha256)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == model.sha256


def test_metadata_names_the_arch(nb201_export):
    space, model = nb201_export
    meta = read_onnx_metadata(model.path)
    assert meta == onnx_metadata(space, NB201_ARCH)
    assert meta["edgeprof.space"] == "nb201"
    assert space.parse(meta["edgeprof.arch_id"]) == NB201_ARCH


@pytest.mark.parametrize("batch", [1, 4])
def test_onnxruntime_runs_it(nb201_export, batch):
    space, model = nb201_export
    session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["output"]
    x = np.random.default_rng(0).standard_normal(space.input_shape(batch)).astype(np.float32)
    (out,) = session.run(["output"], {"input": x})
    assert out.shape == (batch, 10)
    with torch.no_grad():
        expected = space.build(NB201_ARCH)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-4)


def test_cell_that_outputs_zeros_still_exports(tmp_path):
    space = create_space("nb201")
    model = export_onnx(space, (3, 0, 0, 0, 0, 1), tmp_path)  # node 2 has no inputs, node 3 = skip(node 2)
    session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    for batch in (1, 4):
        (out,) = session.run(None, {"input": np.ones(space.input_shape(batch), dtype=np.float32)})
        assert out.shape == (batch, 10)


def test_mbconv_small_export(tmp_path):
    space = create_space("mbconv-small")
    arch = space.sample(np.random.default_rng(0))
    first = export_onnx(space, arch, tmp_path / "a", batch=2)
    second = export_onnx(space, arch, tmp_path / "b")
    assert first.sha256 == second.sha256  # the trace batch does not change the bytes
    session = ort.InferenceSession(str(first.path), providers=["CPUExecutionProvider"])
    for batch in (1, 4):
        (out,) = session.run(None, {"input": np.zeros(space.input_shape(batch), dtype=np.float32)})
        assert out.shape == (batch, 10)
    assert read_onnx_metadata(first.path)["edgeprof.arch_id"] == space.arch_id(arch)


def test_export_rejects_bad_arch(tmp_path):
    with pytest.raises(ValueError, match="6 entries"):
        export_onnx(create_space("nb201"), (1, 2, 3), tmp_path)


def test_exports_stay_loadable_on_jetpack4_runtimes(tmp_path: Path) -> None:
    """Opset 13 at most: JetPack 4.6's TensorRT 8.0 parses up to 13, ONNX Runtime 1.10 refuses 17."""
    import onnx

    for name in ("nb201", "mbconv-small"):
        space = create_space(name)
        m = export_onnx(space, space.sample(np.random.default_rng(0)), tmp_path)
        model = onnx.load(m.path)
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= 13
