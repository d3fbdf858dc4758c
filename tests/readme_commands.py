"""The commands a user reads in README.md, and whether a walked command is one of them "as written".

A walked command may differ from the README's only in size: the values of the flags in SIZE_FLAGS may
change, and size flags the README leaves at their defaults may be added. Anything else (a device, a path,
a target, an option) must be exactly as the README writes it, so a README example that stops working fails
the walk instead of being quietly adapted.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

# Flags that set how much work a command does, not what it does.
SIZE_FLAGS = frozenset({
    "--n", "--epochs", "--train-n", "--rounds", "--resolution", "--nproc-per-node", "--batch-size", "--plan",
    "--meta-iters", "--samples-per-device", "--quick", "--proxy-n", "--max-trials", "--channels", "--cap",
    "--phis", "--scale-phis", "--digits-n", "--population", "--generations", "--verify-max", "--iterations",
    "--measure-final", "--top-k", "--images", "--select",
})
OPERATORS = frozenset({"&&", "||", "|", ";", "&"})
SAFE = re.compile(r"[\w@%+=:,./~-]+")
FENCE = re.compile(r"^```(\w*)\s*$")
INLINE = re.compile(r"`((?:edgeprof|make|torchrun|\.venv/bin/python) [^`]+)`")


def join(words: list[str]) -> str:
    """Words back into one line: shell operators bare, other words quoted only where the shell needs it."""
    return " ".join(w if w in OPERATORS or SAFE.fullmatch(w) else shlex.quote(w) for w in words)


def _logical_lines(block: list[str]) -> list[str]:
    """Shell lines with backslash continuations joined and comments dropped (quotes respected)."""
    out, buf = [], ""
    for raw in block:
        line = raw.rstrip()
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        words = shlex.split(buf, comments=True)
        if words:
            out.append(join(words))
        buf = ""
    return out


def readme_commands(text: str) -> list[str]:
    """Every command of the README's ```sh blocks, then every inline `edgeprof ...` (or make, torchrun,
    benchmark) command of its prose, each once, normalised by shlex (one space between words)."""
    found: list[str] = []
    lang, block = None, []
    for line in text.splitlines():
        m = FENCE.match(line.strip())
        if m and lang is None:
            lang, block = m.group(1), []
        elif m:
            if lang in ("sh", "bash", "shell", "console"):
                found += _logical_lines(block)
            lang = None
        elif lang is not None:
            block.append(line)
        else:
            # a bare `edgeprof deploy` in prose names a command; `edgeprof deploy xavier` is one to type
            found += [join(w) for w in map(shlex.split, INLINE.findall(line)) if len(w) >= 3]
    seen: set[str] = set()
    return [c for c in found if not (c in seen or seen.add(c))]


def load(readme: Path) -> list[str]:
    return readme_commands(readme.read_text())


def _strip_sizes(words: list[str]) -> list[str]:
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
            continue
        flag = w.split("=", 1)[0]
        if flag in SIZE_FLAGS:
            skip = "=" not in w and flag != "--quick"
            continue
        out.append(w)
    return out


def as_written(readme_cmd: str, walked: str) -> bool:
    """True when `walked` is `readme_cmd` up to the values of size flags (and size flags added)."""
    split = [shlex.split(c) for c in (readme_cmd, walked)]
    return _strip_sizes(split[0]) == _strip_sizes(split[1])
