"""Host-side plugins: modules named in the EDGEPROF_PLUGINS environment variable are imported before the CLI
builds its parser, so a search (`hwsearch.register_search`), a predictor, a space or a backend defined in a
module outside the package is one file plus one variable:

    EDGEPROF_PLUGINS=mylab.searches,/path/to/my_backend.py edgeprof search mysearch ...

An entry is a module name (importable from sys.path) or a path to a .py file. A module is imported once per
process, so calling `load_plugins` again is harmless. A plugin that cannot be imported is a PluginError naming
it (the CLI exits 2).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from spaces.errors import UserInputError

ENV = "EDGEPROF_PLUGINS"


class PluginError(UserInputError):
    """A plugin named in EDGEPROF_PLUGINS (or passed to load_plugins) cannot be imported."""


def plugin_specs(value: str | None = None) -> list[str]:
    """The entries of EDGEPROF_PLUGINS (or of `value`): comma-separated, blanks dropped."""
    text = os.environ.get(ENV, "") if value is None else value
    return [part.strip() for part in text.split(",") if part.strip()]


def is_path(spec: str) -> bool:
    """A .py file or anything with a path separator is a file; the rest are module names."""
    return spec.endswith(".py") or os.sep in spec or "/" in spec


def module_name_for(path: Path) -> str:
    """A stable module name for a plugin file: its stem plus a hash of its absolute path (two plugin files
    with the same name in different folders do not replace each other in sys.modules)."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    return f"edgeprof_plugin_{path.stem}_{digest}"


def _load_file(spec: str) -> ModuleType:
    path = Path(spec).expanduser().resolve()
    if not path.is_file():
        raise PluginError(f"{ENV}: plugin {spec!r}: no such file")
    name = module_name_for(path)
    if name in sys.modules:
        return sys.modules[name]
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise PluginError(f"{ENV}: plugin {spec!r}: not a Python module file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up while it executes
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_plugins(specs: Iterable[str] | str | None = None) -> list[ModuleType]:
    """Import every plugin (default: the entries of EDGEPROF_PLUGINS); returns the modules in order.

    A plugin that is missing or fails while it is imported (a syntax error, an exception, a registration
    clash) is a PluginError naming the entry and what went wrong."""
    entries = plugin_specs(specs) if isinstance(specs, str) or specs is None else list(specs)
    modules = []
    for spec in entries:
        try:
            modules.append(_load_file(spec) if is_path(spec) else importlib.import_module(spec))
        except PluginError:
            raise
        except Exception as e:
            raise PluginError(f"{ENV}: cannot import plugin {spec!r}: {type(e).__name__}: {e}") from e
    return modules
