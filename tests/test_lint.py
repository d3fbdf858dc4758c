"""The code base stays `ruff check` clean (the project's style rule)."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_clean() -> None:
    # ruff is a test dependency (pyproject's [test] extra): missing, the test fails rather than skips
    ruff = str(Path(sys.executable).parent / "ruff") if (Path(sys.executable).parent / "ruff").exists() \
        else shutil.which("ruff") or "ruff"
    r = subprocess.run([ruff, "check", "--no-cache", "--output-format", "concise", "."], cwd=REPO, capture_output=True,
                       text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
