"""Bad input through the real CLI, one table row each: the exit code, a message naming the culprit, no
traceback, and nothing already stored lost.

Exit 2 is input the user got wrong (arguments, device configs, spaces, arch strings, predictor folders,
targets), exit 1 a failure while running (the dataset file, a board's results or model files). Every row
runs `edgeprof.cli.main` in-process against its own copy of a pre-filled dataset (devA: 40 NB201 archs,
devF: 12 FBNet archs) and checks that no table of it shrank. Predictors are tiny (an MLP fitted for a few
epochs on devA); the only board work is the local agent loading one corrupt ONNX file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import select
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgeprof.cli import DEBUG_ENV, build_parser, main
from predictors.io import ARRAYS, CARD, save_predictor
from predictors.registry import create_predictor
from profiler.importing import imported_model, imported_result
from profiler.store import Store
from spaces import create_space

TABLES = ("devices", "models", "measurements")
FAST_CPU = """name = "fast-cpu"
kind = "cpu"
[connection]
transport = "local"
workdir = "{work}"
[runtime]
backend = "onnxruntime"
intra_op_threads = 1
[protocol]
warmup_min_runs = 3
warmup_min_s = 0.05
min_runs = 5
max_runs = 30
target_rel_ci = 0.05
"""


@dataclass(frozen=True)
class Lab:
    db: Path  # the pre-filled dataset every row copies
    mlp: Path  # a saved MLP predictor of devA (nb201)
    models: list[str]  # sha256 of devA's models, in the store


def _fill(store: Store, device: str, space_name: str, n: int) -> list[str]:
    """`n` archs of the space with a latency that depends on the arch (a predictor can learn it)."""
    space = create_space(space_name)
    archs = space.sample_unique(n, np.random.default_rng(1))
    models = [imported_model(space, a) for a in archs]
    store.add_models(models)
    store.add_device(device, "cpu", {})
    env = {"source": "test_bad_inputs"}
    store.add_results([imported_result(job_id=f"lab-{device}", task_id=str(i), model_sha256=m.sha256, device=device,
                                       median_ms=1.0 + 0.1 * sum(a) + 0.01 * i, environment=env,
                                       backend="onnxruntime", precision="fp32")
                       for i, (m, a) in enumerate(zip(models, archs, strict=True))])
    return [m.sha256 for m in models]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    root = tmp_path_factory.mktemp("lab")
    with Store(root / "lab.db") as store:
        models = _fill(store, "devA", "nb201", 40)
        _fill(store, "devF", "fbnet", 12)
        from predictors.data import load_xy

        ids, y = load_xy(store, "devA", "nb201")
    mlp = create_predictor("mlp", space="nb201", epochs=3, seed=0)
    mlp.fit(ids, y)
    save_predictor(mlp, root / "mlp-devA", devices=["devA"])
    return Lab(root / "lab.db", root / "mlp-devA", models)


def counts(db: Path) -> dict[str, int]:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {t: c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        c.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- setups: each makes the culprit in `tmp` and returns the placeholders its row uses ----------------------
# A key starting with "=" names a file whose bytes the command must leave as they were.

def fast_cpu(tmp: Path, lab: Lab) -> dict[str, str]:
    cfg = tmp / "fast-cpu.toml"
    cfg.write_text(FAST_CPU.format(work=tmp / "work"))
    return {"cfg": str(cfg)}


def config_files(tmp: Path, lab: Lab) -> dict[str, str]:
    good = FAST_CPU.format(work=tmp / "work")
    backend = 'backend = "onnxruntime"'
    (tmp / "typo.toml").write_text(good.replace(backend, backend + '\nprecison = "fp16"'))
    (tmp / "fp64.toml").write_text(good.replace(backend, backend + '\nprecision = "fp64"'))
    (tmp / "broken.toml").write_text(good.replace('kind = "cpu"', 'kind = = "cpu"'))
    return {name: str(tmp / f"{name}.toml") for name in ("typo", "fp64", "broken")}


def predictor_folders(tmp: Path, lab: Lab) -> dict[str, str]:
    out = {}
    for name in ("unknown-kind", "checksum", "no-arrays", "card-not-json", "params-not-fitting"):
        shutil.copytree(lab.mlp, tmp / name)
        out[name] = str(tmp / name)
    card = json.loads((tmp / "unknown-kind" / CARD).read_text())
    card.pop("card_sha256")  # a card from before the card checksum: the deeper check answers
    card["format_version"] = 1
    card["kind"] = "transformer"
    (tmp / "unknown-kind" / CARD).write_text(json.dumps(card))
    with np.load(tmp / "checksum" / ARRAYS) as z:  # a valid archive with other numbers: only the checksum knows
        arrays = {k: z[k] + 1.0 for k in z.files}
    np.savez(tmp / "checksum" / ARRAYS, **arrays)
    (tmp / "no-arrays" / ARRAYS).unlink()
    (tmp / "card-not-json" / CARD).write_text("{ this is not json")
    card = json.loads((tmp / "params-not-fitting" / CARD).read_text())
    card.pop("card_sha256")  # a card from before the card checksum: the deeper check answers
    card["format_version"] = 1
    card["params"]["hidden"] = [7, 7, 7]  # a card edited by hand: its weights no longer fit
    (tmp / "params-not-fitting" / CARD).write_text(json.dumps(card))
    (tmp / "not-a-predictor").mkdir()
    (tmp / "not-a-predictor" / "notes.txt").write_text("hello")
    out["not-a-predictor"] = str(tmp / "not-a-predictor")
    return out


def bad_db_files(tmp: Path, lab: Lab) -> dict[str, str]:
    (tmp / "junk.db").write_text("this is a text file, not a dataset\n" * 50)
    other = sqlite3.connect(tmp / "other.db")
    other.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    other.execute("INSERT INTO customers VALUES (1, 'ada')")
    other.commit()
    other.close()
    (tmp / "a-folder.db").mkdir()
    return {"junk": str(tmp / "junk.db"), "=junk": str(tmp / "junk.db"),
            "other": str(tmp / "other.db"), "=other": str(tmp / "other.db"), "folder": str(tmp / "a-folder.db")}


def corrupt_result_line(tmp: Path, lab: Lab) -> dict[str, str]:
    """A finished job on the board whose results file holds one good line and one cut-off line."""
    paths = fast_cpu(tmp, lab)
    job = tmp / "work" / "jobs" / "j-old"
    job.mkdir(parents=True)
    # a job of an older host (no owner): its lines are taken when this dataset registered their models
    (job / "job.json").write_text(json.dumps({"job_id": "j-old", "device": "fast-cpu", "tasks": []}))
    (job / "status.json").write_text(json.dumps({"state": "finished"}))
    good = imported_result(job_id="j-old", task_id="t0", model_sha256=lab.models[0], device="fast-cpu",
                           median_ms=2.0, environment={}, backend="onnxruntime", precision="fp32")
    (job / "results.jsonl").write_text(json.dumps(good) + "\n" + '{"schema": "edgeprof.result/1", "task_id": "t1\n')
    return paths


def corrupt_onnx(tmp: Path, lab: Lab) -> dict[str, str]:
    """The model `profile --n 1 --seed 0` will ask for is already on the board, but damaged."""
    from profiler.session import model_cache_dir
    from spaces import export_onnx

    paths = fast_cpu(tmp, lab)
    space = create_space("nb201")
    exported = export_onnx(space, space.sample_unique(1, np.random.default_rng(0))[0], model_cache_dir())
    on_board = tmp / "work" / "models" / f"{exported.sha256}.onnx"
    on_board.parent.mkdir(parents=True)
    on_board.write_bytes(b"\x08\x07garbage, not a protobuf")
    return {**paths, "onnx": f"models/{exported.sha256}.onnx"}


@dataclass(frozen=True)
class Row:
    id: str
    argv: str  # split on spaces, then each word formatted with the placeholders
    code: int
    culprits: tuple[str, ...]  # formatted like argv; each must appear in the message
    setup: Callable[[Path, Lab], dict[str, str]] | None = None
    grows: bool = False  # the good part of the input is stored: measurements grow


ROWS = [
    # device names and device config keys and values
    Row("unknown-device", "profile ghost-board --space nb201 --n 1 --db {db}", 2, ("ghost-board", "local-cpu")),
    Row("config-unknown-key", "profile {typo} --space nb201 --n 1 --db {db}", 2,
        ("{typo}", "runtime.precison", "precision"), config_files),
    Row("config-bad-value", "profile {fp64} --space nb201 --n 1 --db {db}", 2,
        ("{fp64}", "runtime.precision", "fp64"), config_files),
    Row("config-not-toml", "profile {broken} --space nb201 --n 1 --db {db}", 2, ("{broken}", "TOML"),
        config_files),
    # --n, --batch, spaces and arch strings
    Row("n-zero", "profile {cfg} --space nb201 --n 0 --db {db}", 2, ("--n", "0"), fast_cpu),
    Row("n-not-a-number", "profile {cfg} --space nb201 --n ten --db {db}", 2, ("--n", "ten"), fast_cpu),
    Row("n-beyond-the-space", "profile {cfg} --space nb201 --n 20000 --db {db}", 2, ("20000", "15625"), fast_cpu),
    Row("batch-zero", "profile {cfg} --space nb201 --n 1 --batch 0 --db {db}", 2, ("--batch", "0"), fast_cpu),
    Row("unknown-space", "profile {cfg} --space nb202 --n 1 --db {db}", 2, ("nb202", "did you mean 'nb201'"),
        fast_cpu),
    Row("bad-arch-string", "predict {mlp} --arch |conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|", 2,
        ("unknown op 'conv_9x9'", "nor_conv_3x3")),
    Row("cut-arch-string", "predict {mlp} --arch |none~0|+|none~0|none~1|", 2, ("|none~0|+|none~0|none~1|",)),
    # predictor folders: foreign, corrupt, of another space or device
    Row("not-a-predictor", "predict {not-a-predictor} --arch x", 2, ("{not-a-predictor}", "card.json"),
        predictor_folders),
    Row("card-unknown-kind", "predict {unknown-kind} --arch x", 2, ("{unknown-kind}/card.json", "transformer"),
        predictor_folders),
    Row("arrays-checksum-mismatch", "evaluate {checksum} --device devA --db {db}", 2,
        ("{checksum}/arrays.npz", "checksum"), predictor_folders),
    Row("arrays-missing", "evaluate {no-arrays} --device devA --db {db}", 2, ("{no-arrays}", "arrays.npz"),
        predictor_folders),
    Row("card-not-json", "evaluate {card-not-json} --device devA --db {db}", 2,
        ("{card-not-json}/card.json", "JSON"), predictor_folders),
    Row("card-params-not-fitting", "predict {params-not-fitting} --arch x", 2,
        ("{params-not-fitting}", "cannot be rebuilt"), predictor_folders),
    Row("predictor-of-another-space", "evaluate {mlp} --device devF --db {db}", 2, ("devF", "fbnet", "nb201")),
    Row("device-without-data", "evaluate {mlp} --device devZ --db {db}", 2, ("devZ", "devA")),
    Row("setting-typo", "evaluate {mlp} --device devA --db {db} --backend tensorrrt", 2,
        ("backend='tensorrrt'", "devA has nb201 measurements under 1 setting: backend=onnxruntime precision=fp32",
         "--backend")),
    Row("predictor-of-another-device", "search lightnas --device devF --predictor {mlp} --target-ms 5 "
        "--out {tmp}/r.json --db {db}", 2, ("{mlp}", "devA", "devF")),
    Row("not-a-meta-predictor", "adapt {mlp} --device devA --db {db} --out {tmp}/adapted", 2, ("{mlp}",)),
    Row("unknown-predictor-kind", "train transformer --space nb201 --device devA --db {db} --out {tmp}/p", 2,
        ("transformer", "mlp")),
    # targets
    Row("target-out-of-range", "search lightnas --device devA --predictor {mlp} --target-ms 0.0001 "
        "--out {tmp}/r.json --db {db}", 2, ("0.0001 ms", "outside")),
    Row("target-negative", "search lightnas --device devA --predictor {mlp} --target-ms -3 "
        "--out {tmp}/r.json --db {db}", 2, ("-3",)),
    # the dataset file
    Row("db-not-sqlite", "dataset summary --db {junk}", 1, ("{junk}", "not an SQLite file"), bad_db_files),
    Row("db-of-another-program", "dataset summary --db {other}", 1, ("{other}", "another program"),
        bad_db_files),
    Row("db-is-a-folder", "train mlp --space nb201 --device devA --db {folder} --out {tmp}/p", 1,
        ("{folder}", "folder"), bad_db_files),
    # the board
    Row("corrupt-result-line", "profile {cfg} --space nb201 --n 1 --db {db}", 1,
        ("fast-cpu", "jobs/j-old/results.jsonl", "t1"), corrupt_result_line, grows=True),
    # a damaged model file on the board is not the user's fault: it is re-sent and measured (issue 10)
    Row("corrupt-onnx-on-the-board", "profile {cfg} --space nb201 --n 1 --seed 0 --db {db}", 0,
        ("fast-cpu", "re-sent 1 model(s) the board found damaged"), corrupt_onnx, grows=True),
]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stderr of `edgeprof ARGV`; a known failure escaping main() is a test failure."""
    try:
        code = main(argv)
    except Exception as e:  # noqa: BLE001 - the point: main() must turn every known failure into a code
        pytest.fail(f"edgeprof {' '.join(argv)}: {type(e).__name__} escaped main() (a traceback): {e}")
    return code, capsys.readouterr().err


