"""TPC of ResNet-18, ResNet-50, MobileNetV2 and ShuffleNetV2-1.5x (ImageNet, 1000 classes) against TPC-NAS's Table 8.

Both counting conventions (hwsearch/proxies/tpc.py, spec §1.4): `algorithm1` (Algorithm 1 literally: main-path
convs only, shortcut/downsample projections and the FC left out) and `table8` (every Conv2d plus the FC as
C_out = 1000, k = 1), beside the paper's 140, 340, 214, 235; `algorithm1+fc` is the spec's middle variant.
ResNet-50 and MobileNetV2 are the all-"keep" archs of our grafting spaces (torchvision's networks); ResNet-18
and ShuffleNetV2-1.5x are built here with torchvision's layer structure (there is no torchvision on this
machine). All on the meta device: TPC reads shapes only. Each network's parameter count is checked against
torchvision's published one, so a wrong layer list shows. ShuffleNetV2's left branch of a stride-2 unit
(`branch1`: depthwise 3x3 + 1x1) is a concatenated branch, not a residual link, so both conventions count it.

Then the fast path: TPC of many random archs of nb201 and mbconv from the per-(layer, op) tables (archs/ms,
after the table is built; TPC-NAS's search scores ~100k archs). `--quick`: 10k archs instead of 200k.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from hwsearch.proxies import create_proxy
from hwsearch.proxies._tables import tpc_layers
from spaces import create_space

PAPER: dict[str, float] = {"resnet18": 140, "resnet50": 340, "mobilenetv2": 214, "shufflenetv2_x1.5": 235}
# torchvision's published parameter counts (ImageNet weights' metadata)
TORCHVISION_PARAMS: dict[str, int] = {"resnet18": 11_689_512, "resnet50": 25_557_032, "mobilenetv2": 3_504_872,
                                      "shufflenetv2_x1.5": 3_503_624}


def _conv_bn(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(c_out)]
    return layers + [nn.ReLU()] if relu else layers


class BasicBlock(nn.Module):
    """torchvision's ResNet basic block: 3x3 (the stride), 3x3, + identity or `downsample` (1x1 + BN)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.downsample = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                           if stride != 1 or c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def resnet18(num_classes: int = 1000) -> nn.Module:
    """torchvision's resnet18: 7x7 s2 stem, max pool, four stages of two basic blocks (64..512), FC."""
    blocks, c_in = [], 64
    for stage, width in enumerate((64, 128, 256, 512)):
        blocks.append(nn.Sequential(BasicBlock(c_in, width, 1 if stage == 0 else 2), BasicBlock(width, width, 1)))
        c_in = width
    net = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                        *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes))
    return net


class ShuffleUnit(nn.Module):
    """torchvision's ShuffleNetV2 InvertedResidual: stride 1 splits the channels and transforms one half
    (`branch2`); stride 2 transforms both copies (`branch1`: dw 3x3 s2 + 1x1; `branch2`: 1x1, dw 3x3 s2, 1x1);
    the halves are concatenated and shuffled."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        half = c_out // 2
        self.stride = stride
        self.branch1 = (nn.Sequential(*_conv_bn(c_in, c_in, 3, stride, groups=c_in, relu=False),
                                      *_conv_bn(c_in, half, 1)) if stride > 1 else nn.Sequential())
        self.branch2 = nn.Sequential(*_conv_bn(c_in if stride > 1 else half, half, 1),
                                     *_conv_bn(half, half, 3, stride, groups=half, relu=False),
                                     *_conv_bn(half, half, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            out = torch.cat((a, self.branch2(b)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return out.unflatten(1, (2, -1)).transpose(1, 2).flatten(1, 2)


def shufflenetv2_x1_5(num_classes: int = 1000) -> nn.Module:
    """torchvision's shufflenet_v2_x1_5: stages (4, 8, 4) at (176, 352, 704), 24-channel stem, 1024 conv5."""
    widths = (24, 176, 352, 704, 1024)
    layers: list[nn.Module] = [*_conv_bn(3, widths[0], 3, 2), nn.MaxPool2d(3, 2, 1)]
    c_in = widths[0]
    for repeats, width in zip((4, 8, 4), widths[1:4], strict=True):
        layers.append(nn.Sequential(ShuffleUnit(c_in, width, 2), *(ShuffleUnit(width, width, 1)
                                                                    for _ in range(repeats - 1))))
        c_in = width
    layers += [*_conv_bn(c_in, widths[4], 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[4], num_classes)]
    return nn.Sequential(*layers)


