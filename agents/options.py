"""Declared options of backends and meters: default, type and what each does.

A backend or meter lists its options as {name: Option(...)}; the agent fills defaults and rejects unknown
names and wrongly typed values with it, and the host checks a device config against the same
declarations, so a typo fails on the host before anything reaches a board. Values are JSON (and TOML)
values, so the types are JSON's: str, int, number, bool, list, table, or any.
"""

import json

TYPES = {
    "str": ((str,), "a string"),
    "int": ((int,), "an integer"),
    "number": ((int, float), "a number"),
    "bool": ((bool,), "true or false"),
    "list": ((list,), "a list"),
    "table": ((dict,), "a table"),
    "any": (None, "any value"),
}


class Option:
    """One option: its default, its JSON type (a TYPES key), a one-line help, and optional choices.

    None is accepted where the default is None (None means "the runtime's own default" throughout).
    """

    __slots__ = ("choices", "default", "help", "type")

    def __init__(self, default, kind, help_text, choices=None):
        if kind not in TYPES:
            raise ValueError("Option type must be one of {}, got {!r}".format(", ".join(sorted(TYPES)), kind))
        self.default = default
        self.type = kind
        self.help = help_text
        self.choices = tuple(choices) if choices is not None else None

    def expected(self):
        """What a value must be, in words ("an integer or null")."""
        words = TYPES[self.type][1]
        if self.choices is not None:
            words = "one of " + ", ".join(repr(c) for c in self.choices)
        return words + (" or null" if self.default is None else "")

    def problem(self, value):
        """None when value is acceptable, else "expected <what>, got <value>"."""
        if value is None and self.default is None:
            return None
        kinds = TYPES[self.type][0]
        ok = kinds is None or (isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds))
        if ok and self.choices is not None:
            ok = value in self.choices
        return None if ok else f"expected {self.expected()}, got {value!r}"

    def to_dict(self):
        """JSON-able description (`agents info`, docs)."""
        out = {"default": self.default, "type": self.type, "help": self.help}
        if self.choices is not None:
            out["choices"] = list(self.choices)
        return out

    def __repr__(self):
        return f"Option({self.default!r}, {self.type!r}, {self.help!r})"


def as_option(value):
    """An Option as is; a bare default (older or terse declarations) as an Option of type any."""
    return value if isinstance(value, Option) else Option(value, "any", "")


def option_defaults(options):
    """{name: default} of declared options."""
    return {name: as_option(opt).default for name, opt in options.items()}


def option_problems(options, given, label):
    """["<label> option x: ..."] for unknown names and bad values in `given` against the declarations."""
    out = []
    for name in sorted(given):
        if name not in options:
            out.append(
                "{}: unknown option {!r} (accepted: {})".format(label, name, ", ".join(sorted(options)) or "none")
            )
            continue
        why = as_option(options[name]).problem(given[name])
        if why:
            out.append(f"{label} option {name}: {why}")
    return out


def _jsonable(value):
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def declared_option_problems(owner, options):
    """Problems of an OPTIONS declaration ({name: Option}), shared by backends and meters."""
    if not isinstance(options, dict):
        return [f"{owner}.OPTIONS must be a dict of name -> Option(default, type, help)"]
    problems = []
    for key, opt in sorted(options.items()):
        if not isinstance(opt, Option):
            problems.append(f"{owner}.OPTIONS[{key!r}] must be an Option(default, type, help), got {opt!r}")
            continue
        if not _jsonable(opt.default):
            problems.append(f"{owner}.OPTIONS defaults must be JSON-able ({key!r}: {opt.default!r})")
        elif opt.problem(opt.default):
            problems.append(f"{owner}.OPTIONS[{key!r}]: the default does not pass its own check: "
                            + opt.problem(opt.default))
        if not isinstance(opt.help, str) or not opt.help.strip():
            problems.append(f"{owner}.OPTIONS[{key!r}] needs a help text")
    return problems
