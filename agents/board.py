"""Jetson board state: nvpmodel, jetson_clocks, integrated GPU, EMC, merged into every environment.

Pure parsers for the text of `nvpmodel -q` and `jetson_clocks --show` (board-formats.md 3.3, 3.4), the
commands that print them, and collect_board_state, which joins them with the sysfs readers (sysfs.py,
jetson_sysfs.py). Nothing here raises for a board that lacks something: what cannot be read is None,
with the reason in `board_reasons`. Commands run only on the real root ("/"),
with a timeout. Units are in the key names: CPU clocks in kHz, GPU and EMC clocks in Hz.
"""

import os
import re
import shutil
import subprocess

from .jetson_sysfs import (
    is_jetson,
    jetpack_for_l4t,
    read_emc,
    read_gpu_devfreq,
    read_igpu,
    read_l4t_release,
    read_soc,
)
from .sysfs import natural_key, read_board_model, read_cpufreq, read_thermal_zones

COMMAND_TIMEOUT_S = 5.0
NOT_JETSON = "not a Jetson (no /etc/nv_tegra_release)"
FAKE_ROOT = "commands are not run under a fake root"


_NVPM_RE = re.compile(r"^NVPM\s+(WARN|ERROR|VERB|INFO)\b\s*:?\s*(.*)$")
_POWER_MODEL_RE = re.compile(r"POWER_MODEL:\s*ID=(\d+)\s+NAME=(\S+)")
_PM_DEFAULT_RE = re.compile(r"PM_CONFIG:\s*DEFAULT=([^\s(]+)\((\d+)\)")
_KV_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)")
_CPU_LINE_RE = re.compile(r"^(cpu\d+):\s*(.*)$")
_ENGINE_LINE_RE = re.compile(r"^([A-Z][A-Z0-9_]*):\s+(.*)$")
MAX_MESSAGES = 20


# ---------------------------------------------------------------------------------------------------------
# pure parsers


def parse_nvpmodel_query(text):
    """`nvpmodel -q [--verbose]` output -> {"mode", "id", "fan_mode", "messages", ...} or None.

    The three meaningful lines are `NV Fan Mode:quiet` (no space after the colon; absent without a fan
    profile), `NV Power Mode: MAXN` and the bare mode id. `NVPM WARN/ERROR` lines (e.g. "Error opening
    /sys/kernel/nvpmodel_emc_cap/emc_iso_cap: 13" without root, "fan mode is not set!" on Nano) are kept
    in messages, not treated as failure. --verbose adds `POWER_MODEL: ID=n NAME=x` lines (-> modes) and
    `PM_CONFIG: DEFAULT=x(n)` (-> default). None when there is no power-mode line.
    """
    mode = mode_id = fan = default = None
    messages = []
    modes = {}
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line:
            continue
        pm = _POWER_MODEL_RE.search(line)
        if pm:
            modes[int(pm.group(1))] = pm.group(2)
        d = _PM_DEFAULT_RE.search(line)
        if d:
            default = {"mode": d.group(1), "id": int(d.group(2))}
        m = _NVPM_RE.match(line)
        if m:
            if m.group(1) in ("WARN", "ERROR") and len(messages) < MAX_MESSAGES:
                messages.append(line)
            continue
        if line.startswith("NV Fan Mode:"):
            fan = line.split(":", 1)[1].strip() or None
        elif line.startswith("NV Power Mode:"):
            mode = line.split(":", 1)[1].strip() or None
        elif line.isdigit() and mode is not None and mode_id is None:
            mode_id = int(line)
    if mode is None:
        return None
    out = {"mode": mode, "id": mode_id, "fan_mode": fan, "messages": messages}
    if modes:
        out["modes"] = {str(k): v for k, v in sorted(modes.items())}
    if default:
        out["default"] = default
    return out


def _value(text):
    try:
        return int(text)
    except ValueError:
        return text


def _kv(text):
    """ "Online=1 Governor=schedutil MinFreq=102000" -> {"Online": 1, "Governor": "schedutil", ...}."""
    return {k: _value(v) for k, v in _KV_RE.findall(text or "")}


def _freqs(kv, unit):
    return {
        f"min_{unit}": kv.get("MinFreq"),
        f"max_{unit}": kv.get("MaxFreq"),
        f"cur_{unit}": kv.get("CurrentFreq"),
    }


