"""A small conv net exported to ONNX with chosen dynamic axes: the user's own model in the ONNX-file tests."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


def small_net(path: Path, axes: dict[int, str] | None, name: str = "images", depthwise: bool = False,
              channels: int = 8, size: int = 16, classes: int = 4) -> Path:
    """Conv 3->channels (3x3) [+ depthwise 3x3], ReLU, global pool, Linear channels->classes, on a 3 x size x
    size input named `name`, exported (opset 13) with these dynamic axes of its input (None: all fixed)."""
    layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU()]
    if depthwise:
        layers.append(nn.Conv2d(channels, channels, 3, padding=1, groups=channels))
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, size, size),), str(path), dynamo=False, opset_version=13,
                          input_names=[name], output_names=["out"],
                          dynamic_axes={name: axes, "out": {0: "batch"}} if axes else None)
    return path
