"""Plugin modules: backends and meters from outside the package, one file each.

A plugin is one Python file that registers what it adds when imported, e.g.

    from agents.backends import BACKENDS, Backend
    @BACKENDS.register("mine")
    class MyBackend(Backend): ...

A device config names it (`[agent] plugins`). The host imports it to check the config, and ships the file
with the agent (in the bundle's BUNDLE_DIR, counted in the agent's content hash); the agent imports every
file in its bundle's BUNDLE_DIR the first time a registry is asked (see Registry's `loader`), so no job
can use a name before the plugin has registered it. Plugins run on the board: Python 3.6, stdlib and
numpy at module level, like the agent itself.

Importing is idempotent by file: a file already imported, under any module name (by this module, as a
regular module, or through the host's EDGEPROF_PLUGINS, whose loader edgeprof.plugins is a thin wrapper over
this one), is not executed again.
"""

import hashlib
import importlib
import importlib.util
import os
import sys

BUNDLE_DIR = "edgeprof_agent_plugins"  # next to the `agents` package in a deployed agent


class PluginError(Exception):
    """A plugin cannot be found or imported; the message names it."""


def is_path(spec):
    """A .py file or anything with a path separator names a file; the rest are module names."""
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def _check_spec(spec):
    if not isinstance(spec, str) or not spec.strip():
        raise PluginError(f"a plugin is a .py path or a module name, got {spec!r}")


def _module_file(spec, one_file=True):
    """The .py file of module `spec`; None for a package or a non-source module unless one_file (then an error)."""
    try:
        found = importlib.util.find_spec(spec)
    except Exception as exc:  # ImportError, ValueError, or an error of a parent package's __init__
        raise PluginError(f"plugin {spec!r}: {type(exc).__name__}: {exc}") from exc
    if found is None:
        raise PluginError(f"plugin {spec!r}: no module of that name on sys.path (or give a path to the .py file)")
    is_source = found.submodule_search_locations is None and bool(found.origin) and found.origin.endswith(".py")
    if is_source:
        return os.path.abspath(found.origin)
    if not one_file:
        return None
    if found.submodule_search_locations is not None:
        raise PluginError(f"plugin {spec!r} is a package; a plugin is one module file (it is copied to boards)")
    raise PluginError(f"plugin {spec!r}: not a Python source file ({found.origin})")


def plugin_file(spec, base_dir=None):
    """The file of a plugin named by a path (relative to base_dir, ~ expanded) or a module name."""
    _check_spec(spec)
    if is_path(spec):
        path = os.path.abspath(os.path.join(base_dir or os.getcwd(), os.path.expanduser(spec)))
        if not os.path.isfile(path):
            raise PluginError(f"plugin {spec!r}: no such file {path}")
        if not path.endswith(".py"):
            raise PluginError(f"plugin {spec!r}: expected a .py file")
        return path
    return _module_file(spec)


def _imported(path):
    """The module already imported from this file, or None."""
    real = os.path.realpath(path)
    base = os.path.basename(real)
    for module in list(sys.modules.values()):
        f = getattr(module, "__file__", None)
        if f and os.path.basename(f) == base and os.path.realpath(f) == real:
            return module
    return None


def module_name_for(path):
    """A module name for a plugin file, unique per file (two plugins may share a file name)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    tag = hashlib.sha256(os.path.realpath(path).encode("utf-8")).hexdigest()[:8]
    return "edgeprof_plugin_{}_{}".format("".join(c if c.isalnum() else "_" for c in stem), tag)


def import_plugin_file(path, module_name=None):
    """Import a plugin file once and return its module; PluginError (with the cause) when it fails."""
    module = _imported(path)
    if module is not None:
        return module
    name = module_name or module_name_for(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin {path}: cannot be loaded as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up while it executes
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # a half-executed module never stays in sys.modules
        sys.modules.pop(name, None)
        if not isinstance(exc, Exception):
            raise
        raise PluginError(f"plugin {path} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def import_plugin(spec, base_dir=None, one_file=True):
    """Import a plugin named by a path or a module name (a module name keeps its own name); once per file.

    one_file=False (the host's EDGEPROF_PLUGINS, never shipped to boards) also accepts a package."""
    _check_spec(spec)
    if is_path(spec):
        return import_plugin_file(plugin_file(spec, base_dir))
    path = _module_file(spec, one_file)
    if path is not None and _imported(path) is not None:
        return import_plugin_file(path)
    try:
        return importlib.import_module(spec)
    except Exception as exc:
        where = f" ({path})" if path else ""
        raise PluginError(f"plugin {spec!r}{where} failed to import: {type(exc).__name__}: {exc}") from exc


def bundle_dir():
    """BUNDLE_DIR of the agent that is running (next to its `agents` package)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(here, BUNDLE_DIR)


_BUNDLED = {}  # file -> None (imported) or the error, once per process


def load_bundled(folder=None):
    """Import every plugin file shipped with this agent, once; returns {file: None or error text}.

    Never raises: a plugin that fails is reported (by Registry.unknown_message and `agents info`), and
    the other plugins and the built-ins stay usable.
    """
    folder = folder or bundle_dir()
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".py"))
    except OSError:
        names = []
    for n in names:
        path = os.path.join(folder, n)
        if path in _BUNDLED:
            continue
        _BUNDLED[path] = None
        try:
            import_plugin_file(path, f"{BUNDLE_DIR}_{n[:-3]}")
        except PluginError as exc:
            _BUNDLED[path] = str(exc)
    return {os.path.basename(k): v for k, v in _BUNDLED.items() if os.path.dirname(k) == folder}
