"""Job bundles: the versioned document the agent reads (see docs/contracts.md)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from agents.protocol import JOB_SCHEMA, validate_job
from profiler.config import DeviceConfig


@dataclass(frozen=True)
class ModelTask:
    """One model to measure: its content hash, input shape, file name on the board and own options.

    A space's network has one input named "input". A user's ONNX file (profiler.onnx_profile) names its own:
    `inputs` {name: shape} replaces `input_shape` then, each first dim taking the job's batch, with the float
    `dtype` the file declares.
    """

    sha256: str
    input_shape: tuple[int, ...]
    filename: str = ""  # `<sha256>.onnx` unless given (the torch backend takes `<sha256>.zip`)
    options: dict[str, Any] = field(default_factory=dict)  # merged over the device's backend options
    inputs: dict[str, tuple[int, ...]] | None = None
    dtype: str = "float32"

    def feeds(self, batch: int) -> dict[str, list[int]]:
        """The task's {input name: shape} at `batch`."""
        named = self.inputs if self.inputs is not None else {"input": self.input_shape}
        return {name: [batch, *shape[1:]] for name, shape in named.items()}


def new_job_id(device: str) -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{device}-{secrets.token_hex(3)}"


def build_job(config: DeviceConfig, models: list[ModelTask], batch: int, job_id: str | None = None,
              protocol_overrides: dict[str, Any] | None = None, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    """A validated job for `config`'s board; model paths are relative to the job's folder.

    `owner` ({"dataset_id", "db", "host"}) records the dataset the job measures for, so that another dataset
    sharing the board never ingests it or marks it ingested (see profiler.collect)."""
    protocol = {**config.protocol, **(protocol_overrides or {})}
    tasks = []
    for i, m in enumerate(models):
        tasks.append({
            "task_id": f"t{i:05d}",
            "model": f"../../models/{m.filename or m.sha256 + '.onnx'}",
            "model_sha256": m.sha256,
            "inputs": m.feeds(batch),
            "dtype": m.dtype,
            "backend": config.runtime.backend,
            "precision": config.runtime.precision,
            "batch": batch,
            "options": {**config.task_options(), **m.options},
        })
    job = {"schema": JOB_SCHEMA, "job_id": job_id or new_job_id(config.name), "device": config.name,
           "protocol": protocol, "meter": config.meter_settings(), "tasks": tasks}
    if config.setup.nvpmodel_mode is not None or config.setup.jetson_clocks:
        job["setup"] = {"nvpmodel_mode": config.setup.nvpmodel_mode, "jetson_clocks": config.setup.jetson_clocks}
    if owner is not None:
        job["owner"] = owner
    return validate_job(job)


def job_text(job: dict[str, Any]) -> str:
    return json.dumps(job, indent=1, sort_keys=True)