def test_the_table_has_at_least_20_rows() -> None:
    assert len(ROWS) >= 20 and len({r.id for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    db = tmp_path / "lab.db"
    shutil.copyfile(lab.db, db)
    values = {"db": str(db), "mlp": str(lab.mlp), "tmp": str(tmp_path)}
    if row.setup is not None:
        values.update(row.setup(tmp_path, lab))
    unchanged = {k[1:]: digest(Path(v)) for k, v in values.items() if k.startswith("=")}
    before = counts(db)

    code, err = run_cli([word.format_map(values) for word in row.argv.split(" ")], capsys)

    assert code == row.code, err
    assert "Traceback" not in err, err
    for culprit in row.culprits:
        assert culprit.format_map(values) in err, f"{culprit.format_map(values)!r} not named in: {err}"
    after = counts(db)
    assert all(after[t] >= before[t] for t in TABLES), (before, after)
    if row.grows:
        assert after["measurements"] > before["measurements"], (before, after)
    for key, sha in unchanged.items():
        assert digest(Path(values[key])) == sha, f"{values[key]} was changed"


def run_as_nobody(argv: list[str]) -> tuple[int, str]:
    """`edgeprof ARGV` in a forked child that has become `nobody`: root may write any file, so only another
    user meets a read-only one. The child cannot read this interpreter's packages (under /root), so every
    module the command needs is imported before the fork."""
    build_parser()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            sys.stderr = io.StringIO()
            code = main(argv)
            payload = {"code": code, "err": sys.stderr.getvalue()}
        except BaseException as e:  # noqa: BLE001 - reported to the parent, which fails the test
            payload = {"code": -1, "err": f"Traceback: {type(e).__name__}: {e}"}
        os.write(write_end, json.dumps(payload).encode())
        os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + 120  # a child that hangs (a fork after threads started) fails, not hangs
    data = b""
    with os.fdopen(read_end, "rb") as f:
        while True:
            ready, _, _ = select.select([f], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(f.fileno(), 65536) if ready else None
            if chunk is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"`edgeprof {' '.join(argv)}` as nobody did not finish within 120 s")
            if not chunk:
                break
            data += chunk
    os.waitpid(pid, 0)
    result = json.loads(data)
    return result["code"], result["err"]


def test_read_only_db_is_read_and_a_write_names_it(lab: Lab, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataset in a folder the user cannot write: reading commands work (opened read-only), a writing one
    exits 1 naming the path that is not writable; nothing changes (as root: run as `nobody`)."""
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    folder = Path(tempfile.mkdtemp(prefix="edgeprof-ro-"))  # not under pytest's 0700 base: nobody must read it
    outbox = Path(tempfile.mkdtemp(prefix="edgeprof-out-"))
    try:
        db = folder / "ro.db"
        shutil.copyfile(lab.db, db)
        outbox.chmod(0o777)
        before, sha = counts(db), digest(db)
        files = sorted(p.name for p in folder.iterdir())
        db.chmod(0o444)
        folder.chmod(0o555)
        for argv, code, words in (
                (["dataset", "summary", "--db", str(db)], 0, ()),
                (["dataset", "export", str(outbox / "all.csv"), "--db", str(db)], 0, ("wrote 52 rows",)),
                (["dataset", "import", "help", str(folder), "--db", str(db)], 1, (str(db), "not writable"))):
            got, err = run_as_nobody(argv) if os.geteuid() == 0 else run_cli(argv, capsys)
            assert got == code, (argv, err)
            assert "Traceback" not in err, err
            assert all(w in err.lower() for w in words), (argv, err)
        assert counts(db) == before and digest(db) == sha
        assert sorted(p.name for p in folder.iterdir()) == files
        assert len((outbox / "all.csv").read_text().splitlines()) == 1 + before["measurements"]
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(outbox, ignore_errors=True)
