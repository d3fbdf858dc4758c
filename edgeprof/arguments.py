"""Command-line options shared by every command that reads a device's measurements.

A device profiled under several settings (TensorRT and ONNX Runtime, fp16 and fp32, batch 1 and 8, two
space configs) holds several latency functions; `predictors.data.load_xy` refuses to mix them. These options
let the user pick one; `setting_kwargs` turns them into the keyword arguments `load_xy` takes. Left out,
each is None (the device's only setting is used when it has one).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from spaces.errors import RuntimeFailure, UserInputError


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


def check_out_path(path: str | Path, folder: bool, option: str = "--out") -> Path:
    """Check, before a command does its work, that it will be able to write `path` (a folder when `folder`,
    else a file): not a file where a folder is asked or the other way round, not inside a file, in a folder
    this user can write. UserInputError (exit 2) for the first, RuntimeFailure (exit 1) for the last."""
    p = Path(path)
    if folder and p.is_file():
        raise UserInputError(f"{option} {p}: is a file; give a folder")
    if not folder and p.is_dir():
        raise UserInputError(f"{option} {p}: is a folder; give a file name such as {p / 'result.json'}")
    existing = next((q for q in (p, *p.parents) if q.exists()), Path("."))
    if existing != p and not existing.is_dir():
        raise UserInputError(f"{option} {p}: {existing} is a file, so nothing can be written inside it")
    where = existing if existing != p or folder else (p.parent if str(p.parent) else Path("."))
    if not os.access(where, os.W_OK | os.X_OK) or (p.is_file() and not os.access(p, os.W_OK)):
        raise RuntimeFailure(f"{option} {p}: not writable: {where if existing != p else p} is read-only for "
                             "this user")
    return p


def setting_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """{backend, precision, batch, space_config} from parsed arguments (None where not given or not defined),
    ready for `load_xy(store, device, space, **setting_kwargs(args))`."""
    return {k: getattr(args, k, None) for k in ("backend", "precision", "batch", "space_config")}


def given_options(args: argparse.Namespace, *dests: str, settings: bool = False) -> list[str]:
    """The options among `dests` the user gave, as typed (`valid_devices` -> `--valid-devices`), and with
    `settings` the measurement-setting options given: what a command names when it refuses options that do
    not apply to what it was asked (a device's options for an accuracy task, and the reverse)."""
    given = [f"--{d.replace('_', '-')}" for d in dests if getattr(args, d, None)]
    if settings:
        given += [f"--{k.replace('_', '-')}" for k, v in setting_kwargs(args).items() if v is not None]
    return given
