"""Device configs: one TOML file per board, validated early so a typo never reaches a board.

Every error names the file, the key and what is wrong (``ConfigError``); the CLI turns it into exit 2.
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

from agents.protocol import DEFAULT_PROTOCOL

CONFIG_DIR = Path(__file__).resolve().parent.parent / "device_configs"
KINDS = ("jetson", "cpu", "gpu")
TRANSPORTS = ("local", "ssh")
BACKENDS = ("onnxruntime", "tensorrt", "torch", "debug")
PRECISIONS = ("fp32", "fp16", "int8")
METERS = ("auto", "ina3221", "tegrastats", "nvml", "rapl", "none")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
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
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Meter:
    kind: str = "none"
    rail: str | None = None
    rate_hz: float = 100.0
    idle_s: float = 2.0


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

    def task_options(self) -> dict[str, Any]:
        """Backend options sent with every task of this device."""
        opts: dict[str, Any] = dict(self.runtime.options)
        if self.runtime.backend == "onnxruntime":
            opts.update(
                providers=list(self.runtime.providers),
                intra_op_threads=self.runtime.intra_op_threads,
                inter_op_threads=self.runtime.inter_op_threads,
            )
        return opts

    def meter_settings(self) -> dict[str, Any]:
        return {"kind": self.meter.kind, "rail": self.meter.rail, "rate_hz": self.meter.rate_hz,
                "idle_s": self.meter.idle_s}

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


SCHEMA: dict[str, dict[str, Check]] = {
    "": {"name": (lambda v: _is_str(v) and bool(NAME_RE.match(v)),
                  "a name of letters, digits, '.', '_' or '-' (at most 64)"),
         "kind": _one_of(KINDS), "description": STR},
    "connection": {"transport": _one_of(TRANSPORTS), "host": STR, "port": PORT, "user": STR,
                   "identity_file": STR, "known_hosts": STR, "workdir": STR, "python": STR,
                   "reconnect_max_s": NONNEG_NUM},
    "runtime": {"backend": _one_of(BACKENDS), "precision": _one_of(PRECISIONS), "providers": STR_LIST,
                "intra_op_threads": NONNEG_INT, "inter_op_threads": NONNEG_INT, "options": TABLE},
    "meter": {"kind": _one_of(METERS), "rail": STR, "rate_hz": POS_NUM, "idle_s": NONNEG_NUM},
    "setup": {"nvpmodel_mode": NONNEG_INT, "jetson_clocks": BOOL},
    "protocol": {"warmup_min_runs": NONNEG_INT, "warmup_min_s": NONNEG_NUM, "min_runs": POS_INT,
                 "max_runs": POS_INT, "target_rel_ci": POS_NUM, "confidence": (
                     lambda v: _is_num(v) and 0.5 <= v < 1, "a number in [0.5, 1)"),
                 "max_time_s": POS_NUM, "timeout_s": POS_NUM, "thermal_max_c": POS_NUM,
                 "thermal_zones": STR_LIST, "thermal_wait_max_s": NONNEG_NUM, "thermal_poll_s": POS_NUM,
                 "layer_profile_runs": NONNEG_INT},
}
assert set(SCHEMA["protocol"]) <= set(DEFAULT_PROTOCOL), "config protocol keys must exist in the agent"


def _check_table(source: str, section: str, table: dict[str, Any]) -> None:
    allowed = SCHEMA[section]
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


def _check_backend_options(source: str, backend: str, options: dict[str, Any]) -> None:
    """runtime.options names must be options of the backend: a typo fails here, not on the board.

    The backend class is imported without its runtime (agents import tensorrt/torch lazily).
    """
    from agents.backends import BACKENDS

    known = dict(getattr(BACKENDS.get(backend), "OPTIONS", {}))
    known.pop("providers", None)  # set by [runtime] keys, not options
    for key in options:
        if key not in known:
            import difflib
            hint = difflib.get_close_matches(key, list(known), n=1)
            more = f"did you mean '{hint[0]}'?" if hint else f"known: {', '.join(sorted(known))}"
            raise ConfigError(f"{source}: runtime.options.{key}: the {backend} backend has no such option ({more})")


def parse_config(data: dict[str, Any], source: str = "<config>", path: Path | None = None) -> DeviceConfig:
    """Validate a parsed TOML document and build a DeviceConfig."""
    _check_table(source, "", data)
    for section in ("connection", "runtime", "meter", "setup", "protocol"):
        _check_table(source, section, data.get(section, {}))
    for key in ("name", "kind"):
        if key not in data:
            raise ConfigError(f"{source}: {key}: required key is missing")
    conn = dict(data.get("connection", {}))
    if conn.get("transport", "local") == "ssh" and not conn.get("host"):
        raise ConfigError(f"{source}: connection.host: required when transport = 'ssh'")
    proto = dict(data.get("protocol", {}))
    lo = proto.get("min_runs", DEFAULT_PROTOCOL["min_runs"])
    hi = proto.get("max_runs", DEFAULT_PROTOCOL["max_runs"])
    if lo > hi:
        raise ConfigError(f"{source}: protocol.min_runs: {lo} is larger than protocol.max_runs ({hi})")
    rt = dict(data.get("runtime", {}))
    _check_backend_options(source, rt.get("backend", "onnxruntime"), rt.get("options", {}))
    if "providers" in rt:
        rt["providers"] = tuple(rt["providers"])
    return DeviceConfig(
        name=data["name"], kind=data["kind"], path=path, description=data.get("description", ""),
        connection=Connection(**conn), runtime=Runtime(**rt), meter=Meter(**data.get("meter", {})),
        setup=Setup(**data.get("setup", {})), protocol=proto,
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


def resolve_device(name_or_path: str) -> DeviceConfig:
    """A device is a name in the config folders or a path to a TOML file."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or os.sep in name_or_path:
        return load_config(p)
    for d in config_dirs():
        f = d / f"{name_or_path}.toml"
        if f.exists():
            cfg = load_config(f)
            if cfg.name != name_or_path:
                raise ConfigError(f"{f}: name: {cfg.name!r} does not match the file name {name_or_path!r}")
            return cfg
    import difflib
    known = list(list_configs())
    hint = difflib.get_close_matches(name_or_path, known, n=1)
    more = f"; did you mean '{hint[0]}'?" if hint else ""
    raise ConfigError(f"unknown device {name_or_path!r}: no {name_or_path}.toml in "
                      f"{', '.join(str(d) for d in config_dirs())}{more} (known: {', '.join(known)})")
