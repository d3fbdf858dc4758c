"""`edgeprof adapt META --device DEV --select K --archs-out FILE`, then the archs measured, then
`adapt META --device DEV --archs FILE --out DIR`: choosing which networks to measure on a new board, end to
end on a small store (measurements inserted as `profile --archs` would store them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli

from edgeprof.commands.profile import read_archs
from predictors.acquisition import DEFAULT_RULE, RULES
from predictors.hardware_adaptive import HELP_NB201_REFERENCE
from spaces import create_space

TINY = {"hidden": [8], "meta_iters": 3, "meta_batch": 1, "n_support": 5, "n_query": 10, "inner_steps": 1}
SPACE = create_space("nb201")
OTHERS = [i for i in range(0, 15625, 37) if i not in HELP_NB201_REFERENCE]


def op_cost_ms(seed: int, arch: tuple[int, ...]) -> float:
    """A synthetic device: a fixed cost per op, summed over the cell's 6 edges."""
    return 1.0 + float(np.random.default_rng(seed).uniform(0.1, 2.0, 5)[list(arch)].sum())


def measure(db: Path, device: str, seed: int, arch_ids: list[str]) -> None:
    """Store ok measurements of `arch_ids` on `device` (what `edgeprof profile --archs` leaves behind)."""
    from profiler.importing import imported_model, imported_result
    from profiler.store import Store

    archs = [SPACE.parse(a) for a in arch_ids]
    models = [imported_model(SPACE, a) for a in archs]
    with Store(db) as store:
        store.add_device(device, "cpu", {})
        store.add_models(models)
        store.add_results([imported_result(job_id=f"{device}-{len(arch_ids)}-{arch_ids[0]}", task_id=str(k),
                                           model_sha256=m.sha256, device=device, median_ms=op_cost_ms(seed, a),
                                           environment={}, backend="onnxruntime", precision="fp32")
                           for k, (m, a) in enumerate(zip(models, archs, strict=True))])


