"""`edgeprof profile DEV --space S --archs FILE`: exactly the named networks are measured (what a few-shot
adaptation chose to measure), and a bad file is refused naming its line, before anything runs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
from cli_helpers import run_here

from spaces import create_space


def test_it_measures_exactly_the_named_networks(fast_cpu_config: Path, tmp_path: Path) -> None:
    space = create_space("nb201")
    first, second = (space.arch_id(a) for a in space.sample_unique(2, np.random.default_rng(7)))
    archs = tmp_path / "archs.txt"
    archs.write_text(f"# proposed\n{first}\n\n{second}   # a comment\n{first}\n")  # a repeat is measured once
    db = tmp_path / "x.db"
    r = run_here("profile", str(fast_cpu_config), "--space", "nb201", "--archs", str(archs), "--db", str(db), "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert (rep["requested"], rep["measured_ok"], rep["measured_error"]) == (2, 2, 0)
    with sqlite3.connect(db) as c:
        stored = {row[0] for row in c.execute("SELECT m.arch_id FROM measurements x JOIN models m "
                                             "ON x.model_sha256 = m.sha256 WHERE x.status = 'ok'")}
    assert stored == {first, second}
    again = run_here("profile", str(fast_cpu_config), "--space", "nb201", "--archs", str(archs), "--db", str(db),
                     "--json")
    assert json.loads(again.stdout)["already_measured"] == 2


def test_a_bad_file_is_refused_naming_what_is_wrong(fast_cpu_config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("# ok so far\n|nor_conv_3x3~0|+|nope~0|\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    base = ["profile", str(fast_cpu_config), "--space", "nb201", "--db", str(tmp_path / "x.db")]
    for extra, said in ((["--archs", str(bad)], "line 2"), (["--archs", str(empty)], "names no network"),
                        (["--archs", str(tmp_path / "missing.txt")], "cannot read"),
                        (["--archs", str(empty), "--n", "3"], "--n samples networks")):
        r = run_here(*base, *extra)
        assert r.returncode == 2 and said in r.stderr, (extra, r.stderr)
    assert not (tmp_path / "x.db").exists() or sqlite3.connect(tmp_path / "x.db").execute(
        "SELECT COUNT(*) FROM measurements").fetchone()[0] == 0
