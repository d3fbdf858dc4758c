"""Device configs: one TOML file per board, validated early so a typo never reaches a board.

Every error names the file, the key and what is wrong (``ConfigError``); the CLI turns it into exit 2.
What exists is asked of the registries, never listed here: transports (profiler.transports), backends
with their precisions and options, and meters with their options (agents.backends, agents.meters). A
device's `[agent] plugins` are imported first, so a backend or meter from a plugin file validates like
a built-in one; the same files travel to the board with the agent (profiler.transports.base.agent_files).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import agents
from agents.backends import BACKENDS, BackendOptionError
from agents.meters import METERS
from agents.options import as_option, option_defaults, option_problems
from agents.plugins import PluginError, import_plugin, plugin_file
from agents.protocol import DEFAULT_PROTOCOL
from agents.registry import RegistryError
from profiler.transports.registry import TRANSPORTS

CONFIG_DIR = Path(__file__).resolve().parent.parent / "device_configs"
KINDS = ("jetson", "cpu", "gpu")
AGENT_ROOT = Path(agents.__file__).resolve().parent
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# A name, IPv4/IPv6 address (with a %zone) or ~/.ssh/config alias; \Z, not $, which would also match
# before a trailing newline ("board\n").
HOST_RE = re.compile(r"[A-Za-z0-9_.:%][A-Za-z0-9_.:%-]*\Z")
# Keys that would hold a secret: refused outright, keys or an agent authenticate.
SECRET_KEYS = {"password", "passphrase", "secret", "token"}


class ConfigError(ValueError):
    """A device config is missing, unreadable or invalid; the message names file and key."""


@dataclass(frozen=True)
class Connection:
    transport: str = "local"
    host: str | None = None
    port: int | None = None  # None: from ~/.ssh/config, else 22
    user: str | None = None  # None: from ~/.ssh/config, else the local user
    identity_file: str | None = None
    known_hosts: str | None = None
    workdir: str = ""
    python: str | None = None
    reconnect_max_s: float = 120.0  # how long a dropped SSH link is retried before the run gives up


@dataclass(frozen=True)
class Runtime:
    backend: str = "onnxruntime"
    precision: str = "fp32"
    # the backend's options as configured: [runtime.options], plus [runtime] keys that name an option
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, name: str) -> Any:
        """The configured value of a backend option, else the backend's declared default."""
        if name in self.options:
            return self.options[name]
        declared = getattr(BACKENDS.get(self.backend), "OPTIONS", {})
        if name not in declared:
            raise KeyError(f"the {self.backend} backend has no option {name!r}")
        return as_option(declared[name]).default


@dataclass(frozen=True)
class Meter:
    kind: str = "none"
    rail: str | None = None
    rate_hz: float = 100.0
    idle_s: float = 2.0
    options: dict[str, Any] = field(default_factory=dict)  # the meter's own (PowerMeter.OPTIONS)


@dataclass(frozen=True)
class Agent:
    plugins: tuple[Path, ...] = ()  # plugin files: imported here, shipped with the agent, imported there


@dataclass(frozen=True)
class Setup:
    nvpmodel_mode: int | None = None
    jetson_clocks: bool = False


@dataclass(frozen=True)
class DeviceConfig:
    name: str
    kind: str
    path: Path | None
    description: str = ""
    connection: Connection = Connection()
    runtime: Runtime = Runtime()
    meter: Meter = Meter()
    setup: Setup = Setup()
    protocol: dict[str, Any] = field(default_factory=dict)
    agent: Agent = Agent()

    def setting(self, batch: int = 1) -> dict[str, Any]:
        """The setting this config measures under (backend, precision, batch): the rows of the dataset that
        its own measurements add to, and that a search verifying on it must read."""
        return {"backend": self.runtime.backend, "precision": self.runtime.precision, "batch": batch}

    def task_options(self) -> dict[str, Any]:
        """Backend options sent with every task of this device (the backend fills in the rest)."""
        return dict(self.runtime.options)

    def meter_settings(self) -> dict[str, Any]:
        return {"kind": self.meter.kind, "rail": self.meter.rail, "rate_hz": self.meter.rate_hz,
                "idle_s": self.meter.idle_s, "options": dict(self.meter.options)}

    def workdir(self) -> Path:
        """Local work folder (for the local transport): relative paths live under the user cache."""
        wd = Path(os.path.expanduser(self.connection.workdir or self.name))
        if not wd.is_absolute():
            base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgeprof"
            wd = base / wd
        return wd


