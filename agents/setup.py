"""Optional board setup before a job: `nvpmodel -m N` and `jetson_clocks`, through `sudo -n`.

Asked for by the job's `setup` block ({"nvpmodel_mode": int or null, "jetson_clocks": bool}); nothing
runs unless asked. Each command has a timeout, stdin is /dev/null (so sudo never waits for a password
and nvpmodel's reboot question gets EOF), and nothing here fails the job: a refused sudo, a missing
binary or a non-Jetson machine becomes a recorded skip and a warning, and the job measures the board
as it is. The record {requested, applied, skipped_reason, actions, before, after} goes into every
result's environment, before/after holding `nvpmodel -q` and `jetson_clocks --show` as parsed.
"""

import os
import shutil

from .board import NOT_JETSON, board_snapshot, run_command, tail_text
from .jetson_sysfs import is_jetson
from .protocol import DEFAULT_SETUP

SETUP_TIMEOUT_S = 60.0  # nvpmodel -m reprograms clocks and cores; jetson_clocks takes a few seconds
SUDO_REFUSED = ("password is required", "a terminal is required", "may not run sudo", "not allowed to")


def _sudo_fix(paths):
    return (
        "allow them without a password, e.g. /etc/sudoers.d/edgeprof with "
        "`<user> ALL=(root) NOPASSWD: {}` (edit with visudo -f)".format(", ".join(paths))
    )


def _run_action(name, argv, timeout_s, used_sudo, fix):
    """One setup command -> {"action", "argv", "rc", "ok", "output", "reason"}."""
    rc, out, why = run_command(argv, timeout_s)
    action = {
        "action": name,
        "argv": argv,
        "rc": rc,
        "ok": False,
        "output": tail_text(out, 500),
        "reason": None,
    }
    if why:
        action["reason"] = why
    elif rc == 0:
        action["ok"] = True
    elif used_sudo and any(s in out for s in SUDO_REFUSED):
        action["reason"] = f"sudo -n refused ({tail_text(out, 120)}): {fix}"
    else:
        action["reason"] = "{} exited with {}: {}".format(name, rc, tail_text(out, 200) or "no output")
    return action


def apply_setup(setup, root="/", timeout_s=SETUP_TIMEOUT_S, which=None, euid=None):
    """Apply the job's setup block. Returns (record, warnings); never raises.

    record: {"requested", "applied" (every asked action succeeded), "skipped_reason" (why not, or None),
    "actions" [{action, argv, rc, ok, output, reason}], "before", "after" ({nvpmodel, jetson_clocks,
    reasons} snapshots, None when nothing ran)}. which and euid are injectable for tests.
    """
    requested = dict(DEFAULT_SETUP)
    requested.update(setup or {})
    record = {
        "requested": requested,
        "applied": False,
        "skipped_reason": None,
        "actions": [],
        "before": None,
        "after": None,
    }
    warnings = []
    mode = requested["nvpmodel_mode"]
    wanted = []
    if mode is not None:
        wanted.append("nvpmodel")
    if requested["jetson_clocks"]:
        wanted.append("jetson_clocks")
    if not wanted:
        record["skipped_reason"] = "not requested"
        return record, warnings
    try:
        _apply(record, wanted, mode, root, timeout_s, which, euid)
    except Exception as exc:  # noqa: BLE001 - setup never fails the job
        record["skipped_reason"] = f"setup failed: {type(exc).__name__}: {exc}"
    if not record["applied"]:
        warnings.append(
            "board setup ({}) not applied: {}; measured in the board's current state".format(
                ", ".join(wanted), record["skipped_reason"]
            )
        )
    after = (record["after"] or {}).get("nvpmodel")
    ran = any(a["ok"] and a["action"].startswith("nvpmodel") for a in record["actions"])
    if ran and after and after.get("id") is not None and after["id"] != mode:
        warnings.append(
            "nvpmodel reports mode {} ({}) after setup, the job asked for {}".format(
                after["id"], after["mode"], mode
            )
        )
    return record, warnings


def _apply(record, wanted, mode, root, timeout_s, which, euid):
    if not is_jetson(root):
        record["skipped_reason"] = NOT_JETSON
        return
    which = which or shutil.which
    exes = {"nvpmodel": which("nvpmodel"), "jetson_clocks": which("jetson_clocks")}
    sudo = which("sudo")
    if euid is None:
        euid = os.geteuid() if hasattr(os, "geteuid") else None
    if sudo:
        prefix = [sudo, "-n"]
    elif euid == 0:
        prefix = []
    else:
        record["skipped_reason"] = "no sudo on PATH and not running as root"
        return
    fix = _sudo_fix([p for p in (exes["nvpmodel"], exes["jetson_clocks"]) if p])
    record["before"] = board_snapshot(exes["nvpmodel"], exes["jetson_clocks"], sudo, min(timeout_s, 10.0))
    reasons = []
    for name in wanted:
        exe = exes[name]
        if exe is None:
            reason = f"{name} not found on PATH"
            record["actions"].append(
                {"action": name, "argv": None, "rc": None, "ok": False, "output": "", "reason": reason}
            )
            reasons.append(reason)
            continue
        argv = prefix + ([exe, "-m", str(mode)] if name == "nvpmodel" else [exe])
        label = f"nvpmodel -m {mode}" if name == "nvpmodel" else "jetson_clocks"
        action = _run_action(label, argv, timeout_s, bool(prefix), fix)
        record["actions"].append(action)
        if not action["ok"]:
            reasons.append(action["reason"])
    record["after"] = board_snapshot(exes["nvpmodel"], exes["jetson_clocks"], sudo, min(timeout_s, 10.0))
    record["applied"] = not reasons
    record["skipped_reason"] = "; ".join(reasons) or None
