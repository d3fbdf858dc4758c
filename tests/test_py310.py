"""The host side runs on Python 3.10 (Ubuntu 22.04, JetPack 6): vermin over the host packages, torch-free
imports for the commands that need no torch, and the real thing under a 3.10 interpreter when given one.

Set EDGEPROF_PY310 to a Python 3.10 with the host's dependencies except torch and this project installed
(`make .venv310/.installed` prepares one; `make test` passes it on). The loopback-sshd part (`trust`) lives
in tests/ssh/test_ssh_py310.py, next to its fixtures.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HOST_PACKAGES = ("spaces", "profiler", "predictors", "hwsearch", "edgeprof")
PY310 = os.environ.get("EDGEPROF_PY310")
needs_py310 = pytest.mark.skipif(not PY310, reason="set EDGEPROF_PY310 to a Python 3.10 interpreter "
                                                   "(make .venv310/.installed)")
# What the commands that need no torch must not load. (`search --help` reads each search's declared
# arguments from hwsearch, which therefore imports without torch too.)
HEAVY = ("torch",)


def vermin(*paths: str) -> subprocess.CompletedProcess[str]:
    # vermin has no __main__ module, so `python -m vermin` cannot run; call its entry point instead
    return subprocess.run([sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())",
                           "--target=3.10-", "--violations", "--no-tips", *paths],
                          cwd=REPO, capture_output=True, text=True, check=False)


def test_vermin_finds_nothing_newer_than_310() -> None:
    proc = vermin(*HOST_PACKAGES)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Target versions not met" not in out and " requires " not in out, out
    assert "Minimum required versions: 3.10" in out or "Minimum required versions: ~" in out, out


def test_vermin_check_catches_a_311_feature(tmp_path: Path) -> None:
    """The check above can fail: the same command flags typing.Self (3.11), the defect it guards against."""
    (tmp_path / "bad.py").write_text("from typing import Self\n")
    proc = vermin(str(tmp_path / "bad.py"))
    assert proc.returncode != 0 and "typing.Self" in proc.stdout, proc.stdout + proc.stderr


def _requirement_names(specs: list[str]) -> dict[str, str]:
    """{name: spec without environment marker or spaces}."""
    out = {}
    for spec in specs:
        spec = spec.split(";")[0].replace(" ", "")
        out[re.split(r"[<>=!~\[]", spec, maxsplit=1)[0].lower()] = spec
    return out


def test_makefile_310_dependencies_are_pyprojects_without_torch() -> None:
    """The Makefile's .venv310 list cannot drift from pyproject.toml (a new dependency goes in both)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    make = (REPO / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(r"^HOST_DEPS_NO_TORCH\s*:?=(.*)$", make, re.MULTILINE)
    assert match, "Makefile: HOST_DEPS_NO_TORCH not found"
    expected = {k: v for k, v in _requirement_names(deps).items() if k != "torch"}
    assert _requirement_names(match.group(1).split()) == expected


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every (sub)command of the parser, nested ones included: ("dataset",), ("dataset", "import"), ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from command_paths(sub, (*prefix, name))


def all_command_paths() -> list[tuple[str, ...]]:
    from edgeprof.cli import build_parser

    paths = list(command_paths(build_parser()))
    assert ("devices",) in paths and ("dataset", "import") in paths, paths
    return paths


def write_help_tables(root: Path, devices: tuple[str, ...] = ("raspi4",)) -> Path:
    """A HELP-shaped folder (data/nasbench201/latency/<device>.pt, torch.save's zip layout) with synthetic
    values, so the import runs in a fresh clone without the shared data."""
    folder = root / "data" / "nasbench201" / "latency"
    folder.mkdir(parents=True)
    for k, device in enumerate(devices):
        values = [1.0 + k + (i % 97) / 10 for i in range(15625)]
        with zipfile.ZipFile(folder / f"{device}.pt", "w") as archive:
            archive.writestr(f"{device}/data.pkl", pickle.dumps(values, protocol=2))
    return root


def dataset_steps(help_root: Path, db: Path, csv: Path) -> list[list[str]]:
    return [
        ["devices"],
        ["dataset", "import", "help", str(help_root), "--space", "nb201", "--devices", "raspi4", "--db", str(db)],
        ["dataset", "summary", "--db", str(db), "--json"],
        ["dataset", "export", str(csv), "--db", str(db)],
    ]


