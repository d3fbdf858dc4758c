"""Conformance checks for power meters, run by the tests on every registered meter (and on plugins).

A meter is a PowerMeter with a name, OPTIONS declared as {name: Option} (each one a keyword parameter of
its constructor, which the worker passes it to), and available()/probe() that answer without raising.
"""

import inspect

from ..options import declared_option_problems
from .base import PowerMeter

COMMON = ("rail", "rate_hz", "root")


def check_meter(cls, name=None):
    """Problems of a meter class as a list of strings; [] when it conforms. name: its registry name."""
    if not (inspect.isclass(cls) and issubclass(cls, PowerMeter)):
        return [f"{cls!r} is not a PowerMeter subclass"]
    problems = []
    label = getattr(cls, "name", None)
    if not isinstance(label, str) or not label or label == PowerMeter.name:
        problems.append(f"{cls.__name__}.name must be set to the meter's name, got {label!r}")
    problems.extend(declared_option_problems(cls.__name__, getattr(cls, "OPTIONS", None)))
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    for key in COMMON + tuple(getattr(cls, "OPTIONS", None) or ()):
        if key not in params and not takes_any:
            problems.append(f"{cls.__name__}.__init__ has no parameter {key!r}")
    try:
        reason = cls.available(root="/nonexistent-root")
        if reason is not None and not isinstance(reason, str):
            problems.append(f"{cls.__name__}.available() must return None or a reason, got {reason!r}")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"{cls.__name__}.available() raised {type(exc).__name__}: {exc}")
    return problems
