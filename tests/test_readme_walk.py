"""Every command of the README, walked as a user types it (small sizes; boards are loopback sshd fixtures).

`WALK` is the one list: each README command appears there exactly once, with the line the walk types,
which may differ from the README only in size (tests/readme_commands.py says what that allows), or with
the test that covers it instead. A README command missing from the list, or a listed command the README
no longer has, fails `test_every_readme_command_is_walked`; a README example that stops working fails the
walk of its section.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from readme_commands import as_written, load

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "tests" / "ssh"))
from sshd import SshServer, find_sshd, keygen  # noqa: E402


@dataclass(frozen=True)
class Step:
    section: str  # the walk that types it ("" with `covered_by`)
    readme: str  # the README's command, as readme_commands() normalises it
    typed: str = ""  # what the walk types: the README line up to sizes
    covered_by: str = ""  # instead of typing it here: the test that runs it, and why
    stdin: str = ""


# the median small-MBConv network of benchmarks/comfort_zone_local.py
CZ_ARCH = "k7e3-skip-k3e6-k5e6-k7e3-k5e3-k7e3-skip-k7e6-k5e3-k3e3-k3e6-k3e6-skip-k3e6-k7e6-k3e6-k7e3-k5e6-skip-k5e6"
NB201_ARCH = "'|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|'"

WALK: list[Step] = [
    # Quick start
    Step("", "make demo", covered_by="tests/cli/test_demo_cli.py runs `edgeprof demo` (what `make demo` runs after "
                                     "installing) at a small --plan"),
    Step("", "make test", covered_by="this suite is what `make test` runs"),
    Step("", "make demo TORCH_VERSION=...", covered_by="a placeholder for the user's torch build, not a command"),
    # Using it
    Step("using", ". .venv/bin/activate", ". .venv/bin/activate"),
    Step("using", "edgeprof devices", "edgeprof devices"),
    Step("using", "edgeprof trust xavier && edgeprof deploy xavier", "edgeprof trust xavier && edgeprof deploy xavier",
         stdin="y\n"),
    Step("using", "edgeprof profile local-cpu --space nb201 --n 20 --db x.db",
         "edgeprof profile local-cpu --space nb201 --n 3 --db x.db"),
    Step("using", "edgeprof dataset summary --db x.db --json", "edgeprof dataset summary --db x.db --json"),
    Step("using", "edgeprof dataset export x.parquet --db x.db --samples",
         "edgeprof dataset export x.parquet --db x.db --samples"),
    Step("using", "edgeprof profile local-cpu --space mbconv-small --n 5 --layers --db x.db",
         "edgeprof profile local-cpu --space mbconv-small --n 2 --layers --db x.db"),
    Step("using", "edgeprof dataset layers --db x.db --device local-cpu --space mbconv-small",
         "edgeprof dataset layers --db x.db --device local-cpu --space mbconv-small"),
    # Latency predictors (on HELP's tables from ../shared)
    Step("predictors", "edgeprof dataset import help ../shared --space nb201 --db lab.db",
         "edgeprof dataset import help ../shared --space nb201 --db lab.db"),
    Step("predictors", "edgeprof train gnn --db lab.db --device raspi4 --space nb201 --train-n 900 --out gnn-raspi4",
         "edgeprof train gnn --db lab.db --device raspi4 --space nb201 --train-n 200 --epochs 10 --out gnn-raspi4"),
    Step("predictors", "edgeprof evaluate gnn-raspi4 --db lab.db --device raspi4 --json",
         "edgeprof evaluate gnn-raspi4 --db lab.db --device raspi4 --json"),
    Step("predictors", f"edgeprof predict gnn-raspi4 --arch {NB201_ARCH}",
         f"edgeprof predict gnn-raspi4 --arch {NB201_ARCH}"),
    Step("predictors", "edgeprof report predictor gnn-raspi4 --db lab.db --device raspi4 --out rep/",
         "edgeprof report predictor gnn-raspi4 --db lab.db --device raspi4 --out rep/"),
    Step("predictors", "edgeprof train meta --db lab.db --space nb201 --devices 1080ti_1,silver_4114,pixel3 "
                       "--valid-devices titanx_1 --out help-meta",
         "edgeprof train meta --db lab.db --space nb201 --devices 1080ti_1,silver_4114,pixel3 "
         "--valid-devices titanx_1 --out help-meta --epochs 20"),
    Step("predictors", "edgeprof adapt help-meta --db lab.db --device raspi4 --samples 10 --out help-raspi4",
         "edgeprof adapt help-meta --db lab.db --device raspi4 --samples 10 --out help-raspi4"),
    # A board unlike HELP's (after the predictor walk: its help-meta and help-raspi4; local-cpu measured for real)
    Step("newboard", "edgeprof evaluate help-raspi4 --db lab.db --device raspi4",
         "edgeprof evaluate help-raspi4 --db lab.db --device raspi4"),
    Step("newboard", f"edgeprof predict help-raspi4 --arch {NB201_ARCH} --interval 0.9",
         f"edgeprof predict help-raspi4 --arch {NB201_ARCH} --interval 0.9"),
    Step("newboard", "edgeprof adapt help-meta --db lab.db --device local-cpu --select 10 --archs-out to-measure.txt",
         "edgeprof adapt help-meta --db lab.db --device local-cpu --select 3 --archs-out to-measure.txt"),
    Step("newboard", "edgeprof profile local-cpu --space nb201 --archs to-measure.txt --db lab.db",
         "edgeprof profile local-cpu --space nb201 --archs to-measure.txt --db lab.db"),
    Step("newboard", "edgeprof adapt help-meta --db lab.db --device local-cpu --archs to-measure.txt --out help-cpu",
         "edgeprof adapt help-meta --db lab.db --device local-cpu --archs to-measure.txt --out help-cpu"),
    # Accuracy, and judging a search on both axes (into the lab.db of the predictor walk)
    Step("accuracy", "edgeprof dataset import nb201-accuracy ../shared/data/NB201-accuracy/cifar100.csv --db lab.db",
         "edgeprof dataset import nb201-accuracy ../shared/data/NB201-accuracy/cifar100.csv --db lab.db"),
    Step("accuracy", "edgeprof train mlp --db lab.db --device raspi4 --space nb201 --train-n 900 --out mlp-raspi4",
         "edgeprof train mlp --db lab.db --device raspi4 --space nb201 --train-n 300 --epochs 30 --out mlp-raspi4"),
    Step("accuracy", "edgeprof search lightnas --device raspi4 --predictor mlp-raspi4 --target-ms 3 --epochs 10 "
                     "--out lightnas-3ms.json",
         "edgeprof search lightnas --device raspi4 --predictor mlp-raspi4 --target-ms 3 --epochs 2 --resolution 16 "
         "--out lightnas-3ms.json"),
    Step("accuracy", "edgeprof search random --device raspi4 --predictor mlp-raspi4 --target-ms 3 --n 1000 "
                     "--out random-3ms.json",
         "edgeprof search random --device raspi4 --predictor mlp-raspi4 --target-ms 3 --n 300 --out random-3ms.json"),
    Step("accuracy", "edgeprof train gbdt --db lab.db --space nb201 --quantity accuracy --task cifar100 --train-n 900 "
                     "--out acc-gbdt",
         "edgeprof train gbdt --db lab.db --space nb201 --quantity accuracy --task cifar100 --train-n 300 "
         "--out acc-gbdt"),
    Step("accuracy", "edgeprof search random --device raspi4 --predictor mlp-raspi4 --target-ms 3 --accuracy-predictor "
                     "acc-gbdt --out random-acc.json",
         "edgeprof search random --device raspi4 --predictor mlp-raspi4 --target-ms 3 --accuracy-predictor "
         "acc-gbdt --out random-acc.json"),
    Step("accuracy", "edgeprof report search lightnas-3ms.json random-3ms.json random-acc.json --db lab.db --device "
                     "raspi4 --task cifar100 --out raspi4-3ms.png",
         "edgeprof report search lightnas-3ms.json random-3ms.json random-acc.json --db lab.db --device "
         "raspi4 --task cifar100 --out raspi4-3ms.png"),
    Step("accuracy", "edgeprof train maml-acc --db lab.db --space nb201 --tasks cifar100 --out acc-meta",
         "edgeprof train maml-acc --db lab.db --space nb201 --tasks cifar100 --out acc-meta --epochs 200"),
    Step("accuracy", "edgeprof adapt acc-meta --db lab.db --task cifar100 --samples 10 --out acc-meta-cifar100",
         "edgeprof adapt acc-meta --db lab.db --task cifar100 --samples 10 --out acc-meta-cifar100"),
    # SurgeNAS, and one search per group of boards (into the lab.db of the accuracy walk)
    Step("surgenas", "edgeprof search surgenas --space nb201 --epochs 10 --out surge-base.json",
         "edgeprof search surgenas --space nb201 --epochs 2 --resolution 16 --proxy-n 60 --batch-size 32 "
         "--out surge-base.json"),
    Step("surgenas", "edgeprof search surgenas --device raspi4 --predictor mlp-raspi4 --beta 0.3 --epochs 10 "
                     "--out surge-beta.json",
         "edgeprof search surgenas --device raspi4 --predictor mlp-raspi4 --beta 0.3 --epochs 2 --resolution 16 "
         "--proxy-n 60 --batch-size 32 --out surge-beta.json"),
    Step("surgenas", "edgeprof search surgenas --device raspi4 --predictor mlp-raspi4 --target-ms 3 --epochs 10 "
                     "--out surge-3ms.json",
         "edgeprof search surgenas --device raspi4 --predictor mlp-raspi4 --target-ms 3 --epochs 2 --resolution 16 "
         "--proxy-n 60 --batch-size 32 --max-trials 2 --out surge-3ms.json"),
    Step("surgenas", "edgeprof report search surge-base.json surge-beta.json surge-3ms.json --db lab.db --device "
                     "raspi4 --task cifar100 --out surge-raspi4.png",
         "edgeprof report search surge-base.json surge-beta.json surge-3ms.json --db lab.db --device "
         "raspi4 --task cifar100 --out surge-raspi4.png"),
    Step("surgenas", "edgeprof devices group --db lab.db --space nb201 --plot groups-nb201.png",
         "edgeprof devices group --db lab.db --space nb201 --plot groups-nb201.png"),
    Step("surgenas", "edgeprof report search surge-3ms.json --db lab.db --device pixel3 --task cifar100 --target 1.2 "
                     "--out surge-pixel3.png",
         "edgeprof report search surge-3ms.json --db lab.db --device pixel3 --task cifar100 --target 1.2 "
         "--out surge-pixel3.png"),
    # Profiling any model, and the Comfort Zone (tests/test_readme_walk_comfort.py walks it, in a workspace of its own)
    Step("comfort", "edgeprof costs --space conv-probe --arch i128-o128",
         "edgeprof costs --space conv-probe --arch i128-o128"),
    Step("comfort", "edgeprof comfort-zone local-cpu --conv --out cz",
         "edgeprof comfort-zone local-cpu --conv --channels 16,32 --out cz"),
    Step("comfort", f"edgeprof comfort-zone local-cpu --width --space mbconv-small --arch {CZ_ARCH} --verify "
                    "--rounds 3 --out cz",
         f"edgeprof comfort-zone local-cpu --width --space mbconv-small --arch {CZ_ARCH} --verify --rounds 1 "
         "--cap 1.25 --out cz"),
    Step("comfort", f"edgeprof costs --space mbconv-small --width 2 --arch {CZ_ARCH}",
         f"edgeprof costs --space mbconv-small --width 2 --arch {CZ_ARCH}"),
    Step("comfort", "edgeprof profile local-cpu --onnx cz/width_scaled.onnx --batch 1,8,32",
         "edgeprof profile local-cpu --onnx cz/width_scaled.onnx --batch 1,8,32"),
    Step("comfort", "edgeprof profile local-cpu --space nb201 --n 3 --batch 1,8,32",
         "edgeprof profile local-cpu --space nb201 --n 1 --batch 1,8,32"),
    Step("comfort", "edgeprof dataset summary", "edgeprof dataset summary"),
    Step("comfort", "edgeprof search surgenas --space nb201 --epochs 10 --device local-cpu --scale --rounds 3 "
                    "--out surge-cz.json",
         "edgeprof search surgenas --space nb201 --epochs 2 --resolution 16 --proxy-n 60 --batch-size 32 "
         "--device local-cpu --scale --rounds 1 --scale-phis 1,2 --out surge-cz.json"),
    # Domino (tests/test_readme_walk_domino.py types them)
    Step("domino", "edgeprof costs --space mobilenetv2 --arch 00000000000000000",
         "edgeprof costs --space mobilenetv2 --arch 00000000000000000"),
    Step("domino", "edgeprof profile local-cpu --space mobilenetv2-small --n 200 --db domino.db",
         "edgeprof profile local-cpu --space mobilenetv2-small --n 6 --db domino.db"),
    Step("domino", "edgeprof train mlp --db domino.db --device local-cpu --space mobilenetv2-small --out lat-mbv2",
         "edgeprof train mlp --db domino.db --device local-cpu --space mobilenetv2-small --out lat-mbv2"),
    Step("domino", "edgeprof graft train --space mobilenetv2-small --n 100 --data digits --task digits --db domino.db",
         "edgeprof graft train --space mobilenetv2-small --n 14 --data digits --task digits --db domino.db "
         "--digits-n 100 --resolution 16"),
    Step("domino", "edgeprof graft train --space mobilenetv2-small --n 30 --seed 1 --data digits --epochs 3 "
                   "--batch-size 64 --task digits-e3 --db domino.db",
         "edgeprof graft train --space mobilenetv2-small --n 12 --seed 1 --data digits --epochs 1 "
         "--batch-size 64 --task digits-e3 --db domino.db --digits-n 100 --resolution 16"),
    Step("domino", "edgeprof train maml-acc --db domino.db --space mobilenetv2-small --tasks digits --out acc-meta",
         "edgeprof train maml-acc --db domino.db --space mobilenetv2-small --tasks digits --out acc-meta "
         "--epochs 50"),
    Step("domino", "edgeprof adapt acc-meta --db domino.db --task digits-e3 --samples 10 --out acc-meta-e3",
         "edgeprof adapt acc-meta --db domino.db --task digits-e3 --samples 10 --out acc-meta-e3"),
    Step("domino", "edgeprof search domino --device local-cpu --space mobilenetv2-small --latency-predictor lat-mbv2 "
                   "--accuracy-predictor acc-meta-e3 --verify --verify-max 8 --rounds 3 --db domino.db "
                   "--out pareto.json",
         "edgeprof search domino --device local-cpu --space mobilenetv2-small --latency-predictor lat-mbv2 "
         "--accuracy-predictor acc-meta-e3 --verify --verify-max 4 --rounds 1 --db domino.db --out pareto.json "
         "--population 20 --generations 5"),
    Step("domino", "edgeprof graft train --space mobilenetv2-small --masks 01101111000011110 --data digits --epochs 3 "
                   "--batch-size 64 --task digits-e3 --save-weights weights --db domino.db",
         "edgeprof graft train --space mobilenetv2-small --masks 01101111000011110 --data digits --epochs 1 "
         "--batch-size 64 --task digits-e3 --save-weights weights --db domino.db --digits-n 100 --resolution 16"),
    Step("domino", "edgeprof graft merge --space mobilenetv2-small --mask 01101111000011110 "
                   "--weights weights/mobilenetv2-small-01101111000011110.pt --out merged.onnx",
         "edgeprof graft merge --space mobilenetv2-small --mask 01101111000011110 "
         "--weights weights/mobilenetv2-small-01101111000011110.pt --out merged.onnx"),
    Step("domino", "edgeprof profile local-cpu --onnx merged.onnx --batch 1,8 --db domino.db",
         "edgeprof profile local-cpu --onnx merged.onnx --batch 1,8 --db domino.db"),
    # Zero-shot search (tests/test_readme_walk_zeroshot.py walks it, in a workspace of its own)
    Step("zeroshot", "edgeprof proxies list", "edgeprof proxies list"),
    Step("zeroshot", "edgeprof proxies evaluate --space nb201 --db lab.db --task cifar100 --n 50 --proxies "
                     "params,flops,tpc,synflow,naswot,jacob_cov --naslib ../shared/data/NASLib-zc/zc_nasbench201.json "
                     "--scores scores.jsonl",
         "edgeprof proxies evaluate --space nb201 --db lab.db --task cifar100 --n 8 --proxies "
         "params,flops,tpc,synflow,naswot,jacob_cov --naslib ../shared/data/NASLib-zc/zc_nasbench201.json "
         "--scores scores.jsonl --batch-size 16"),
    Step("zeroshot", "edgeprof proxies pareto --space nb201 --device raspi4 --db lab.db --task cifar100 --proxies "
                     "params,flops,tpc,synflow,naswot --n 100 --scores scores.jsonl --out front.png",
         "edgeprof proxies pareto --space nb201 --device raspi4 --db lab.db --task cifar100 --proxies "
         "params,flops,tpc,synflow,naswot --n 8 --scores scores.jsonl --out front.png --batch-size 16"),
    Step("zeroshot", "edgeprof proxies evaluate --space nb201 --db lab.db --task cifar100 --n 8 --batch-size 64 "
                     "--proxies bte,tse --scores scores.jsonl",
         "edgeprof proxies evaluate --space nb201 --db lab.db --task cifar100 --n 3 --batch-size 32 "
         "--proxies bte,tse --scores scores.jsonl"),
    Step("zeroshot", "edgeprof search zeroshot --device raspi4 --predictor mlp-raspi4 --proxy tpc --max-latency-ms 20 "
                     "--out zs-raspi4.json",
         "edgeprof search zeroshot --device raspi4 --predictor mlp-raspi4 --proxy tpc --max-latency-ms 20 "
         "--out zs-raspi4.json --iterations 20000"),
    Step("zeroshot", "edgeprof search zeroshot --device raspi4 --predictor mlp-raspi4 --proxy synflow --max-latency-ms "
                     "20 --population 50 --batch 8 --iterations 1000 --out zs-synflow.json",
         "edgeprof search zeroshot --device raspi4 --predictor mlp-raspi4 --proxy synflow --max-latency-ms "
         "20 --population 10 --batch 8 --iterations 40 --out zs-synflow.json"),
    Step("zeroshot", "edgeprof search ftso --device raspi4 --predictor mlp-raspi4 --max-latency-ms 20 "
                     "--out ftso-raspi4.json",
         "edgeprof search ftso --device raspi4 --predictor mlp-raspi4 --max-latency-ms 20 --out ftso-raspi4.json "
         "--iterations 2 --proxy-n 60 --batch-size 32"),
    Step("zeroshot", "edgeprof report search zs-raspi4.json zs-synflow.json ftso-raspi4.json --db lab.db --device "
                     "raspi4 --task cifar100 --out zeroshot-raspi4.png",
         "edgeprof report search zs-raspi4.json zs-synflow.json ftso-raspi4.json --db lab.db --device "
         "raspi4 --task cifar100 --out zeroshot-raspi4.png"),
    Step("zeroshot", "edgeprof search zeroshot --device local-cpu --predictor mlp-cpu --max-latency-ms p50 --verify "
                     "--rounds 3 --measure-final 3 --db lab.db --out zs-cpu.json",
         "edgeprof search zeroshot --device local-cpu --predictor mlp-cpu --max-latency-ms p50 --verify "
         "--rounds 1 --measure-final 2 --db lab.db --out zs-cpu.json --iterations 20000"),
    Step("", "make test TEST_WORKERS=0", covered_by="the suite in one process: what `make test` runs, without -n"),
    # Hardware-aware search (into the lab.db of the predictor walk, from this CPU)
    Step("search", "edgeprof profile local-cpu --space mbconv-small --n 60 --db lab.db",
         "edgeprof profile local-cpu --space mbconv-small --n 12 --db lab.db"),
    Step("search", "edgeprof train mlp --db lab.db --device local-cpu --space mbconv-small --out mlp-cpu",
         "edgeprof train mlp --db lab.db --device local-cpu --space mbconv-small --out mlp-cpu"),
    Step("search", "edgeprof train gnn --db lab.db --device local-cpu --space mbconv-small --out gnn-cpu",
         "edgeprof train gnn --db lab.db --device local-cpu --space mbconv-small --out gnn-cpu"),
    Step("search", "edgeprof search --help", "edgeprof search --help"),
    Step("search", "edgeprof search lightnas --help", "edgeprof search lightnas --help"),
    Step("search", "edgeprof search lightnas --device local-cpu --predictor mlp-cpu --target-ms p50 --proxy digits "
                   "--resolution 64 --epochs 10 --verify --rounds 5 --db lab.db --out found.json",
         "edgeprof search lightnas --device local-cpu --predictor mlp-cpu --target-ms p50 --proxy digits "
         "--resolution 16 --epochs 2 --verify --rounds 1 --db lab.db --out found.json"),
    Step("search", "edgeprof search lightnas --device local-cpu --predictor mlp-cpu --target-ms p50 --proxy digits "
                   "--resolution 64 --epochs 10 --verify --rounds 5 --correct 3 --tolerance 0.02 "
                   "--loop-predictor gnn-cpu --db lab.db --out found.json",
         "edgeprof search lightnas --device local-cpu --predictor mlp-cpu --target-ms p50 --proxy digits "
         "--resolution 16 --epochs 2 --verify --rounds 1 --correct 3 --tolerance 0.02 "
         "--loop-predictor gnn-cpu --db lab.db --out found.json"),
    Step("", "torchrun --nproc-per-node 4 -m edgeprof search lightnas --device xavier --predictor mlp-xavier "
             "--target-ms 24 --data /data/imagenet100 --epochs 90 --out found.json",
         covered_by="needs GPUs, a Xavier's predictor and ImageNet-100: tests/hwsearch/test_hwsearch_distributed.py "
                    "runs the same DDP search in 2 gloo processes on the CPU"),
    Step("", "edgeprof search NAME", covered_by="a placeholder in prose for any registered search"),
    # ... its open-loop remedy and LightNAS stage 2 (tests/test_readme_walk_search.py, after the search walk)
    Step("channels", "edgeprof train mlp-ensemble --db lab.db --device local-cpu --space mbconv-small --out ens-cpu",
         "edgeprof train mlp-ensemble --db lab.db --device local-cpu --space mbconv-small --out ens-cpu"),
    Step("channels", "edgeprof search lightnas --device local-cpu --predictor ens-cpu --target-ms p50 --proxy digits "
                     "--resolution 64 --epochs 10 --verify --rounds 5 --db lab.db --out found-ens.json",
         "edgeprof search lightnas --device local-cpu --predictor ens-cpu --target-ms p50 --proxy digits "
         "--resolution 16 --epochs 2 --verify --rounds 1 --db lab.db --out found-ens.json"),
    Step("channels", "edgeprof profile local-cpu --space mbconv-channels --space-config '{\"base\": \"found.json\"}' "
                     "--n 200 --db lab.db",
         "edgeprof profile local-cpu --space mbconv-channels --space-config '{\"base\": \"found.json\"}' "
         "--n 8 --db lab.db"),
    Step("channels", "edgeprof train mlp --db lab.db --device local-cpu --space mbconv-channels --out mlp-channels",
         "edgeprof train mlp --db lab.db --device local-cpu --space mbconv-channels --out mlp-channels"),
    Step("channels", "edgeprof search lightnas-channels --base found.json --device local-cpu --predictor mlp-channels "
                     "--target-ms p50 --verify --rounds 5 --db lab.db --out found2.json",
         "edgeprof search lightnas-channels --base found.json --device local-cpu --predictor mlp-channels "
         "--target-ms p50 --verify --rounds 1 --db lab.db --out found2.json --population 4 --iterations 2 "
         "--top-k 2 --images 32 --batch-size 16 --resolution 8 --epochs 2"),
    # Add a board (its config is the README's own TOML block, pointed at a loopback sshd)
    Step("board", "edgeprof trust xavier", "edgeprof trust xavier", stdin="y\n"),
    Step("board", "edgeprof deploy xavier", "edgeprof deploy xavier"),
    Step("board", "edgeprof profile xavier --space nb201 --n 200 --db lab.db",
         "edgeprof profile xavier --space nb201 --n 2 --db lab.db"),
    Step("board", "edgeprof profile xavier,nano,tx2 --space nb201 --n 200 --db lab.db",
         "edgeprof profile xavier,nano,tx2 --space nb201 --n 3 --db lab.db"),
]

BENCHMARKS = sorted(p.name for p in (REPO / "benchmarks").glob("*.py"))


def benchmark_steps(readme: list[str]) -> list[Step]:
    """The README's benchmark lines are run by tests/test_benchmarks_smoke.py (each with --quick --json)."""
    return [Step("", c, covered_by="tests/test_benchmarks_smoke.py runs it with --quick --json")
            for c in readme if re.match(r"\.venv/bin/python benchmarks/\w+\.py", c)]


