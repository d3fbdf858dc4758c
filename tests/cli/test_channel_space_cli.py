"""The stage-2 data path as a user types it: profile channel configs of a found LightNet (`--space-config
'{"base": "found.json"}'`), see them in the dataset, train the LightNet's predictor and predict with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli

from profiler.importing import imported_model, imported_result
from profiler.store import Store
from spaces import create_space

TINY = {"width_mult": 0.25, "resolution": 32, "num_classes": 10, "stage_repeats": [4, 4, 4, 4, 4, 1]}
BASE = "k3e3-k7e6-k7e3-skip-k5e6-k5e6-k3e6-k3e3-k3e3-k5e3-k5e6-k3e6-k3e6-k3e3-k5e6-k7e6-k3e3-skip-k5e3-k7e6-k5e3"


@pytest.fixture
def found(tmp_path: Path) -> Path:
    """The fields of a LightNAS result the channel space reads (what `edgeprof search lightnas` writes)."""
    path = tmp_path / "found.json"
    path.write_text(json.dumps({"search": "lightnas", "arch_id": BASE, "space": "mbconv-small",
                                "space_config": TINY}))
    return path


def test_profile_train_predict_channel_configs(found: Path, fast_cpu_config: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "ch.db"
    config = json.dumps({"base": str(found)})
    code, _, err = cli(capsys, "profile", fast_cpu_config, "--space", "mbconv-channels", "--space-config", config,
                       "--n", 2, "--db", db, "-q")
    assert code == 0, err
    code, stdout, err = cli(capsys, "dataset", "summary", "--db", db, "--json")
    assert code == 0, err
    (group,) = json.loads(stdout)["groups"]
    assert (group["space"], group["ok"], group["device"]) == ("mbconv-channels", 2, "fast-cpu")
    space = create_space("mbconv-channels", base=str(found))
    with Store(db) as store:  # the store keeps the canonical config (the base's arch id, not the file)
        stored = [json.loads(c) for (c,) in store.db.execute("SELECT space_config FROM models").fetchall()]
    assert stored == [space.config] * 2 and space.config["base"] == BASE
    # a LightNet's predictor wants many configs: 40 more as a lab table of another device (latency grows with
    # the scales), then train picks the space config from the store and predict needs no config at all
    archs = space.sample_unique(40, np.random.default_rng(1))
    with Store(db) as store:
        models = [imported_model(space, a) for a in archs]
        store.add_models(models)
        store.add_device("lab", "cpu", {})
        store.add_results([imported_result(job_id="lab", task_id=str(i), model_sha256=m.sha256, device="lab",
                                           median_ms=2.0 + sum(space.scales(a)) / 10, environment={})
                           for i, (m, a) in enumerate(zip(models, archs, strict=True))])
    out = tmp_path / "p"
    code, stdout, err = cli(capsys, "train", "mlp", "--space", "mbconv-channels", "--device", "lab", "--db", db,
                            "--out", out, "--epochs", 30, "--json")
    assert code == 0, err
    assert json.loads(stdout)["metrics"]["n_target_samples"] == 32
    ids = [space.arch_id((s,) * space.n_layers) for s in (0, 6)]
    code, stdout, err = cli(capsys, "predict", out, "--arch", ids[0], "--arch", ids[1], "--json")
    assert code == 0, err
    narrow, wide = (p["predicted_ms"] for p in json.loads(stdout)["predictions"])
    assert 0 < narrow < wide


def test_space_config_errors_exit_2(found: Path, fast_cpu_config: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "x.db"
    cases = [("mbconv-small", '{"widht_mult": 0.5}', "no config key(s) widht_mult"),
             ("mbconv-channels", '{"base": "nowhere.json"}', "cannot read base result nowhere.json"),
             ("mbconv-channels", json.dumps({"base": BASE[5:]}), "bad base"),
             ("mbconv-channels", json.dumps({"base": str(found), "resolution": 64}), "resolution=64 given")]
    for name, config, message in cases:
        code, _, err = cli(capsys, "profile", fast_cpu_config, "--space", name, "--space-config", config,
                           "--n", 2, "--db", db)
        assert code == 2 and message in err, err
    code, _, err = cli(capsys, "profile", fast_cpu_config, "--space", "mbconv-small", "--space-config", "[1]",
                       "--n", 2, "--db", db)
    assert code == 2 and "must be a JSON object" in err, err
    assert not db.exists()