def parse_jetson_clocks_show(text):
    """`jetson_clocks --show` output -> dict; never raises (unknown lines go to "other").

    Keys: soc_family, machine, online_cpus, cluster_switching, cpus {cpuN: {online, governor, min_khz,
    max_khz, cur_khz, idle_states}}, gpu {min_hz, max_hz, cur_hz}, emc {min_hz, max_hz, cur_hz,
    freq_override}, engines {DLA0_CORE: {online, min_hz, ...}}, fan {raw, ...key=value}, nvpmodel,
    active_gpu_tpcs, clocks_locked (EMC FreqOverride=1, which `jetson_clocks` sets; None when not
    printed), other. A tokenizer of key=value pairs copes with the double spaces after `cpu0:`, trailing
    spaces, the R28 `Gonvernor` typo and fields that differ by release.
    """
    out = {
        "soc_family": None,
        "machine": None,
        "online_cpus": None,
        "cluster_switching": None,
        "cpus": {},
        "gpu": None,
        "emc": None,
        "engines": {},
        "fan": None,
        "nvpmodel": None,
        "active_gpu_tpcs": None,
        "clocks_locked": None,
        "other": [],
    }
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("SOC family:"):
            rest = line[len("SOC family:") :]
            soc, _, machine = rest.partition("Machine:")
            out["soc_family"] = soc.strip() or None
            out["machine"] = machine.strip() or None
            continue
        if line.startswith("Online CPUs:"):
            out["online_cpus"] = line.split(":", 1)[1].strip()
            continue
        if line.startswith("CPU Cluster Switching:"):
            out["cluster_switching"] = line.split(":", 1)[1].strip()
            continue
        if line.startswith("NV Power Mode:"):
            out["nvpmodel"] = line.split(":", 1)[1].strip() or None
            continue
        if line.startswith("Active GPU TPCs:"):
            out["active_gpu_tpcs"] = _value(line.split(":", 1)[1].strip())
            continue
        m = _CPU_LINE_RE.match(line)
        if m:
            body, _, idle = m.group(2).partition("IdleStates:")
            kv = _kv(body)
            online = kv.get("Online")
            entry = {
                "online": None if online is None else online == 1,
                "governor": kv.get("Governor", kv.get("Gonvernor")),
            }
            entry.update(_freqs(kv, "khz"))
            entry["idle_states"] = _kv(idle) or None
            out["cpus"][m.group(1)] = entry
            continue
        if line.startswith(("GPU ", "EMC ")) and "Freq=" in line:
            kv = _kv(line)
            entry = _freqs(kv, "hz")
            if line.startswith("GPU "):
                out["gpu"] = entry
            else:
                override = kv.get("FreqOverride")
                entry["freq_override"] = None if override is None else override == 1
                out["emc"] = entry
            continue
        if line.lower().startswith("fan"):
            fan = {"raw": line}
            fan.update(_kv(line))
            out["fan"] = fan
            continue
        m = _ENGINE_LINE_RE.match(line)
        if m and "Freq=" in m.group(2):
            kv = _kv(m.group(2))
            online = kv.get("Online")
            entry = {"online": None if online is None else online == 1}
            entry.update(_freqs(kv, "hz"))
            out["engines"][m.group(1)] = entry
            continue
        out["other"].append(line)
    out["cpus"] = {k: out["cpus"][k] for k in sorted(out["cpus"], key=natural_key)}
    if out["emc"] is not None and out["emc"]["freq_override"] is not None:
        out["clocks_locked"] = out["emc"]["freq_override"]
    return out


# ---------------------------------------------------------------------------------------------------------
# commands


def run_command(argv, timeout_s=COMMAND_TIMEOUT_S):
    """(exit code, stdout+stderr text, reason): reason is None when the command ran to its end.

    A command that cannot start or runs past timeout_s gives (None, partial output, reason); it is
    killed. stdin is /dev/null, so a command that asks a question (nvpmodel's reboot prompt) gets EOF.
    """
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            universal_newlines=True,
        )
    except OSError as exc:
        return None, "", f"cannot run {argv[0]}: {exc.strerror or exc}"
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return None, out or "", "{} did not finish within {:g} s (killed)".format(" ".join(argv), timeout_s)
    return proc.returncode, out or "", None


def tail_text(text, n=300):
    text = (text or "").strip()
    return text if len(text) <= n else "..." + text[-n:]


def query_nvpmodel(exe, timeout_s=COMMAND_TIMEOUT_S):
    """(state, reason) from running `exe -q` (no root needed; NVPM ERROR lines are tolerated)."""
    rc, out, why = run_command([exe, "-q"], timeout_s)
    if why:
        return None, why
    state = parse_nvpmodel_query(out)
    if state is None:
        return None, "nvpmodel -q exited with {} and printed no power mode: {}".format(
            rc, tail_text(out) or "nothing"
        )
    return state, None