def all_steps() -> list[Step]:
    return WALK + benchmark_steps(load(REPO / "README.md"))


def test_every_readme_command_is_walked() -> None:
    readme = load(REPO / "README.md")
    listed = [s.readme for s in all_steps()]
    missing = [c for c in readme if c not in listed]
    gone = [c for c in listed if c not in readme]
    assert not missing, f"README commands nobody walks (add them to WALK): {missing}"
    assert not gone, f"WALK lists commands the README no longer has: {gone}"
    for s in all_steps():
        assert bool(s.typed) != bool(s.covered_by), s
        if s.typed:
            assert as_written(s.readme, s.typed), f"walked line differs from the README beyond size: {s}"


# ---- the walk ------------------------------------------------------------------------------------------


class Workspace:
    """A user's world: a fresh HOME, a work folder beside ../shared with the repo's .venv, boards on sshd."""

    def __init__(self, root: Path) -> None:
        self.root, self.home, self.work = root, root / "home", root / "work"
        self.home.mkdir()
        self.work.mkdir()
        (self.work / ".venv").symlink_to(REPO / ".venv")
        (root / "shared").symlink_to(SHARED)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "SSH_AUTH_SOCK"))}
        self.env.update(HOME=str(self.home), EDGEPROF_SSH_CONFIG=str(self.home / "no-ssh-config"),
                        PATH=os.defpath + os.pathsep + os.environ.get("PATH", ""))
        self.servers: list[SshServer] = []

    def type(self, steps: list[Step]) -> list[subprocess.CompletedProcess[str]]:
        """Type each step in one bash session per step (after activating the venv, as the README does)."""
        done = []
        for s in steps:
            line = s.typed if s.typed.startswith(". ") else f". .venv/bin/activate && {s.typed}"
            # a prompt is answered on a terminal, as a user would: `script` gives the command a pty
            argv = ["script", "-qec", f"bash -c {shlex.quote(line)}", "/dev/null"] if s.stdin else ["bash", "-c", line]
            r = subprocess.run(argv, cwd=self.work, env=self.env, input=s.stdin, text=True,
                               capture_output=True, timeout=900, check=False)
            assert r.returncode == 0, f"`{s.typed}` exited {r.returncode}:\n{r.stderr[-3000:]}"
            assert "Traceback" not in r.stderr, r.stderr
            done.append(r)
        return done

    def board(self, name: str, toml: str) -> SshServer:
        """A loopback sshd and ./device_configs/NAME.toml: the README's TOML with its host, user, key, python
        and work folder pointed at it (the rest as written)."""
        key = self.home / ".ssh" / f"edgeprof_{name}"
        key.parent.mkdir(exist_ok=True)
        if not key.exists():
            keygen(key)
        server = SshServer(self.root / f"sshd-{name}", key).start()
        self.servers.append(server)
        text = toml.replace('name = "xavier"', f'name = "{name}"')
        text = re.sub(r'host = "[^"]*"', f'host = "127.0.0.1"\nport = {server.port}', text)
        text = re.sub(r'user = "[^"]*"', f'user = "{getpass.getuser()}"', text)
        text = re.sub(r'identity_file = "[^"]*"', f'identity_file = "{key}"', text)
        text = re.sub(r'python = "[^"]*"', f'python = "{sys.executable}"', text)
        # each loopback "board" is this machine under one login: its own work folder keeps them apart
        text = re.sub(r'workdir = "[^"]*"', f'workdir = "{self.root / ("board-" + name)}"', text)
        (self.work / "device_configs").mkdir(exist_ok=True)
        (self.work / "device_configs" / f"{name}.toml").write_text(text)
        return server

    def short_protocol(self, device: str = "local-cpu") -> None:
        """./device_configs/DEVICE.toml: the built-in config with a short measurement protocol (3 warm-up runs,
        5 to 30 timed). The commands stay as written; what shrinks is how long each network is timed, a size
        like --n (the suite's time budget), while every measurement still goes through the agent."""
        text = (REPO / "device_configs" / f"{device}.toml").read_text()
        protocol = ("[protocol]\nwarmup_min_runs = 3\nwarmup_min_s = 0.05\nmin_runs = 5\nmax_runs = 30\n"
                    "target_rel_ci = 0.05\n")
        text = re.sub(r"\[protocol\]\n(?:[^\[]*\n)*?(?=\[|\Z)", protocol, text + "\n")
        assert "warmup_min_s = 0.05" in text, text
        (self.work / "device_configs").mkdir(exist_ok=True)
        (self.work / "device_configs" / f"{device}.toml").write_text(text)

    def close(self) -> None:
        for s in self.servers:
            s.stop()


