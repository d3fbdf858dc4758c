"""Command-line options shared by every command that reads a device's measurements.

A device profiled under several settings (TensorRT and ONNX Runtime, fp16 and fp32, batch 1 and 8, two
space configs) holds several latency functions; `predictors.data.load_xy` refuses to mix them. These options
let the user pick one; `setting_kwargs` turns them into the keyword arguments `load_xy` takes. Left out,
each is None (the device's only setting is used when it has one).
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def _json_object(text: str) -> dict[str, Any]:
    """argparse type for --space-config: a JSON object, or a clear usage error naming what is wrong."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg} at column {e.colno}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object such as '{{\"C\": 16, \"N\": 5}}', got {text!r}")
    return value


def add_setting_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --backend, --precision, --batch and --space-config (all optional) to `parser`."""
    g = parser.add_argument_group("measurement setting (needed only when a device was measured under several)")
    g.add_argument("--backend", help="use the measurements taken with this backend (e.g. tensorrt, onnxruntime)")
    g.add_argument("--precision", help="use the measurements taken at this precision (e.g. fp32, fp16)")
    g.add_argument("--batch", type=int, help="use the measurements taken at this batch size")
    g.add_argument("--space-config", type=_json_object, metavar="JSON",
                   help="use the measurements of networks built with this space config (a JSON object)")


def setting_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """{backend, precision, batch, space_config} from parsed arguments (None where not given or not defined),
    ready for `load_xy(store, device, space, **setting_kwargs(args))`."""
    return {k: getattr(args, k, None) for k in ("backend", "precision", "batch", "space_config")}
