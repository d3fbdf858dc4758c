"""Host-side plugins: modules named in the EDGEPROF_PLUGINS environment variable are imported before the CLI
builds its parser, so a search (`hwsearch.register_search`), a predictor, a space or a backend defined in a
module outside the package is one file plus one variable:

    EDGEPROF_PLUGINS=mylab.searches,/path/to/my_backend.py edgeprof search mysearch ...

An entry is a module name (importable from sys.path, a package too) or a path to a .py file. The importing is
agents.plugins' (the loader of a device config's `[agent] plugins`), so a file is executed once per process
whichever way and through whichever route it was named. A plugin that cannot be imported is a PluginError
naming it (the CLI exits 2).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from types import ModuleType

from agents import plugins as agent_plugins
from agents.plugins import is_path, module_name_for
from spaces.errors import UserInputError

ENV = "EDGEPROF_PLUGINS"


class PluginError(UserInputError):
    """A plugin named in EDGEPROF_PLUGINS (or passed to load_plugins) cannot be imported."""


def plugin_specs(value: str | None = None) -> list[str]:
    """The entries of EDGEPROF_PLUGINS (or of `value`): comma-separated, blanks dropped."""
    text = os.environ.get(ENV, "") if value is None else value
    return [part.strip() for part in text.split(",") if part.strip()]


def load_plugins(specs: Iterable[str] | str | None = None) -> list[ModuleType]:
    """Import every plugin (default: the entries of EDGEPROF_PLUGINS); returns the modules in order.

    A plugin that is missing or fails while it is imported (a syntax error, an exception, a registration
    clash) is a PluginError naming the entry and what went wrong."""
    entries = plugin_specs(specs) if isinstance(specs, str) or specs is None else list(specs)
    modules = []
    for spec in entries:
        try:
            modules.append(agent_plugins.import_plugin(spec, one_file=False))
        except agent_plugins.PluginError as e:
            raise PluginError(f"{ENV}: {e}") from e
    return modules


__all__ = ["ENV", "PluginError", "is_path", "load_plugins", "module_name_for", "plugin_specs"]