def readme_toml() -> str:
    text = (REPO / "README.md").read_text()
    (block,) = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    return block


def steps(section: str) -> list[Step]:
    return [s for s in WALK if s.section == section]


def workspace_fixture(name: str) -> Any:
    """A module-scoped `ws` fixture: one user's workspace per walk file (the files run on separate workers)."""

    @pytest.fixture(scope="module")
    def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
        w = Workspace(tmp_path_factory.mktemp(name))
        yield w
        w.close()

    return ws


ws = workspace_fixture("readme")


@pytest.mark.slow
@pytest.mark.ssh
def needs_sshd() -> None:
    if find_sshd() is None:
        pytest.skip("sshd is not installed (Debian package openssh-server): the README's board steps need it")


def test_walk_using_it(ws: Workspace) -> None:
    needs_sshd()
    ws.board("xavier", readme_toml())
    ran = dict(zip([s.readme for s in steps("using")], ws.type(steps("using")), strict=True))
    assert "xavier" in ran["edgeprof devices"].stdout and "local-cpu" in ran["edgeprof devices"].stdout
    trusted = ran["edgeprof trust xavier && edgeprof deploy xavier"]
    assert "SHA256:" in trusted.stdout + trusted.stderr and "recorded in" in trusted.stdout + trusted.stderr
    summary = json.loads(ran["edgeprof dataset summary --db x.db --json"].stdout)
    assert {(g["space"], g["ok"]) for g in summary["groups"]} == {("nb201", 3)}
    assert (ws.work / "x.parquet").stat().st_size > 0
    layers = ran["edgeprof dataset layers --db x.db --device local-cpu --space mbconv-small"].stdout
    assert "stem" in layers and "L00" in layers