def read_nvpmodel(root="/", timeout_s=COMMAND_TIMEOUT_S):
    """(state, reason): `nvpmodel -q` when on a real Jetson root and the binary exists."""
    if (root or "/") != "/":
        return None, FAKE_ROOT
    if not is_jetson(root):
        return None, NOT_JETSON
    exe = shutil.which("nvpmodel")
    if exe is None:
        return None, "nvpmodel not found on PATH"
    return query_nvpmodel(exe, timeout_s)


def query_jetson_clocks(exe, sudo=None, timeout_s=COMMAND_TIMEOUT_S):
    """(state, reason) from `[sudo -n] exe --show` (it reads root-only files)."""
    argv = ([sudo, "-n"] if sudo else []) + [exe, "--show"]
    rc, out, why = run_command(argv, timeout_s)
    if why:
        return None, why
    if rc != 0:
        return None, "{} exited with {}: {}".format(" ".join(argv), rc, tail_text(out) or "no output")
    state = parse_jetson_clocks_show(out)
    if not state["cpus"] and state["gpu"] is None and state["emc"] is None:
        return None, "jetson_clocks --show printed nothing recognisable: " + tail_text(out)
    return state, None


def read_jetson_clocks(root="/", timeout_s=COMMAND_TIMEOUT_S):
    """(state, reason): `jetson_clocks --show`, run only as root on a real Jetson root."""
    if (root or "/") != "/":
        return None, FAKE_ROOT
    if not is_jetson(root):
        return None, NOT_JETSON
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None, "jetson_clocks --show needs root (the setup block records it through sudo -n)"
    exe = shutil.which("jetson_clocks")
    if exe is None:
        return None, "jetson_clocks not found on PATH"
    return query_jetson_clocks(exe, None, timeout_s)


# ---------------------------------------------------------------------------------------------------------
# everything


def collect_board_state(root="/"):
    """The board part of the environment: l4t, jetpack, board_model, soc, nvpmodel, cpufreq, gpu_devfreq,
    igpu, emc, jetson_clocks, thermal_c, and board_reasons {key: why it is None}. Never raises."""
    reasons = {}

    def safe(key, fn, *args):
        try:
            value = fn(*args)
        except Exception as exc:  # noqa: BLE001 - one odd node must not cost a measurement
            reasons[key] = f"reader failed: {type(exc).__name__}: {exc}"
            return None
        if isinstance(value, tuple):
            value, why = value
            if value is None and why:
                reasons[key] = why
        return value

    l4t = safe("l4t", read_l4t_release, root)
    state = {
        "l4t": l4t,
        "jetpack": jetpack_for_l4t(l4t),
        "board_model": safe("board_model", read_board_model, root),
        "soc": safe("soc", read_soc, root),
        "nvpmodel": None,
        "cpufreq": safe("cpufreq", read_cpufreq, root),
        "gpu_devfreq": safe("gpu_devfreq", read_gpu_devfreq, root),
        "igpu": None,
        "emc": None,
        "jetson_clocks": None,
        "thermal_c": safe("thermal_c", read_thermal_zones, root),
    }
    if is_jetson(root):
        state["nvpmodel"] = safe("nvpmodel", read_nvpmodel, root)
        state["igpu"] = safe("igpu", read_igpu, root)
        state["emc"] = safe("emc", read_emc, root)
        state["jetson_clocks"] = safe("jetson_clocks", read_jetson_clocks, root)
    else:
        for key in ("nvpmodel", "igpu", "emc", "jetson_clocks"):
            reasons[key] = NOT_JETSON
    state["board_reasons"] = reasons
    return state


def board_snapshot(nvpmodel_exe=None, jetson_clocks_exe=None, sudo=None, timeout_s=COMMAND_TIMEOUT_S):
    """{"nvpmodel", "jetson_clocks", "reasons"} through the given binaries (setup's before/after)."""
    out = {"nvpmodel": None, "jetson_clocks": None, "reasons": {}}
    if nvpmodel_exe:
        out["nvpmodel"], why = query_nvpmodel(nvpmodel_exe, timeout_s)
        if why:
            out["reasons"]["nvpmodel"] = why
    if jetson_clocks_exe:
        out["jetson_clocks"], why = query_jetson_clocks(jetson_clocks_exe, sudo, timeout_s)
        if why:
            out["reasons"]["jetson_clocks"] = why
    return out
