"""ONNX export of a space's architecture into a content-addressed file (`<sha256 of bytes>.onnx`).

Models travel to boards by content hash and are not resent when already there, so an export must be
byte-deterministic: the same arch gives the same bytes, and thus the same name, in every process.
The space name, arch id and config are written into the model's metadata so a file tells what it is.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch

from spaces.base import SearchSpace

# Opset 13: the newest that JetPack 4.6's TensorRT 8.0 parses, and well inside what ONNX Runtime 1.10
# (JetPack 4's Python 3.6 wheels) accepts; opset 17 models fail to load there (seen on ORT 1.10).
OPSET = 13


@dataclass(frozen=True)
class ExportedModel:
    """An exported model: the sha256 of its bytes (its identity), where it lies, and its size."""

    sha256: str
    path: Path
    nbytes: int


def onnx_metadata(space: SearchSpace, arch: Sequence[int]) -> dict[str, str]:
    """Metadata props that identify an exported arch: space name, arch id and the space config (JSON)."""
    return {
        "edgeprof.space": space.name,
        "edgeprof.arch_id": space.arch_id(arch),
        "edgeprof.space_config": json.dumps(space.config, sort_keys=True),
    }


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata props of an ONNX file (external weight files are not read)."""
    model = onnx.load(os.fspath(path), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}


def _export_bytes(module: torch.nn.Module, example: torch.Tensor, out_dir: Path) -> bytes:
    """TorchScript-based export with a dynamic batch axis, via a temp file in out_dir."""
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".export-", suffix=".onnx")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            torch.onnx.export(
                module,
                (example,),
                tmp,
                dynamo=False,
                opset_version=OPSET,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                do_constant_folding=True,
            )
        return Path(tmp).read_bytes()
    finally:
        Path(tmp).unlink(missing_ok=True)


def _onnx_with_metadata(module: torch.nn.Module, example: torch.Tensor, out_dir: Path,
                        metadata: dict[str, str]) -> bytes:
    """The module's ONNX bytes with `metadata` as its metadata props."""
    model = onnx.load_from_string(_export_bytes(module, example, out_dir))
    for key, value in metadata.items():
        model.metadata_props.add(key=str(key), value=str(value))
    return model.SerializeToString()


def write_atomic(data: bytes, path: Path, replace: bool = False) -> None:
    """Write via a temp file and rename, so a reader never sees a partial model; an existing file is kept
    (content-addressed: it holds these bytes already) unless `replace`."""
    if path.exists() and not replace:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".write-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a model is shared data
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def export_onnx(
    space: SearchSpace, arch: Sequence[int], out_dir: str | os.PathLike[str], batch: int = 1
) -> ExportedModel:
    """Export `arch` to `out_dir/<sha256>.onnx`; the batch axis is dynamic, `batch` only sizes the trace."""
    arch = space.validate(arch)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = _onnx_with_metadata(space.build(arch), torch.zeros(space.input_shape_of(arch, batch)), out,
                               onnx_metadata(space, arch))
    digest = hashlib.sha256(data).hexdigest()
    path = out / f"{digest}.onnx"
    write_atomic(data, path)
    return ExportedModel(sha256=digest, path=path, nbytes=len(data))


SPACES_DIR = Path(__file__).resolve().parent
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed timestamps: the same code and arch give the same bytes


def export_space_package(space: SearchSpace, arch: Sequence[int], out_dir: str | os.PathLike[str]) -> ExportedModel:
    """The arch as the space itself builds it, for eager runtimes (the agent's torch backend).

    A zip of this `spaces` package plus `model.json` ({space, config, arch, arch_id}), named by its sha256.
    The board imports `spaces` from the zip and calls `create_space(space, **config).build(arch)`, so the
    network is the space's own torch module, not a conversion. It needs the host's Python on the board.
    """
    arch = space.validate(arch)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = {"space": space.name, "config": space.config, "arch": list(arch), "arch_id": space.arch_id(arch)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for src in sorted(SPACES_DIR.glob("*.py")):
            z.writestr(zipfile.ZipInfo(f"spaces/{src.name}", _ZIP_TIME), src.read_bytes())
        z.writestr(zipfile.ZipInfo("model.json", _ZIP_TIME), json.dumps(spec, sort_keys=True))
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    path = out / f"{digest}.zip"
    write_atomic(data, path)
    return ExportedModel(sha256=digest, path=path, nbytes=len(data))


def export_module(module: torch.nn.Module, example: torch.Tensor, path: str | os.PathLike[str],
                  metadata: dict[str, str] | None = None) -> ExportedModel:
    """Export any module (a trained, merged network) to the file `path` with the given metadata props.

    The same exporter and opset as the space exports; the file is replaced atomically (a reader sees the old
    model or the new one, never a part), and its sha256 is returned as for a content-addressed export."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = _onnx_with_metadata(module, example, out.parent, metadata or {})
    write_atomic(data, out, replace=True)
    return ExportedModel(sha256=hashlib.sha256(data).hexdigest(), path=out, nbytes=len(data))
