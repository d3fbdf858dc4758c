"""The README's "Zero-shot search" section walked as a user types it, on this CPU (small sizes).

Its steps are in tests/test_readme_walk.py's WALK (the one list of README commands); this file types them in a
workspace of its own, so the walk runs beside the others under pytest-xdist (a file goes to one worker). The
lab.db it continues in is made first as the earlier sections make it (HELP's raspi4 table, NB201's accuracies,
the raspi4 MLP; this CPU's mbconv-small networks and their MLP), by those sections' commands at small sizes.
"""

from __future__ import annotations

import json

import pytest
from test_readme_walk import Step, Workspace, steps, workspace_fixture

ws = workspace_fixture("readme-zeroshot")
SETUP = [  # what the earlier sections leave in lab.db, typed as they type it (small sizes)
    "edgeprof dataset import help ../shared --space nb201 --devices raspi4 --db lab.db",
    "edgeprof dataset import nb201-accuracy ../shared/data/NB201-accuracy/cifar100.csv --db lab.db",
    "edgeprof train mlp --db lab.db --device raspi4 --space nb201 --train-n 300 --epochs 30 --out mlp-raspi4",
    "edgeprof profile local-cpu --space mbconv-small --n 8 --db lab.db",
    "edgeprof train mlp --db lab.db --device local-cpu --space mbconv-small --out mlp-cpu",
]


@pytest.mark.slow
def test_walk_zeroshot(ws: Workspace) -> None:
    ws.short_protocol("local-cpu")  # the commands as written; each network timed briefly (a size)
    setup = ws.type([Step("zeroshot", "", line) for line in SETUP])
    assert all(r.returncode == 0 for r in setup), [r.stderr[-2000:] for r in setup if r.returncode]
    walk = steps("zeroshot")
    ran = dict(zip([s.readme for s in walk], ws.type(walk), strict=True))

    def out(prefix: str) -> str:
        return next(r.stdout + r.stderr for k, r in ran.items() if k.startswith(prefix))

    listed = ran["edgeprof proxies list"].stdout
    for name in ("tpc", "tpc-table8", "params", "flops", "grad_norm", "snip", "grasp", "fisher", "synflow",
                 "jacob_cov", "naswot", "zen", "ntk_cond"):
        assert name in listed, name
    evaluated = out("edgeprof proxies evaluate")
    assert "synflow" in evaluated and "naswot" in evaluated and "NASLib" in evaluated
    cached = [json.loads(line) for line in (ws.work / "scores.jsonl").read_text().splitlines()]
    assert {r["proxy"] for r in cached} >= {"params", "tpc", "synflow", "naswot", "jacob_cov"}
    # evaluate scored 8 cells (NASLib's first); pareto's --n 8 took the same ones from --scores: nothing more
    assert sum(r["proxy"] == "synflow" for r in cached) == 8
    trained = out("edgeprof proxies evaluate --space nb201 --db lab.db --task cifar100 --n 8 --batch-size 64")
    assert "bte" in trained and "tse" in trained  # the training proxies, asked for by name
    assert sum(r["proxy"] == "bte" for r in cached) == sum(r["proxy"] == "tse" for r in cached) == 3
    front = json.loads((ws.work / "front.json").read_text())
    assert (ws.work / "front.png").read_bytes()[:4] == b"\x89PNG"
    assert "params" in json.dumps(front) and "gap" in json.dumps(front)

    zs = json.loads((ws.work / "zs-raspi4.json").read_text())
    assert zs["search"] == "zeroshot" and zs["proxy"] == "tpc" and zs["device"] == "raspi4"
    assert zs["predicted"] <= 20.0 and zs["target"] == 20.0
    syn = json.loads((ws.work / "zs-synflow.json").read_text())
    assert syn["proxy"] == "synflow" and syn["predicted"] <= 20.0
    ftso = json.loads((ws.work / "ftso-raspi4.json").read_text())
    assert ftso["search"] == "ftso" and ftso["operator"] == "budget" and ftso["predicted"] <= 20.0
    assert len(ftso["kept"]) == 5 and len(ftso["ops"]) == 6
    report = out("edgeprof report search zs-raspi4.json")
    assert "zeroshot" in report and "ftso" in report and "regret" in report
    assert (ws.work / "zeroshot-raspi4.png").read_bytes()[:4] == b"\x89PNG"

    cpu = json.loads((ws.work / "zs-cpu.json").read_text())
    assert cpu["device"] == "local-cpu" and cpu["verify"]["median"] > 0 and cpu["verify"]["rounds"] == 1
    final = cpu["measure_final"]
    assert final["device"] == "local-cpu" and 1 <= len(final["candidates"]) <= 2
    assert all(c["measured"] > 0 for c in final["candidates"])