def networks() -> dict[str, nn.Module]:
    """The four ImageNet networks on the meta device."""
    with torch.device("meta"):
        r50, mv2 = create_space("resnet50"), create_space("mobilenetv2")
        return {"resnet18": resnet18(), "resnet50": r50._make_module((1,) * r50.n_layers),
                "mobilenetv2": mv2._make_module((1,) * mv2.n_layers), "shufflenetv2_x1.5": shufflenetv2_x1_5()}


def table(nets: dict[str, nn.Module]) -> dict[str, Any]:
    """Per network: both conventions, Algorithm 1 + FC, the paper's value and the gaps, layer counts, params."""
    alg1, t8 = create_proxy("tpc"), create_proxy("tpc-table8")
    out: dict[str, Any] = {}
    for name, net in nets.items():
        a, t = alg1.score(net, None), t8.score(net, None)
        fc = sum(np.log(ly.out_degree) for ly in tpc_layers(net, shortcuts=True, fc=True) if ly.kind == "linear")
        params = int(sum(p.numel() for p in net.parameters()))
        out[name] = {"algorithm1": a, "algorithm1+fc": a + float(fc), "table8": t, "paper": PAPER[name],
                     "gap_table8": t - PAPER[name], "gap_algorithm1": a - PAPER[name],
                     "convs": len(tpc_layers(net, shortcuts=True, fc=False)),
                     "shortcut_convs": len(tpc_layers(net, shortcuts=True, fc=False))
                     - len(tpc_layers(net, shortcuts=False, fc=False)),
                     "params": params, "params_match_torchvision": params == TORCHVISION_PARAMS[name]}
    return out


def fast_path(n: int) -> dict[str, Any]:
    """TPC of n random archs per space from the per-(layer, op) table: table build time and archs/ms."""
    proxy, out = create_proxy("tpc"), {}
    for name in ("nb201", "mbconv"):
        space = create_space(name)
        archs = np.random.default_rng(0).integers(0, space.n_ops, size=(n, space.n_layers))
        t0 = time.perf_counter()
        proxy.fast_scores(space, archs[:1])
        t1 = time.perf_counter()
        proxy.fast_scores(space, archs)
        t2 = time.perf_counter()
        out[name] = {"n": n, "table_s": t1 - t0, "score_s": t2 - t1, "archs_per_ms": n / ((t2 - t1) * 1e3)}
    return out


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau-a of two short lists (4 networks: no scipy needed)."""
    pairs = [(i, j) for i in range(len(x)) for j in range(i + 1, len(x))]
    return float(sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in pairs) / len(pairs))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke size: 10k archs for the fast-path timing")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = table(networks())
    paper = [r["paper"] for r in rows.values()]
    res: dict[str, Any] = {
        "networks": rows,
        "kendall_tau": {conv: kendall_tau([r[conv] for r in rows.values()], paper)
                        for conv in ("algorithm1", "table8")},
        "fast_path": fast_path(10_000 if args.quick else 200_000),
        "convention": create_proxy("tpc").describe()["convention_text"],
    }
    res["wall_s"] = time.perf_counter() - start
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print("TPC (natural log) against TPC-NAS Table 8, ImageNet, 1000 classes")
    print(f"{'network':18} {'algorithm1':>10} {'alg1+FC':>8} {'table8':>8} {'paper':>6} {'gap':>6} "
          f"{'convs':>5} {'short':>5} {'params ok':>9}")
    for name, r in rows.items():
        ok = str(r["params_match_torchvision"])
        print(f"{name:18} {r['algorithm1']:10.1f} {r['algorithm1+fc']:8.1f} {r['table8']:8.1f} {r['paper']:6.0f} "
              f"{r['gap_table8']:+6.1f} {r['convs']:5d} {r['shortcut_convs']:5d} {ok:>9}")
    print(f"Kendall tau against the paper's order: algorithm1 {res['kendall_tau']['algorithm1']:.2f}, "
          f"table8 {res['kendall_tau']['table8']:.2f}")
    for name, f in res["fast_path"].items():
        print(f"fast path {name}: {f['archs_per_ms']:.0f} archs/ms over {f['n']} archs "
              f"(table built in {f['table_s']:.1f} s)")
    print(f"wall time {res['wall_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