IN_PROCESS = """
import contextlib, io, json, sys
from edgeprof.cli import main
heavy = {heavy!r}
report = []
for argv in json.loads(sys.argv[1]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as e:  # --help
            rc = e.code
    loaded = sorted({{m.split(".")[0] for m in sys.modules if m.split(".")[0] in heavy}})
    report.append({{"argv": argv, "rc": rc, "loaded": loaded}})
print(json.dumps(report))
"""


def test_commands_without_torch_load_no_torch(tmp_path: Path) -> None:
    """In one interpreter (this one's Python): --help of every command, devices and dataset import/summary/
    export never import torch, so they work on a host without torch and start fast."""
    steps = [["--help"], *([*p, "--help"] for p in all_command_paths()),
             *dataset_steps(write_help_tables(tmp_path / "help"), tmp_path / "x.db", tmp_path / "x.csv")]
    proc = subprocess.run([sys.executable, "-c", IN_PROCESS.format(heavy=HEAVY), json.dumps(steps)],
                          cwd=tmp_path, capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [r["rc"] for r in report] == [0] * len(steps), report
    loaded = [(r["argv"], r["loaded"]) for r in report if r["loaded"]]
    assert not loaded, f"first command that loaded {HEAVY}: {loaded[0]}"


def run310(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PY310 is not None
    edgeprof = Path(PY310).parent / "edgeprof"  # the console script, as a user runs it
    return subprocess.run([str(edgeprof), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.fixture(scope="module")
def py310() -> str:
    if not PY310:
        pytest.skip("set EDGEPROF_PY310 to a Python 3.10 interpreter (make .venv310/.installed)")
    code = "import sys, importlib.util as u; print(sys.version_info[:2], u.find_spec('torch') is not None)"
    probe = subprocess.run([PY310, "-c", code], capture_output=True, text=True, check=True)
    assert probe.stdout.split() == ["(3,", "10)", "False"], (
        f"EDGEPROF_PY310={PY310} must be a Python 3.10 without torch, got {probe.stdout.strip()}")
    return PY310


HOST_IMPORTS = """
import importlib, json, pkgutil, sys
needs_torch, failed, ok = [], {}, []
for pkg in sys.argv[1:]:
    mod = importlib.import_module(pkg)
    names = [pkg] + [m.name for m in pkgutil.walk_packages(mod.__path__, pkg + ".")
                     if not m.name.endswith(".__main__")]  # importing it would run the CLI
    for name in names:
        try:
            importlib.import_module(name)
            ok.append(name)
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] == "torch":
                needs_torch.append(name)
            else:
                failed[name] = repr(e)
        except Exception as e:
            failed[name] = repr(e)
print(json.dumps({"ok": ok, "needs_torch": needs_torch, "failed": failed}))
"""


@needs_py310
def test_every_host_module_compiles_and_imports_under_310(py310: str) -> None:
    """Every host module imports on 3.10, or fails only for want of torch; the CLI and the data path import."""
    proc = subprocess.run([py310, "-c", HOST_IMPORTS, *HOST_PACKAGES], cwd=REPO, capture_output=True,
                          text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["failed"] == {}, result["failed"]
    ok = set(result["ok"])
    must = {"edgeprof.cli", "profiler.store", "profiler.dataset", "profiler.transports.ssh", "spaces.nb201",
            "spaces.fbnet", "predictors.importers"}
    assert must <= ok, sorted(must - ok)
    assert {f"edgeprof.commands.{p[0].replace('-', '_')}" for p in all_command_paths()} <= ok


@needs_py310
def test_cli_commands_without_torch_under_310(py310: str, tmp_path: Path) -> None:
    for path in [(), *all_command_paths()]:
        r = run310(*path, "--help", cwd=tmp_path)
        assert r.returncode == 0 and "usage: edgeprof" in r.stdout, (path, r.stderr)
    db, csv = tmp_path / "x.db", tmp_path / "x.csv"
    devices, imp, summary, export = dataset_steps(write_help_tables(tmp_path / "help"), db, csv)
    r = run310(*devices, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)["devices"]
    assert "local-cpu" in {d["name"] for d in listed}
    assert [d for d in listed if d["error"]] == []  # every shipped config parses on 3.10 (tomli)
    r = run310(*imp, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "15625 measurements added" in r.stderr
    r = run310(*summary, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (group,) = json.loads(r.stdout)["groups"]
    assert (group["device"], group["space"], group["ok"]) == ("raspi4", "nb201", 15625)
    r = run310(*export, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = csv.read_text().splitlines()
    assert len(lines) == 1 + 15625 and "raspi4" in lines[1]
