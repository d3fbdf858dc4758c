"""A user's own ONNX file: its inputs, the shapes to feed it at a batch size, and its costs.

What `edgeprof profile DEV --onnx model.onnx` needs before anything reaches a board, all without torch:
- `read_model`: the file parsed once, refused with a message naming it when it is missing, not ONNX, or keeps
  its weights in external data files (a job sends one file per model, so the board would lack them);
- `model_inputs`: the graph's real inputs (initializers listed as inputs are weights with a default, not inputs);
- `parse_input_shapes` / `resolve_shapes`: the shape of every input at a batch size. The first dim is the batch;
  a dynamic one takes the batch, a fixed one must equal it (a model exported with batch 1 cannot run at 8); any
  other dynamic dim must come from `--input-shape`, since the agent cannot guess an image size;
- `onnx_costs`: FLOPs, memory accesses and intensity of the Conv, Gemm and MatMul-with-a-constant-weight nodes
  at batch 1 with the same definitions as spaces.costs (multiply-accumulates, no x2; input + output + weight
  elements), so a user's network and a space's network stand on the same axes (on exported NB201, MBConv and
  FBNet networks the two counts are equal). Shapes come from ONNX shape inference, and from one ONNX Runtime
  run on this CPU where inference cannot settle them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, external_data_helper, shape_inference

from spaces.errors import UserInputError

# ONNX element types the agent can feed (agents.protocol.DTYPES names).
ELEMENT_TYPES = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.DOUBLE: "float64",
                 TensorProto.INT8: "int8", TensorProto.UINT8: "uint8", TensorProto.INT32: "int32",
                 TensorProto.INT64: "int64", TensorProto.BOOL: "bool"}
FLOAT_TYPES = ("float32", "float16", "float64")

Dim = int | str | None  # a fixed size, a symbolic name, or unnamed dynamic


@dataclass(frozen=True)
class OnnxInput:
    """One graph input: its name, its dims as the file declares them and its element type (agent dtype name)."""

    name: str
    dims: tuple[Dim, ...]
    dtype: str


def read_model(path: str | Path) -> onnx.ModelProto:
    """The parsed model; UserInputError naming the file when it is missing, not ONNX or has external data."""
    p = Path(path)
    if not p.is_file():
        raise UserInputError(f"{p}: no such ONNX file")
    try:
        model = onnx.load_model_from_string(p.read_bytes())
    except Exception as e:  # noqa: BLE001  (protobuf raises several types on foreign bytes)
        raise UserInputError(f"{p}: not an ONNX model ({type(e).__name__}: {str(e)[:120]})") from None
    if model.ir_version < 1 or not model.graph.node or not model.graph.input:
        raise UserInputError(f"{p}: not an ONNX model (no graph, nodes or inputs in it)")
    tensors = [*model.graph.initializer, *(a.t for n in model.graph.node for a in n.attribute if a.HasField("t"))]
    external = [t.name for t in tensors if external_data_helper.uses_external_data(t)]
    if external:
        raise UserInputError(f"{p}: keeps {len(external)} weight tensor(s) in external data files (e.g. "
                             f"{external[0]!r}); a job sends one file per model: save it as one file "
                             "(onnx.save(onnx.load(path), out, save_as_external_data=False); under 2 GB)")
    return model


def _dim(d: onnx.TensorShapeProto.Dimension) -> Dim:
    if d.HasField("dim_value") and d.dim_value > 0:
        return int(d.dim_value)
    return d.dim_param or None


def model_inputs(model: onnx.ModelProto) -> list[OnnxInput]:
    """The graph inputs the runtime must be fed, in graph order."""
    weights = {t.name for t in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in weights:
            continue
        tensor = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise UserInputError(f"input {vi.name!r} is not a tensor (sequences and maps cannot be fed)")
        dtype = ELEMENT_TYPES.get(tensor.elem_type)
        if dtype is None:
            raise UserInputError(f"input {vi.name!r}: element type "
                                 f"{TensorProto.DataType.Name(tensor.elem_type)} cannot be fed by the agent "
                                 f"(it feeds {', '.join(ELEMENT_TYPES.values())})")
        out.append(OnnxInput(vi.name, tuple(_dim(d) for d in tensor.shape.dim), dtype))
    if not out:
        raise UserInputError("the model has no inputs to feed (every graph input is an initializer)")
    return out


_SHAPE_RE = re.compile(r"^\d+(x\d+)*$")


def parse_input_shapes(specs: Iterable[str]) -> dict[str | None, list[int]]:
    """`--input-shape` values: "1x3x224x224" (a single-input model: key None) or "name:1x3x224x224" each."""
    out: dict[str | None, list[int]] = {}
    for spec in specs:
        name, _, dims = spec.rpartition(":") if ":" in spec else ("", "", spec)
        dims = dims.strip().lower()
        if not _SHAPE_RE.match(dims) or any(int(d) < 1 for d in dims.split("x")):
            raise UserInputError(f"--input-shape {spec!r}: expected positive dims joined by 'x', such as "
                                 "1x3x224x224 or images:1x3x224x224")
        key = name.strip() or None
        if key in out or (out and (key is None or None in out)):
            raise UserInputError(f"--input-shape {spec!r}: give one shape per input, each as name:shape when "
                                 "there are several")
        out[key] = [int(d) for d in dims.split("x")]
    return out


def resolve_shapes(inputs: Sequence[OnnxInput], given: Mapping[str | None, Sequence[int]],
                   batch: int) -> dict[str, list[int]]:
    """{input name: shape at `batch`}: the first dim is the batch, the other dynamic dims come from `given`
    (whose first dim, the batch, is replaced by `batch`)."""
    names = [i.name for i in inputs]
    given = dict(given)
    if None in given:
        if len(inputs) != 1:
            raise UserInputError(f"the model has {len(inputs)} inputs ({', '.join(names)}): give each "
                                 "--input-shape as name:shape")
        given = {names[0]: given[None]}
    unknown = sorted(set(given) - set(names))  # type: ignore[arg-type]
    if unknown:
        raise UserInputError(f"--input-shape names {', '.join(map(str, unknown))}, which the model lacks; its "
                             f"inputs: {', '.join(names)}")
    out = {}
    for inp in inputs:
        out[inp.name] = _resolve_one(inp, given.get(inp.name), batch)
    return out


def _resolve_one(inp: OnnxInput, given: Sequence[int] | None, batch: int) -> list[int]:
    if not inp.dims:
        raise UserInputError(f"input {inp.name!r} is a scalar: it has no batch axis to sweep")
    if given is not None and len(given) != len(inp.dims):
        raise UserInputError(f"--input-shape for {inp.name!r} has {len(given)} dims, the model's input has "
                             f"{len(inp.dims)}: {_show(inp.dims)}")
    first = inp.dims[0]
    if isinstance(first, int) and first != batch:
        raise UserInputError(f"input {inp.name!r} has a fixed batch of {first} ({_show(inp.dims)}), so it cannot "
                             f"run at batch {batch}: export it with a dynamic batch axis (torch.onnx.export(..., "
                             f"dynamic_axes={{{inp.name!r}: {{0: 'batch'}}}}))")
    shape = [batch]
    for i, d in enumerate(inp.dims[1:], start=1):
        g = None if given is None else int(given[i])
        if isinstance(d, int):
            if g is not None and g != d:
                raise UserInputError(f"--input-shape for {inp.name!r} gives {g} at dim {i}, but the model fixes "
                                     f"it at {d}: {_show(inp.dims)}")
            shape.append(d)
        elif g is None:
            raise UserInputError(f"input {inp.name!r} has a dynamic dim {i} ({d or 'unnamed'}) in "
                                 f"{_show(inp.dims)}: give its size with --input-shape "
                                 f"{inp.name}:{'x'.join(str(x) if isinstance(x, int) else '?' for x in inp.dims)}")
        else:
            shape.append(g)
    return shape


def _show(dims: Sequence[Dim]) -> str:
    return "[" + ", ".join(str(d) if d is not None else "?" for d in dims) + "]"


def pin_inputs(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]], keep_batch: bool = True) -> onnx.ModelProto:
    """A copy whose graph inputs declare `shapes`; with `keep_batch` the first dim stays as the file has it
    (a dynamic batch stays dynamic, so one file serves every batch)."""
    pinned = onnx.ModelProto()
    pinned.CopyFrom(model)
    for vi in pinned.graph.input:
        if vi.name not in shapes:
            continue
        for i, (d, size) in enumerate(zip(vi.type.tensor_type.shape.dim, shapes[vi.name], strict=True)):
            if i == 0 and keep_batch:
                continue
            d.Clear()
            d.dim_value = int(size)
    return pinned


def _shapes_of(model: onnx.ModelProto) -> dict[str, list[int] | None]:
    out: dict[str, list[int] | None] = {}
    for vi in (*model.graph.input, *model.graph.value_info, *model.graph.output):
        if not vi.type.tensor_type.HasField("shape"):
            continue  # rank unknown (shape inference could not follow the graph there)
        dims = [_dim(d) for d in vi.type.tensor_type.shape.dim]
        out[vi.name] = [int(d) for d in dims] if all(isinstance(d, int) for d in dims) else None
    for t in model.graph.initializer:
        out[t.name] = [int(d) for d in t.dims]
    return out


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def _layer(node: onnx.NodeProto, i: int, flops: int, mem: int) -> dict[str, Any]:
    return {"name": node.name or f"{node.op_type}_{i}", "op_type": node.op_type, "flops": flops,
            "mem_access": mem, "intensity": flops / mem if mem else 0.0}


def _node_costs(node: onnx.NodeProto, shapes: Mapping[str, list[int] | None],
                weights: set[str]) -> tuple[int, int] | None:
    """(FLOPs, memory accesses) of one Conv, Gemm or MatMul-with-a-constant-weight node, or None."""
    ins = [shapes.get(n) for n in node.input[:2]] if len(node.input) >= 2 else [None, None]
    y = shapes.get(node.output[0]) if node.output else None
    x, w = ins
    if node.op_type == "Conv" and x and w and y:
        # the weight is [O, I/group, k...]: its size already divides by the `group` attribute, as in
        # spaces.costs.conv_costs, so a depthwise conv counts I*k*k per output position
        weight = math.prod(w)
        flops = math.prod(y[2:]) * weight
        return flops, math.prod(x[1:]) + math.prod(y[1:]) + weight
    if node.op_type in ("Gemm", "MatMul") and node.input[1] in weights and x and w and len(w) == 2:
        n_in, n_out = (w[1], w[0]) if node.op_type == "Gemm" and _attr(node, "transB", 0) else (w[0], w[1])
        rows = math.prod(x) // n_in  # batch 1: every row of the input is one vector (spaces.costs.linear_costs)
        return rows * n_in * n_out, rows * (n_in + n_out) + n_in * n_out
    return None


def _counted(node: onnx.NodeProto, weights: set[str]) -> bool:
    return node.op_type == "Conv" or (node.op_type in ("Gemm", "MatMul") and len(node.input) > 1
                                      and node.input[1] in weights)


def _run_shapes(model: onnx.ModelProto, names: Sequence[str]) -> dict[str, list[int]]:
    """The shapes of these tensors from one ONNX Runtime run of the pinned model on this CPU (zeros in, graph
    optimisations off so every named tensor still exists); {} when it cannot run. The host already has ONNX
    Runtime (a dependency), and one run at batch 1 settles what static inference could not."""
    try:
        import numpy as np
        import onnxruntime as ort

        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        have = {o.name for o in probe.graph.output}
        probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in have)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        feeds = {i.name: np.zeros([int(d) for d in i.dims], dtype=np.dtype(i.dtype if i.dtype != "bool" else bool))
                 for i in model_inputs(probe)}
        return {n: list(v.shape) for n, v in zip(names, sess.run(list(names), feeds), strict=True)}
    except Exception:  # noqa: BLE001  (an unrunnable graph: those layers stay uncounted, and are named)
        return {}


def onnx_costs(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    """Costs at batch 1 with the inputs pinned to `shapes` (batch dim included, set to 1 here): the keys of
    spaces.costs.count_costs plus `layers` (one dict per counted node). `params` counts every initializer
    element, which is what the file holds (an exporter may have folded batch norms into the convs).

    Shapes come from ONNX shape inference; where it cannot settle them (a reshape whose target is computed at
    run time from ops it does not propagate: FBNet's channel shuffle goes Shape -> Slice -> Mod -> Concat ->
    Reshape, and everything after it is unknown), one ONNX Runtime run on this CPU gives them (_run_shapes).
    `uncounted` names the Conv / Gemm / MatMul nodes still without shapes: the totals are then a lower bound
    and say so instead of guessing."""
    one = {k: [1, *list(v)[1:]] for k, v in shapes.items()}
    pinned = pin_inputs(model, one, keep_batch=False)
    try:
        inferred = shape_inference.infer_shapes(pinned, data_prop=True)
    except Exception as e:  # noqa: BLE001  (an inconsistent graph: costs are unknown, measuring may still work)
        raise UserInputError(f"ONNX shape inference failed on the model at {one}: {str(e)[:200]}") from None
    found = _shapes_of(inferred)
    weights = {t.name for t in inferred.graph.initializer}
    nodes = [n for n in inferred.graph.node if _counted(n, weights)]
    missing = sorted({t for n in nodes for t in (*n.input[:2], *n.output[:1]) if t and not found.get(t)})
    if missing:
        found.update(_run_shapes(pinned, missing))
    layers, uncounted = [], []
    for i, node in enumerate(inferred.graph.node):
        cost = _node_costs(node, found, weights)
        if cost is not None:
            layers.append(_layer(node, i, *cost))
        elif _counted(node, weights):
            uncounted.append(node.name or f"{node.op_type}_{i}")
    flops = sum(lay["flops"] for lay in layers)
    mem = sum(lay["mem_access"] for lay in layers)
    params = sum(math.prod(t.dims) for t in model.graph.initializer)
    return {"flops": flops, "params": params, "mem_access": mem, "intensity": flops / mem if mem else 0.0,
            "layers": layers, "uncounted": uncounted}