@pytest.mark.slow
def test_walk_latency_predictors(ws: Workspace) -> None:
    ran = dict(zip([s.readme for s in steps("predictors")], ws.type(steps("predictors")), strict=True))
    metrics = json.loads(ran["edgeprof evaluate gnn-raspi4 --db lab.db --device raspi4 --json"].stdout)["metrics"]
    assert metrics["n"] == 15625 - 200 and metrics["spearman"] > 0.5
    assert float(re.findall(r"[0-9.]+", ran[f"edgeprof predict gnn-raspi4 --arch {NB201_ARCH}"].stdout)[-1]) > 0
    assert (ws.work / "rep" / "scatter.png").stat().st_size > 0
    card = json.loads((ws.work / "help-raspi4" / "card.json").read_text())
    assert card["devices"] == ["raspi4"]


@pytest.mark.slow
def test_walk_a_board_unlike_helps(ws: Workspace) -> None:
    if not (ws.work / "help-raspi4").exists():  # run alone: the predictor walk made these
        ws.type([Step("", "", "edgeprof dataset import help ../shared --space nb201 --db lab.db"),
                 Step("", "", "edgeprof train meta --db lab.db --space nb201 --devices 1080ti_1,silver_4114,pixel3 "
                              "--valid-devices titanx_1 --out help-meta --epochs 20"),
                 Step("", "", "edgeprof adapt help-meta --db lab.db --device raspi4 --samples 10 --out help-raspi4")])
    ran = dict(zip([s.readme for s in steps("newboard")], ws.type(steps("newboard")), strict=True))
    said = ran["edgeprof evaluate help-raspi4 --db lab.db --device raspi4"].stderr
    assert "expected MAPE" in said and "(leave-one-out over 10 samples); measured MAPE" in said
    line = ran[f"edgeprof predict help-raspi4 --arch {NB201_ARCH} --interval 0.9"].stdout
    lo, hi = (float(x) for x in re.search(r"90% interval ([0-9.]+) to ([0-9.]+) ms", line).groups())
    assert 0 < lo < float(line.split()[0]) < hi
    # a board with nothing measured: its 10 references first, then 3 device-free picks; measured for real
    listed = [a for a in (ws.work / "to-measure.txt").read_text().split() if not a.startswith("#") and "|" in a]
    assert len(listed) == 13
    rows = sqlite3.connect(ws.work / "lab.db").execute(
        "SELECT COUNT(DISTINCT m.arch_id) FROM measurements r JOIN models m ON r.model_sha256 = m.sha256 "
        "WHERE r.device = 'local-cpu' AND r.status = 'ok' AND m.space = 'nb201'").fetchone()
    assert rows[0] == 13
    card = json.loads((ws.work / "help-cpu" / "card.json").read_text())
    assert card["devices"] == ["local-cpu"] and card["expected_error"]["k"] == 3