@pytest.fixture(scope="module")
def meta(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(store, meta-trained tiny HelpEnsemble folder): sources s1, s2 (120 archs + the references) and a
    board measured on 30 archs but not on the references."""
    from predictors.help_ensemble import HelpEnsemble
    from predictors.io import save_predictor

    folder = tmp_path_factory.mktemp("select")
    db = folder / "s.db"
    ids = [SPACE.arch_id(SPACE.from_index(i)) for i in OTHERS]
    refs = [SPACE.arch_id(SPACE.from_index(i)) for i in HELP_NB201_REFERENCE]
    tasks = {}
    for seed in (1, 2):
        measure(db, f"s{seed}", seed, [*ids[:120], *refs])
        tasks[f"s{seed}"] = ([*ids[:120], *refs], np.array([op_cost_ms(seed, SPACE.parse(a)) for a in
                                                              [*ids[:120], *refs]]))
    measure(db, "board", 3, ids[200:230])
    pred = HelpEnsemble(space="nb201", members=[TINY, TINY]).meta_fit(tasks)
    save_predictor(pred, folder / "meta", devices=["s1", "s2"])
    return db, folder / "meta"


def test_select_measure_then_adapt_on_the_listed_archs(meta: tuple[Path, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    db, folder = meta
    refs = [SPACE.arch_id(SPACE.from_index(i)) for i in HELP_NB201_REFERENCE]
    first = tmp_path / "first.txt"
    # the board lacks its references: they come first, then K picks of a device-free rule, whatever was asked
    code, out, err = cli(capsys, "adapt", folder, "--db", db, "--device", "board", "--select", "4", "--rule",
                         "coverage", "--archs-out", first, "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert (rep["rule"], rep["rule_asked"], rep["references_measured"], rep["k"]) == ("doptimal", "coverage", False, 4)
    listed = [SPACE.arch_id(a) for a in read_archs(str(first), SPACE)]  # what `profile --archs` reads
    assert listed == rep["archs"] and listed[:10] == refs and len(set(listed[10:]) - set(refs)) == 4
    assert rep["candidates"] == 15625 - 10 - 30  # the whole space less the references and the measured archs
    told = tmp_path / "to measure.txt"  # the commands it prints quote a path with a space
    code, _, err = cli(capsys, "adapt", folder, "--db", db, "--device", "board", "--select", "4", "--archs-out", told,
                       "--candidates", "200")
    assert code == 0 and "10 of the 10 reference latencies are not in the store" in err
    said = " ".join(err.split())  # rich wraps long lines
    assert f"edgeprof profile board --space nb201 --archs '{told}'" in said and f"--archs '{told}' --out" in said
    # measured as profile --archs would; now the rule runs on the references from the store
    measure(db, "board", 3, listed)
    second = tmp_path / "second.txt"
    code, out, err = cli(capsys, "adapt", folder, "--db", db, "--device", "board", "--select", "5", "--archs-out",
                         second, "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert (rep["rule"], rep["references_measured"]) == (DEFAULT_RULE, True)
    assert not set(rep["archs"]) & set(listed) and rep["candidates"] == 15625 - 10 - 30 - 4
    # adapt on exactly the listed archs (the references in the file are read from the store, not counted)
    code, out, err = cli(capsys, "adapt", folder, "--db", db, "--device", "board", "--archs", first, "--out",
                         tmp_path / "adapted", "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["samples"] == 4 and rep["metrics"]["n"] == 30  # scored on the 30 measured archs it did not use
    card = json.loads((tmp_path / "adapted" / "card.json").read_text())
    assert card["metrics"]["n"] == 30 and card["devices"] == ["board"]
    # its expected error: each of the 4 samples predicted by a copy adapted without it (the references stay in)
    expected = card["expected_error"]
    assert expected["k"] == 4 and len(expected["log_residuals"]) == 4 and expected["mape"] > 0
    assert rep["expected_error"]["mape"] == expected["mape"] and "log_residuals" not in rep["expected_error"]
    code, out, err = cli(capsys, "predict", tmp_path / "adapted", "--arch", listed[12], "--interval", "0.75", "--json")
    row = json.loads(out)["predictions"][0]
    assert code == 0 and row["lo_ms"] < row["predicted_ms"] < row["hi_ms"], err
    code, _, err = cli(capsys, "predict", tmp_path / "adapted", "--arch", listed[12], "--interval", "0.9")
    assert code == 2 and "support levels up to 0.8" in err  # 4 residuals: at most 4/5


def test_a_new_board_gets_its_references_first_and_a_fully_used_board_is_adapted_without_a_score(
        meta: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, folder = meta
    code, out, err = cli(capsys, "adapt", folder, "--db", db, "--device", "newboard", "--select", "3", "--archs-out",
                         tmp_path / "new.txt", "--candidates", "50", "--seed", "2", "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert not rep["references_measured"] and len(rep["archs"]) == 13 and 40 <= rep["candidates"] <= 50
    measure(db, "newboard", 4, rep["archs"])
    code, out, err = cli(capsys, "adapt", folder, "--db", db, "--device", "newboard", "--archs", tmp_path / "new.txt",
                         "--out", tmp_path / "a")
    assert code == 0 and "no other measured archs of newboard to score it on" in err, err
    card = json.loads((tmp_path / "a" / "card.json").read_text())
    assert card["metrics"] is None and len(json.loads((tmp_path / "a" / "train_archs.json").read_text())) == 13


def test_bad_requests_exit_2_naming_what_is_wrong(meta: tuple[Path, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    db, folder = meta
    unmeasured = SPACE.arch_id(SPACE.from_index(OTHERS[300]))
    listing = tmp_path / "l.txt"
    listing.write_text(f"{SPACE.arch_id(SPACE.from_index(OTHERS[0]))}\n{unmeasured}\n")
    base = ["adapt", folder, "--db", db, "--device", "s1"]
    sel = [*base, "--select", "3", "--archs-out", tmp_path / "o.txt"]
    for argv, said in (
            ([*sel, "--out", tmp_path / "x"], "--out: --select only proposes"),
            ([*sel, "--samples", "5"], "--samples: --select only proposes"),
            ([*base, "--select", "3"], "--select needs --archs-out FILE"),
            ([*base, "--select", "0", "--archs-out", tmp_path / "o.txt"], "--select: K must be at least 1"),
            ([*sel, "--rule", "best"], "--rule 'best': unknown acquisition rule"),
            ([*base, "--select", "6", "--archs-out", tmp_path / "o.txt", "--candidates", "5"], "(raise --candidates)"),
            ([*base, "--archs", listing, "--samples", "4", "--out", tmp_path / "x"], "give one of them"),
            ([*base, "--archs", listing, "--out", tmp_path / "x"], f"1 listed in {listing}) are not measured: "
                                                                   f"{unmeasured}"),
            ([*base, "--rule", "random", "--out", tmp_path / "x"], "--rule: only with --select K"),
            ([*base, "--archs", tmp_path / "none.txt", "--out", tmp_path / "x"], "cannot read"),
            ([*base], "--out is required")):
        code, _, err = cli(capsys, *argv)
        assert code == 2 and said in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "x").exists() and not (tmp_path / "o.txt").exists()


def test_the_help_names_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "adapt", "--help")
    text = " ".join(out.split())
    assert code == 0
    assert all(rule in text for rule in RULES)