# --- validation helpers -------------------------------------------------------------------------------

def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


Check = tuple[Callable[[Any], bool], str]

STR: Check = (_is_str, "a string")
BOOL: Check = (lambda v: isinstance(v, bool), "true or false")
PORT: Check = (lambda v: _is_int(v) and 0 < v < 65536, "an integer port 1-65535")
NONNEG_INT: Check = (lambda v: _is_int(v) and v >= 0, "an integer >= 0")
POS_INT: Check = (lambda v: _is_int(v) and v > 0, "an integer > 0")
POS_NUM: Check = (lambda v: _is_num(v) and v > 0, "a number > 0")
NONNEG_NUM: Check = (lambda v: _is_num(v) and v >= 0, "a number >= 0")
STR_LIST: Check = (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings")
TABLE: Check = (lambda v: isinstance(v, dict), "a table")


def _one_of(options: tuple[str, ...]) -> Check:
    return (lambda v: v in options, "one of " + ", ".join(repr(o) for o in options))


# Names (transport, backend, precision, meter) are checked against the registries after these tables.
SCHEMA: dict[str, dict[str, Check]] = {
    "": {"name": (lambda v: _is_str(v) and bool(NAME_RE.match(v)),
                  "a name of letters, digits, '.', '_' or '-' (at most 64)"),
         "kind": _one_of(KINDS), "description": STR},
    "connection": {"transport": STR, "host": STR, "port": PORT, "user": STR,
                   "identity_file": STR, "known_hosts": STR, "workdir": STR, "python": STR,
                   "reconnect_max_s": NONNEG_NUM},
    # and, as shorthand for [runtime.options], any option of the chosen backend
    "runtime": {"backend": STR, "precision": STR, "options": TABLE},
    "meter": {"kind": STR, "rail": STR, "rate_hz": POS_NUM, "idle_s": NONNEG_NUM, "options": TABLE},
    "agent": {"plugins": STR_LIST},
    "setup": {"nvpmodel_mode": NONNEG_INT, "jetson_clocks": BOOL},
    "protocol": {"warmup_min_runs": NONNEG_INT, "warmup_min_s": NONNEG_NUM, "min_runs": POS_INT,
                 "max_runs": POS_INT, "target_rel_ci": POS_NUM, "confidence": (
                     lambda v: _is_num(v) and 0.5 <= v < 1, "a number in [0.5, 1)"),
                 "max_time_s": POS_NUM, "timeout_s": POS_NUM, "thermal_max_c": POS_NUM,
                 "thermal_zones": STR_LIST, "thermal_wait_max_s": NONNEG_NUM, "thermal_poll_s": POS_NUM,
                 "layer_profile_runs": NONNEG_INT},
}
assert set(SCHEMA["protocol"]) <= set(DEFAULT_PROTOCOL), "config protocol keys must exist in the agent"


def _check_table(source: str, section: str, table: dict[str, Any], extra: dict[str, Check] | None = None) -> None:
    allowed = {**SCHEMA[section], **(extra or {})}
    prefix = f"{section}." if section else ""
    for key, value in table.items():
        if section == "" and key in SCHEMA:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: [{key}] must be a table")
            continue
        if key.lower() in SECRET_KEYS:
            raise ConfigError(f"{source}: {prefix}{key}: secrets do not belong in config files; "
                              "use an SSH key or ssh-agent")
        if key not in allowed:
            import difflib
            hint = difflib.get_close_matches(key, list(allowed), n=1)
            more = f" (did you mean '{hint[0]}'?)" if hint else f" (known: {', '.join(sorted(allowed))})"
            raise ConfigError(f"{source}: {prefix}{key}: unknown key{more}")
        ok, what = allowed[key]
        if not ok(value):
            raise ConfigError(f"{source}: {prefix}{key}: expected {what}, got {value!r}")


def _hint(name: str, known: list[str]) -> str:
    import difflib
    close = difflib.get_close_matches(name, known, n=1)
    return f"did you mean '{close[0]}'?" if close else f"known: {', '.join(sorted(known)) or 'none'}"


def _load_plugins(source: str, specs: list[str], path: Path | None) -> tuple[Path, ...]:
    """Import the [agent] plugins (so that what they register is known here) and return their files."""
    base = str(path.resolve().parent) if path is not None else None
    files: list[Path] = []
    for i, spec in enumerate(specs):
        try:
            files.append(Path(plugin_file(spec, base)))
            import_plugin(spec, base)
        except PluginError as e:
            raise ConfigError(f"{source}: agent.plugins[{i}]: {e}") from None
    names = [f.name for f in files]
    for f in files:
        if names.count(f.name) > 1:
            raise ConfigError(f"{source}: agent.plugins: two plugins are named {f.name}; they share a folder on "
                              "the board, so rename one")
    return tuple(files)


def _registered(source: str, key: str, registry: Any, name: str) -> Any:
    """The class registered under name, or a ConfigError naming the key and the known names."""
    if name not in registry:
        more = ("; a backend or meter from outside the package is named in [agent] plugins"
                if key != "connection.transport" else "; a transport from outside the package is loaded "
                "through EDGEPROF_PLUGINS")
        raise ConfigError(f"{source}: {key}: {registry.unknown_message(name)}{more}")
    try:
        return registry.get(name)
    except RegistryError as e:
        raise ConfigError(f"{source}: {key}: {e}") from None


def _shipped(source: str, key: str, name: str, cls: Any, plugins: tuple[Path, ...]) -> None:
    """A backend or meter must reach the board: built into the agent, or in a plugin file shipped with it."""
    module = sys.modules.get(getattr(cls, "__module__", ""))
    file = getattr(module, "__file__", None)
    if file is None:
        return
    f = Path(file).resolve()
    if f.is_relative_to(AGENT_ROOT) or f in {p.resolve() for p in plugins}:
        return
    raise ConfigError(f"{source}: {key}: {name!r} is registered by {f}, which is not in [agent] plugins, so the "
                      "agent on the board would not have it; add it there")


def _check_options(source: str, key: str, label: str, declared: dict[str, Any], given: dict[str, Any]) -> None:
    for name in given:
        if name not in declared:
            raise ConfigError(f"{source}: {key}.{name}: the {label} has no such option "
                              f"({_hint(name, list(declared))})")
    problems = option_problems(declared, given, label)
    if problems:
        raise ConfigError(f"{source}: {key}: {problems[0]}")


def _parse_runtime(source: str, rt: dict[str, Any], plugins: tuple[Path, ...]) -> Runtime:
    """[runtime]: the backend from the registry, a precision it declares, options it declares.

    Keys of [runtime] besides backend, precision and options are shorthand for options of the backend.
    """
    backend = rt.get("backend", Runtime.backend)
    if not _is_str(backend):
        raise ConfigError(f"{source}: runtime.backend: expected a string, got {backend!r}")
    cls = _registered(source, "runtime.backend", BACKENDS, backend)
    _shipped(source, "runtime.backend", backend, cls, plugins)
    declared = dict(getattr(cls, "OPTIONS", {}))
    _check_table(source, "runtime", rt, extra={k: (lambda v: True, "") for k in declared})
    precision = rt.get("precision", Runtime.precision)
    precisions = tuple(getattr(cls, "PRECISIONS", ()))
    if precision not in precisions:
        raise ConfigError(f"{source}: runtime.precision: the {backend} backend offers "
                          f"{', '.join(repr(p) for p in precisions) or 'no precision'}, got {precision!r}")
    shorthand = {k: v for k, v in rt.items() if k not in SCHEMA["runtime"]}
    options = dict(rt.get("options", {}))
    both = sorted(set(shorthand) & set(options))
    if both:
        raise ConfigError(f"{source}: runtime.{both[0]}: set both in [runtime] and in [runtime.options]; keep one")
    _check_options(source, "runtime.options", f"{backend} backend", declared, options)
    _check_options(source, "runtime", f"{backend} backend", declared, shorthand)
    options.update(shorthand)
    try:  # the backend's own finer checks (constructing one imports no runtime, by the Backend contract)
        cls({**option_defaults(declared), **options})
    except BackendOptionError as e:
        raise ConfigError(f"{source}: runtime.options: {e}") from None
    except Exception:  # noqa: BLE001, S110 - anything else is the board's to judge, where the runtime is
        pass
    return Runtime(backend=backend, precision=precision, options=options)


def _parse_meter(source: str, m: dict[str, Any], plugins: tuple[Path, ...]) -> Meter:
    kind = m.get("kind", Meter.kind)
    cls = _registered(source, "meter.kind", METERS, kind)
    _shipped(source, "meter.kind", kind, cls, plugins)
    _check_options(source, "meter.options", f"{kind} meter", dict(getattr(cls, "OPTIONS", {})), m.get("options", {}))
    return Meter(**m)


def parse_config(data: dict[str, Any], source: str = "<config>", path: Path | None = None) -> DeviceConfig:
    """Validate a parsed TOML document and build a DeviceConfig.

    [agent] plugins are imported first (relative paths are relative to the config file's folder).
    """
    _check_table(source, "", data)
    for section in ("connection", "meter", "setup", "protocol", "agent"):
        _check_table(source, section, data.get(section, {}))
    for key in ("name", "kind"):
        if key not in data:
            raise ConfigError(f"{source}: {key}: required key is missing")
    plugins = _load_plugins(source, list(data.get("agent", {}).get("plugins", [])), path)
    conn = dict(data.get("connection", {}))
    transport = conn.get("transport", Connection.transport)
    if transport not in TRANSPORTS:
        raise ConfigError(f"{source}: connection.transport: {TRANSPORTS.unknown_message(transport)}")
    if transport == "ssh" and not conn.get("host"):
        raise ConfigError(f"{source}: connection.host: required when transport = 'ssh'")
    if "host" in conn and not HOST_RE.match(conn["host"]):
        raise ConfigError(f"{source}: connection.host: {conn['host']!r} is not a host name, address or ~/.ssh/config "
                          "alias (letters, digits and . _ : % - only, not starting with -; the user goes in "
                          "connection.user)")
    proto = dict(data.get("protocol", {}))
    lo = proto.get("min_runs", DEFAULT_PROTOCOL["min_runs"])
    hi = proto.get("max_runs", DEFAULT_PROTOCOL["max_runs"])
    if lo > hi:
        raise ConfigError(f"{source}: protocol.min_runs: {lo} is larger than protocol.max_runs ({hi})")
    return DeviceConfig(
        name=data["name"], kind=data["kind"], path=path, description=data.get("description", ""),
        connection=Connection(**conn), runtime=_parse_runtime(source, dict(data.get("runtime", {})), plugins),
        meter=_parse_meter(source, dict(data.get("meter", {})), plugins),
        setup=Setup(**data.get("setup", {})), protocol=proto, agent=Agent(plugins=plugins),
    )


def load_config(path: str | os.PathLike[str]) -> DeviceConfig:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read device config: {e.strerror or e}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    return parse_config(data, source=str(p), path=p)


def config_dirs() -> list[Path]:
    """Where device names are looked up, first match wins: ./device_configs, user config, built-ins."""
    dirs = [Path.cwd() / "device_configs"]
    xdg = os.environ.get("XDG_CONFIG_HOME", str(Path.home() / ".config"))
    dirs.append(Path(xdg) / "edgeprof" / "devices")
    dirs.append(CONFIG_DIR)
    seen: list[Path] = []
    for d in dirs:
        if d.resolve() not in [s.resolve() for s in seen]:
            seen.append(d)
    return seen


def list_configs() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in reversed(config_dirs()):
        for f in sorted(d.glob("*.toml")):
            found[f.stem] = f
    return dict(sorted(found.items()))


def find_config(name_or_path: str) -> Path | None:
    """The TOML file a device name or path stands for (first match in the config folders), or None."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or os.sep in name_or_path:
        return p
    return next((f for f in (d / f"{name_or_path}.toml" for d in config_dirs()) if f.exists()), None)


def resolve_device(name_or_path: str) -> DeviceConfig:
    """A device is a name in the config folders or a path to a TOML file."""
    f = find_config(name_or_path)
    if f is not None:
        cfg = load_config(f)
        if f.stem == name_or_path and cfg.name != name_or_path:  # looked up by name: the file must agree
            raise ConfigError(f"{f}: name: {cfg.name!r} does not match the file name {name_or_path!r}")
        return cfg
    import difflib
    known = list(list_configs())
    hint = difflib.get_close_matches(name_or_path, known, n=1)
    more = f"; did you mean '{hint[0]}'?" if hint else ""
    raise ConfigError(f"unknown device {name_or_path!r}: no {name_or_path}.toml in "
                      f"{', '.join(str(d) for d in config_dirs())}{more} (known: {', '.join(known)})")
