"""Faults a user meets, through the real command line (`python -m edgeprof ...`): damaged or edited predictor
files, --out paths that cannot be written or would overwrite a predictor, a predictor scored on another device,
--json runs that fail, and progress when stderr is not a terminal (issue 10)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_here
from rich.console import Console

from edgeprof.output import PlainProgress
from predictors.io import ARRAYS, CARD, save_predictor
from predictors.registry import create_predictor
from profiler.importing import imported_model, imported_result
from profiler.store import Store
from spaces import create_space

REPO = Path(__file__).resolve().parents[2]


def edgeprof(*args: str) -> subprocess.CompletedProcess[str]:
    """The command in this process (cli_helpers.run_here), never in debug mode (a known failure must not show a
    traceback): these tests check exit codes and messages, not startup."""
    saved = os.environ.pop("EDGEPROF_DEBUG", None)
    try:
        return run_here(*args)
    finally:
        if saved is not None:
            os.environ["EDGEPROF_DEBUG"] = saved


@dataclass(frozen=True)
class Lab:
    db: Path  # devA and devB: 40 NB201 archs each
    mlp: Path  # an MLP of devA


def _fill(store: Store, device: str, n: int, scale: float) -> None:
    space = create_space("nb201")
    archs = space.sample_unique(n, np.random.default_rng(3))
    models = [imported_model(space, a) for a in archs]
    store.add_models(models)
    store.add_device(device, "cpu", {})
    store.add_results([imported_result(job_id=f"lab-{device}", task_id=str(i), model_sha256=m.sha256, device=device,
                                       median_ms=scale * (1.0 + 0.1 * sum(a)), environment={})
                       for i, (m, a) in enumerate(zip(models, archs, strict=True))])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    from predictors.data import load_xy

    root = tmp_path_factory.mktemp("faults")
    with Store(root / "lab.db") as store:
        _fill(store, "devA", 40, 1.0)
        _fill(store, "devB", 40, 3.0)
        ids, y = load_xy(store, "devA", "nb201")
    mlp = create_predictor("mlp", space="nb201", epochs=3, seed=0)
    mlp.fit(ids[:30], y[:30])
    save_predictor(mlp, root / "mlp-devA", devices=["devA"], train_archs=ids[:30])
    return Lab(root / "lab.db", root / "mlp-devA")


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(p.name.encode() + (p.read_bytes() if p.is_file() else b""))
    return h.hexdigest()


ARCH = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"


# --- predictor files ----------------------------------------------------------------------------------------

def test_flipped_bytes_in_the_arrays_are_refused_with_a_message(lab: Lab, tmp_path: Path) -> None:
    pred = Path(shutil.copytree(lab.mlp, tmp_path / "p"))
    blob = bytearray((pred / ARRAYS).read_bytes())
    for i in (len(blob) // 2, len(blob) - 30):  # a weight, and the zip's central directory
        blob[i] ^= 0xFF
    (pred / ARRAYS).write_bytes(bytes(blob))
    r = edgeprof("predict", str(pred), "--arch", ARCH)
    assert r.returncode == 2, r.stderr
    assert f"{pred / ARRAYS}: checksum mismatch" in r.stderr and "Traceback" not in r.stderr, r.stderr

    # a card from before the checksum: the damaged archive is still a message, never BadZipFile's traceback
    card = json.loads((pred / CARD).read_text())
    for key in ("arrays_sha256", "card_sha256"):
        card.pop(key)
    card["format_version"] = 1
    (pred / CARD).write_text(json.dumps(card))
    r = edgeprof("predict", str(pred), "--arch", ARCH)
    assert r.returncode == 2, r.stderr
    assert "not a readable array archive" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_an_edited_card_or_zeroed_weights_are_refused(lab: Lab, tmp_path: Path) -> None:
    edited = Path(shutil.copytree(lab.mlp, tmp_path / "edited"))
    card = json.loads((edited / CARD).read_text())
    text = (edited / CARD).read_text()
    std = f'"std": {card["target"]["std"]!r}'
    assert std in text
    (edited / CARD).write_text(text.replace(std, f'"std": {card["target"]["std"] * 10!r}'))  # one number changed
    r = edgeprof("predict", str(edited), "--arch", ARCH)
    assert r.returncode == 2 and "card was changed" in r.stderr and str(edited / CARD) in r.stderr, r.stderr

    zeroed = Path(shutil.copytree(lab.mlp, tmp_path / "zeroed"))
    with np.load(zeroed / ARRAYS) as z:
        arrays = {k: np.zeros_like(z[k]) for k in z.files}
    np.savez(zeroed / ARRAYS, **arrays)
    r = edgeprof("predict", str(zeroed), "--arch", ARCH)
    assert r.returncode == 2 and "checksum mismatch" in r.stderr, r.stderr
    # ... and a card whose arrays checksum was made to fit them is caught by the card's own checksum
    card = json.loads((zeroed / CARD).read_text())
    card["arrays_sha256"] = hashlib.sha256((zeroed / ARRAYS).read_bytes()).hexdigest()
    (zeroed / CARD).write_text(json.dumps(card))
    r = edgeprof("predict", str(zeroed), "--arch", ARCH)
    assert r.returncode == 2 and "card was changed" in r.stderr, r.stderr

    r = edgeprof("predict", str(lab.mlp), "--arch", ARCH, "--json")  # the untouched one still predicts
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["predictions"][0]["predicted_ms"] > 0


# --- --out ----------------------------------------------------------------------------------------------------

def test_train_refuses_to_overwrite_a_predictor_without_force(lab: Lab, tmp_path: Path) -> None:
    out = Path(shutil.copytree(lab.mlp, tmp_path / "mlp"))
    before = tree_digest(out)
    argv = ("train", "mlp", "--space", "nb201", "--device", "devA", "--db", str(lab.db), "--epochs", "2",
            "--out", str(out))
    r = edgeprof(*argv)
    assert r.returncode == 2, r.stderr
    assert f"--out {out}: holds a saved predictor" in r.stderr and "--force" in r.stderr, r.stderr
    assert tree_digest(out) == before
    r = edgeprof(*argv, "--force", "--json")
    assert r.returncode == 0, r.stderr
    assert tree_digest(out) != before
    assert json.loads(r.stdout)["out"] == str(out)


@pytest.mark.parametrize("command", [
    ("train", "mlp", "--space", "nb201", "--device", "devA"),
    ("adapt", "{mlp}", "--device", "devA"),
    ("report", "predictor", "{mlp}", "--device", "devA"),
    ("search", "lightnas", "--device", "devA", "--predictor", "{mlp}", "--target-ms", "5"),
], ids=["train", "adapt", "report", "search"])
@pytest.mark.parametrize("where", ["a-file", "inside-a-file"])
def test_an_out_that_cannot_be_written_is_refused_before_any_work(command: tuple[str, ...], where: str,
                                                                  lab: Lab, tmp_path: Path) -> None:
    """The dataset named is missing: a refusal that names --out shows the check ran before the work."""
    blocker = tmp_path / "taken.txt"
    blocker.write_text("not yours")
    search = command[0] == "search"
    if where == "a-file":
        out = tmp_path if search else blocker  # search writes a file: a folder is what it cannot write
    else:
        out = blocker / "sub" / ("r.json" if search else "p")
    argv = [w.format(mlp=lab.mlp) for w in command] + ["--db", str(tmp_path / "missing.db"), "--out", str(out)]
    r = edgeprof(*argv)
    assert r.returncode == 2, r.stderr
    assert f"--out {out}:" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "missing.db" not in r.stderr, r.stderr
    assert blocker.read_text() == "not yours"


# --- another device, --json errors ------------------------------------------------------------------------------

def test_evaluate_on_another_device_warns_and_says_so_in_json(lab: Lab) -> None:
    r = edgeprof("evaluate", str(lab.mlp), "--device", "devB", "--db", str(lab.db), "--json")
    assert r.returncode == 0, r.stderr
    assert "warning:" in r.stderr and "trained for devA, not devB" in r.stderr, r.stderr
    res = json.loads(r.stdout)
    assert res["predictor_devices"] == ["devA"] and "devB" in res["warnings"][0]
    r = edgeprof("evaluate", str(lab.mlp), "--device", "devA", "--db", str(lab.db), "--json")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    assert json.loads(r.stdout)["warnings"] == []


@pytest.mark.parametrize(("argv", "code", "kind"), [
    (("predict", "{tmp}/nothing-here", "--arch", ARCH, "--json"), 2, "PredictorFileError"),
    (("dataset", "summary", "--db", "{tmp}/missing.db", "--json"), 2, "MissingDataset"),
    # every command that reads a dataset answers a missing one alike (exit 2: a path the user typed)
    (("train", "mlp", "--db", "{tmp}/missing.db", "--device", "d", "--space", "nb201", "--out", "{tmp}/p",
      "--json"), 2, "MissingDataset"),
    (("dataset", "summary", "--db", "{tmp}", "--json"), 1, "StoreError"),
    (("dataset", "summary", "--db", "{tmp}/x.db", "--json", "--no-such-option"), 2, "UsageError"),
], ids=["bad-predictor", "missing-db", "missing-db-train", "db-is-a-folder", "usage-error"])
def test_a_json_run_that_fails_prints_an_error_object_on_stdout(argv: tuple[str, ...], code: int, kind: str,
                                                                tmp_path: Path) -> None:
    r = edgeprof(*(w.format(tmp=tmp_path) for w in argv))
    assert r.returncode == code, r.stderr
    error = json.loads(r.stdout)["error"]
    assert error["type"] == kind and error["exit_code"] == code, error
    assert "error" in r.stderr  # people still get the message
    if kind != "UsageError":
        assert error["message"] in r.stderr.replace("\n", " ") or error["message"][:40] in r.stderr, (error, r.stderr)


# --- progress when stderr is not a terminal ----------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_progress_prints_a_line_every_interval_and_at_the_end() -> None:
    console = Console(record=True, width=200, file=open(os.devnull, "w"))  # noqa: SIM115 - closed by the GC
    clock = FakeClock()
    with PlainProgress(console, interval=5.0, clock=clock) as bars:
        row = bars.add_task("meta-training on 3 devices", total=None, loss="")
        for i in range(1, 401):
            clock.now = i * 0.1  # 40 s in all
            bars.update(row, completed=i, total=400, loss=f"loss {1 / i:.3f}")
    lines = console.export_text().splitlines()
    assert len(lines) == 8, lines  # at 5, 10, ..., 35 s, and the last one at 40 s
    assert lines[0] == "meta-training on 3 devices: 50/400 (12%), 5 s elapsed, ~35 s left, loss 0.020"
    assert lines[-1].startswith("meta-training on 3 devices: 400/400 (100%), 40 s elapsed")


def write_help_tables(root: Path, devices: tuple[str, ...]) -> Path:
    """A HELP-shaped folder (torch.save's zip layout) with synthetic values."""
    folder = root / "data" / "nasbench201" / "latency"
    folder.mkdir(parents=True)
    for k, device in enumerate(devices):
        values = [1.0 + k + (i % 97) / 10 for i in range(15625)]
        with zipfile.ZipFile(folder / f"{device}.pt", "w") as archive:
            archive.writestr(f"{device}/data.pkl", pickle.dumps(values, protocol=2))
    return root


def test_import_and_training_report_progress_on_a_piped_stderr_and_q_hides_it(lab: Lab, tmp_path: Path) -> None:
    root = write_help_tables(tmp_path / "HELP", ("raspi4", "pixel3"))
    db = tmp_path / "h.db"
    r = edgeprof("dataset", "import", "help", str(root), "--space", "nb201", "--db", str(db), "--json")
    assert r.returncode == 0, r.stderr
    assert "importing help: 46875/46875 (100%)" in r.stderr, r.stderr  # rows written: models, 2 tables
    assert json.loads(r.stdout)["added"] == 2 * 15625
    r = edgeprof("dataset", "import", "help", str(root), "--space", "nb201", "--db", str(db), "-q")
    assert r.returncode == 0 and "importing help" not in r.stderr, r.stderr

    argv = ("train", "mlp", "--space", "nb201", "--device", "devA", "--db", str(lab.db), "--epochs", "4")
    r = edgeprof(*argv, "--out", str(tmp_path / "p1"))
    assert r.returncode == 0, r.stderr
    assert "training mlp on 32 devA archs: 4/4 (100%)" in r.stderr, r.stderr
    assert "━" not in r.stderr  # no rich bar drawn into a pipe
    r = edgeprof(*argv, "--out", str(tmp_path / "p2"), "-q")
    assert r.returncode == 0 and "training mlp" not in r.stderr, r.stderr