@pytest.mark.slow
def test_walk_accuracy_and_judging_a_search(ws: Workspace) -> None:
    if not (ws.work / "lab.db").exists():  # run alone: the predictor walk imported HELP's tables
        ws.type([Step("predictors", "", "edgeprof dataset import help ../shared --space nb201 --devices raspi4 "
                                        "--db lab.db")])
    ran = dict(zip([s.readme for s in steps("accuracy")], ws.type(steps("accuracy")), strict=True))
    rows = sqlite3.connect(ws.work / "lab.db").execute(
        "SELECT COUNT(*), MAX(value) FROM accuracies WHERE space = 'nb201' AND task = 'cifar100'").fetchone()
    assert rows[0] == 15625 and rows[1] == 73.5133
    report = ran[steps("accuracy")[6].readme]
    # one row per result, the two random runs told apart by file; accuracy and regret in every row
    assert "lightnas" in report.stdout and "random (random-3ms)" in report.stdout
    assert "random (random-acc)" in report.stdout and "regret" in report.stdout
    assert (ws.work / "raspi4-3ms.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("lightnas-3ms.json", "random-3ms.json", "random-acc.json"):
        res = json.loads((ws.work / name).read_text())
        assert res["space"] == "nb201" and res["target"] == 3.0 and res["device"] == "raspi4"
    assert json.loads((ws.work / "random-acc.json").read_text())["proxy"] != \
        json.loads((ws.work / "random-3ms.json").read_text())["proxy"]
    for pred in ("acc-gbdt", "acc-meta", "acc-meta-cifar100"):
        card = json.loads((ws.work / pred / "card.json").read_text())
        assert card["quantity"] == "accuracy" and card["devices"] == []


@pytest.mark.slow
def test_walk_surgenas_and_device_groups(ws: Workspace) -> None:
    if not (ws.work / "mlp-raspi4").exists():  # run alone: the predictor and accuracy walks made these
        ws.type([Step("", "", "edgeprof dataset import help ../shared --space nb201 --devices raspi4,pixel3,gold_6226 "
                              "--db lab.db"),
                 Step("", "", "edgeprof dataset import nb201-accuracy ../shared/data/NB201-accuracy/cifar100.csv "
                              "--db lab.db"),
                 Step("", "", "edgeprof train mlp --db lab.db --device raspi4 --space nb201 --train-n 300 "
                              "--epochs 30 --out mlp-raspi4")])
    ran = dict(zip([s.readme for s in steps("surgenas")], ws.type(steps("surgenas")), strict=True))
    base, beta, target = (json.loads((ws.work / f"surge-{n}.json").read_text()) for n in ("base", "beta", "3ms"))
    assert base["beta"] == 0.0 and base["predicted"] is None and base["fairness"]["equal"]
    assert beta["beta"] == 0.3 and beta["target"] is None and beta["predicted"] > 0
    assert target["target"] == 3.0 and 1 <= len(target["trials"]) <= 2 and target["device"] == "raspi4"
    assert [t["arch_id"] for t in target["trials"] if t["chosen"]] == [target["arch_id"]]
    for name in ("surge-base", "surge-beta", "surge-3ms"):
        assert (ws.work / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    report = ran[steps("surgenas")[3].readme].stdout
    assert report.count("surgenas") == 3 and "regret" in report
    groups = ran[steps("surgenas")[4].readme].stdout
    assert "raspi4" in groups and "pixel3" in groups
    assert (ws.work / "groups-nb201.png").read_bytes()[:4] == b"\x89PNG"
    member = ran[steps("surgenas")[5].readme].stdout
    assert "1.2" in member and (ws.work / "surge-pixel3.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.ssh
def test_walk_add_a_board(ws: Workspace) -> None:
    needs_sshd()
    if not (ws.work / "device_configs" / "xavier.toml").exists():  # run alone: the "using" walk made none
        ws.board("xavier", readme_toml())
    for name in ("nano", "tx2"):  # the fleet line names three boards
        ws.board(name, readme_toml())
        known = ws.home / ".ssh" / "known_hosts"
        server = ws.servers[-1]
        with known.open("a") as f:  # as if `edgeprof trust NAME` had been answered for them too
            f.write(f"[127.0.0.1]:{server.port} {server.host_public_key()}\n")
    ws.type(steps("board"))
    rows = sqlite3.connect(ws.work / "lab.db").execute(
        "SELECT device, COUNT(*) FROM measurements WHERE status = 'ok' AND device IN ('xavier', 'nano', 'tx2') "
        "GROUP BY device ORDER BY device").fetchall()
    assert rows == [("nano", 3), ("tx2", 3), ("xavier", 3)]
