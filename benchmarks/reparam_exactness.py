"""Exactness of Domino's re-parameterisation: merged against grafted, per block type, with and without the padding fix.

Each block type runs at its channel counts and feature-map size in the full networks at 224x224 (MobileNetV2:
the t=1 block, stride 1 with and without the residual, stride 2; ResNet-50: bottleneck with the identity
shortcut, with the strided projection, and layer1's stride-1 projection). Batch norms get random running
statistics and scales, the affine activations random a and b (spaces.reparam.randomise_linear_layers), all
in eval mode; inputs are standard normal. For each block: the max abs and relative (max abs / max |output|)
error of the merged conv in fp32, with the padding fix (`bias_pad=True`, the default) and without it (the
plain block: exact in the interior, wrong on the border), the fixed block's error in float64 (the merge
itself, free of fp32 rounding), and a Domino-Pro form (width x2, one extra 1x1) merged the same way. Then
whole networks (mobilenetv2-small, resnet50-small, stratified masks): the same errors and, for scale, the
grafted network's own fp32 rounding (its fp32 output against its float64 one).

`--quick`: smaller feature maps, one mask per network (a smoke size). About 20 s in full on one core.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from spaces import create_space
from spaces.mobilenetv2_net import GraftedInvertedResidual
from spaces.reparam import merge_block, merge_network, randomise_linear_layers
from spaces.resnet50_net import GraftedBottleneck

# name -> (block class, constructor args, feature-map size at 224x224 input)
BLOCKS: dict[str, tuple[type[nn.Module], tuple[int, ...], int]] = {
    "mbv2_t1 (32->16)": (GraftedInvertedResidual, (32, 16, 1, 1), 112),
    "mbv2_s1_residual (24)": (GraftedInvertedResidual, (24, 24, 1, 6), 56),
    "mbv2_s1_no_residual (64->96)": (GraftedInvertedResidual, (64, 96, 1, 6), 14),
    "mbv2_s2 (24->32)": (GraftedInvertedResidual, (24, 32, 2, 6), 56),
    "resnet_identity (256)": (GraftedBottleneck, (256, 64, 256, 1), 56),
    "resnet_projection_s2 (256->512)": (GraftedBottleneck, (256, 128, 512, 2), 56),
    "resnet_projection_s1 (64->256)": (GraftedBottleneck, (64, 64, 256, 1), 56),
}


def errors(ref: torch.Tensor, out: torch.Tensor) -> dict[str, float]:
    """Max abs error and relative error (max abs / max |ref|)."""
    diff = float((ref - out).abs().max())
    return {"max_abs": diff, "rel": diff / float(ref.abs().max())}


def block_errors(cls: type[nn.Module], args: tuple[int, ...], size: int, seed: int) -> dict[str, Any]:
    """Merged vs grafted for one block type: fixed, plain (interior and border apart), float64, Pro."""
    torch.manual_seed(seed)
    x = torch.randn(2, args[0], size, size, generator=torch.Generator().manual_seed(seed))
    res: dict[str, Any] = {}
    for key, kwargs in (("fixed", {}), ("plain", {"bias_pad": False}), ("pro", {"pro_width": 2, "pro_extra": 1})):
        block = randomise_linear_layers(cls(*args, **kwargs), seed)
        merged = merge_block(block)
        with torch.no_grad():
            ref, out = block(x), merged(x)
        res[key] = errors(ref, out)
        if key == "plain":
            inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))
            res[key]["rel_interior"] = errors(ref[inner], out[inner])["rel"]
        if key == "fixed":
            res["kernel"] = list(merged[0].weight.shape)
            res["stride"] = merged[0].stride[0]
            block64 = copy.deepcopy(block).double()
            with torch.no_grad():
                res[key]["rel_fp64"] = errors(block64(x.double()), merge_block(block64)(x.double()))["rel"]
    return res


def network_errors(name: str, n_masks: int, size: int) -> dict[str, Any]:
    """Whole networks of a grafting space: merged vs grafted over stratified masks (worst case kept)."""
    space = create_space(name)
    archs = space.sample_unique(n_masks, np.random.default_rng(0))
    worst: dict[str, float] = {"fixed_rel": 0.0, "fixed_rel_fp64": 0.0, "plain_rel": 0.0, "fp32_rounding_rel": 0.0}
    for i, arch in enumerate(archs):
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(i))
        for pad in (True, False):
            grafted = randomise_linear_layers(space.build_grafted(arch, bias_pad=pad), i)
            merged = space.merge(grafted)
            with torch.no_grad():
                ref, out = grafted(x), merged(x)
                rel = errors(ref, out)["rel"]
                if pad:
                    g64 = copy.deepcopy(grafted).double()
                    ref64 = g64(x.double())
                    worst["fixed_rel_fp64"] = max(worst["fixed_rel_fp64"],
                                                  errors(ref64, merge_network(g64)(x.double()))["rel"])
                    worst["fp32_rounding_rel"] = max(worst["fp32_rounding_rel"], errors(ref64, ref.double())["rel"])
            key = "fixed_rel" if pad else "plain_rel"
            worst[key] = max(worst[key], rel)
    return {"masks": [space.arch_id(a) for a in archs], "input": size, **worst}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke size: small feature maps, one mask per network")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    blocks = {name: {"size": 9 if args.quick else size, **block_errors(cls, a, 9 if args.quick else size, seed)}
              for seed, (name, (cls, a, size)) in enumerate(BLOCKS.items())}
    n_masks, size = (1, 32) if args.quick else (8, 64)
    networks = {name: network_errors(name, n_masks, size) for name in ("mobilenetv2-small", "resnet50-small")}
    res = {
        "blocks": blocks,
        "networks": networks,
        "max_rel_fixed": max(b["fixed"]["rel"] for b in blocks.values()),
        "max_rel_plain": max(b["plain"]["rel"] for b in blocks.values()),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print("merged vs grafted, fp32, BN eval with random statistics (relative = max abs / max |output|)")
    print(f"{'block':34} {'kernel':>18} {'s':>2} {'fixed abs':>10} {'fixed rel':>10} {'fp64 rel':>9} "
          f"{'plain abs':>10} {'plain rel':>10} {'interior':>9} {'Pro rel':>9}")
    for name, b in blocks.items():
        f, pl = b["fixed"], b["plain"]
        print(f"{name:34} {'x'.join(map(str, b['kernel'])):>18} {b['stride']:>2} {f['max_abs']:10.2e} {f['rel']:10.2e} "
              f"{f['rel_fp64']:9.1e} {pl['max_abs']:10.2e} {pl['rel']:10.2e} {pl['rel_interior']:9.1e} "
              f"{b['pro']['rel']:9.1e}")
    print(f"whole networks (worst of the stratified masks, input {size}x{size}):")
    for name, n in networks.items():
        print(f"  {name:18} {len(n['masks'])} masks: fixed rel {n['fixed_rel']:.2e} (fp64 {n['fixed_rel_fp64']:.1e}), "
              f"plain rel {n['plain_rel']:.2e}; the grafted network's own fp32 rounding {n['fp32_rounding_rel']:.2e}")
    print(f"wall time {res['wall_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
