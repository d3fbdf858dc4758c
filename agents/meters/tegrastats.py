"""tegrastats: a pure line parser, and a meter that runs `tegrastats --interval MS` and reads its lines.

The grammar differs by release (board-formats.md 1.1-1.5): JP5+ lines start with a timestamp and put
"mW" after each rail value; JP4 lines have neither. Engines appear and disappear (NVDEC, APE) or print
"off" (JP6); GR3D_FREQ can carry a bracketed per-GPC array (`0%@[1300,1300]`) or no load at all (Thor);
temperatures use -256C for a powered-off zone and, on JP7, two values; JP7 rails carry three values.
Without root on JP4, EMC_FREQ and GR3D_FREQ have no @MHz and some boards print no rails at all. So the
parser walks whitespace tokens with small patterns and keeps what it does not know in "unparsed",
rather than one big regex that half-matches and silently drops fields.

Why one module over 450 lines: the parser and the meter share the release-by-release knowledge above;
split, each half would need the other's notes to be read.
"""

import re
import shutil
import subprocess
import tempfile
import threading
import time

from ..options import Option
from ..sysfs import read_board_model, under
from .base import MeterError, MeterUnavailable, PowerMeter, PowerTrace
from .rails import is_rail_label, sum_rail_name, total_rail
from .sampler import achieved_rate_hz

TEMP_OFFLINE_C = -256.0  # tegrastats' value for a powered-off zone
# tegrastats' own floor is unconfirmed; jtop reports instability at 0.1 s (jetson-stats #414), so no faster
TEGRASTATS_MIN_INTERVAL_MS = 100
FIRST_LINE_TIMEOUT_S = 5.0

_TIMESTAMP_RE = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
_MB_PAIR_RE = re.compile(r"^(\d+)/(\d+)([kMG]B)$")
_IRAM_RE = re.compile(r"^(\d+)/(\d+)kB\(lfb$")
_LFB_RE = re.compile(r"^(\d+)x(\d+)([kMG]B)\)$")
_SIZE_RE = re.compile(r"^(\d+)([kMG]B)\)$")
_LOAD_FREQ_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)%)?(?:@(\d+|\[[\d,]*\]))?$")
_RAIL_RE = re.compile(r"^(\d+)(?:mW)?((?:/\d+(?:mW)?)+)$")
_TEMP_RE = re.compile(r"^([^@\s]+)@(-?\d+(?:\.\d+)?)C((?:/-?\d+(?:\.\d+)?C)*)$")
_INT_RE = re.compile(r"^\d+$")
_CPU_ENTRY_RE = re.compile(r"^(\d+(?:\.\d+)?)%(?:@(\d+))?$")
_CPU_LIST_RE = re.compile(r"^\[([^\]]*)\](?:@(\d+))?$")


def _num(text):
    value = float(text)
    return int(value) if value.is_integer() else value


def _freqs(text):
    """ "76" -> (76, [76]); "[1300,1300]" -> (1300, [1300, 1300]); "[]" -> (None, [])."""
    if text is None:
        return None, None
    if text.startswith("["):
        values = [int(v) for v in text.strip("[]").split(",") if v.strip().isdigit()]
        return (max(values) if values else None), values
    return int(text), [int(text)]


def _cpu_list(token):
    m = _CPU_LIST_RE.match(token)
    if not m:
        return None
    common = int(m.group(2)) if m.group(2) else None  # very old form: cpu [17%,13%]@408
    cores = []
    for entry in m.group(1).split(","):
        entry = entry.strip()
        if entry == "off":
            cores.append({"online": False, "load_pct": None, "freq_mhz": None})
            continue
        e = _CPU_ENTRY_RE.match(entry)
        if e:
            freq = int(e.group(2)) if e.group(2) else common
            cores.append({"online": True, "load_pct": _num(e.group(1)), "freq_mhz": freq})
        else:  # jtop's emulator prints "..%@345"; keep the core, unknown values
            cores.append({"online": None, "load_pct": None, "freq_mhz": None, "raw": entry})
    return cores


def parse_tegrastats_line(line):
    """One tegrastats line as a dict; never raises on odd input.

    Keys: timestamp (JP5+ or None), ram, swap, iram ({used, total, unit, lfb...}), cpu (list of
    {online, load_pct, freq_mhz}), emc and gr3d ({load_pct, freq_mhz, freqs_mhz}), freqs (every other
    NAME X%@Y, e.g. GR3D2_FREQ, VIC_FREQ), engines ({name: MHz or "off"}), mts, temps_c ({name: C, None
    when -256 = off}), rails ({name: {cur_mw, avg_mw, values_mw}}; all in mW with or without the unit),
    skipped_rails (NC channels) and unparsed tokens.
    """
    out = {
        "timestamp": None,
        "ram": None,
        "swap": None,
        "iram": None,
        "cpu": None,
        "emc": None,
        "gr3d": None,
        "freqs": {},
        "engines": {},
        "mts": None,
        "temps_c": {},
        "rails": {},
        "skipped_rails": [],
        "unparsed": [],
    }
    text = (line or "").replace("\x00", "").strip()
    m = _TIMESTAMP_RE.match(text)
    if m:
        out["timestamp"] = m.group(1)
        text = text[m.end() :]
    tokens = text.split()
    i = 0
    n = len(tokens)

    def peek(k=1):
        return tokens[i + k] if i + k < n else None

    while i < n:
        tok = tokens[i]
        nxt = peek()
        if tok in ("RAM", "SWAP") and nxt and _MB_PAIR_RE.match(nxt):
            a, b, unit = _MB_PAIR_RE.match(nxt).groups()
            block = {"used": int(a), "total": int(b), "unit": unit}
            i += 2
            if tok == "RAM" and peek(0) == "(lfb" and peek(1) and _LFB_RE.match(peek(1)):
                blocks, size, sunit = _LFB_RE.match(peek(1)).groups()
                block.update({"lfb_blocks": int(blocks), "lfb_size": int(size), "lfb_unit": sunit})
                i += 2
            elif tok == "SWAP" and peek(0) == "(cached" and peek(1) and _SIZE_RE.match(peek(1)):
                size, sunit = _SIZE_RE.match(peek(1)).groups()
                block.update({"cached": int(size), "cached_unit": sunit})
                i += 2
            out[tok.lower()] = block
            continue
        if tok == "IRAM" and nxt and _IRAM_RE.match(nxt):
            a, b = _IRAM_RE.match(nxt).groups()
            block = {"used": int(a), "total": int(b), "unit": "kB"}
            i += 2
            if peek(0) and _SIZE_RE.match(peek(0)):
                size, sunit = _SIZE_RE.match(peek(0)).groups()
                block.update({"lfb_size": int(size), "lfb_unit": sunit})
                i += 1
            out["iram"] = block
            continue
        if tok.lower() == "cpu" and nxt and nxt.startswith("["):
            cores = _cpu_list(nxt)
            if cores is not None:
                out["cpu"] = cores
                i += 2
                continue
        if tok.startswith("[") and out["cpu"] is None:  # a fragment that starts at the CPU list
            cores = _cpu_list(tok)
            if cores is not None:
                out["cpu"] = cores
                i += 1
                continue
        if tok == "MTS" and nxt == "fg" and i + 4 < n + 1:
            try:
                out["mts"] = {
                    "fg_pct": int(tokens[i + 2].rstrip("%")),
                    "bg_pct": int(tokens[i + 4].rstrip("%")),
                }
                i += 5
                continue
            except (IndexError, ValueError):
                pass
        t = _TEMP_RE.match(tok)
        if t:
            name, value, _ = t.groups()
            c = float(value)
            out["temps_c"][name] = None if c <= TEMP_OFFLINE_C else c
            i += 1
            continue
        if nxt is not None and re.match(r"^[A-Za-z][A-Za-z0-9_]*$", tok):
            r = _RAIL_RE.match(nxt)
            if r:
                values = [int(r.group(1))] + [int(v.replace("mW", "")) for v in r.group(2).split("/") if v]
                if is_rail_label(tok):
                    name = tok
                    k = 1
                    while name in out["rails"]:
                        name = f"{tok}_{k}"
                        k += 1
                    out["rails"][name] = {"cur_mw": values[0], "avg_mw": values[1], "values_mw": values}
                else:
                    out["skipped_rails"].append(tok)
                i += 2
                continue
            if nxt == "off":
                out["engines"][tok] = "off"
                i += 2
                continue
            if "%" in nxt or nxt.startswith("@"):
                lf = _LOAD_FREQ_RE.match(nxt)
                if lf:
                    freq, freqs = _freqs(lf.group(2))
                    load = _num(lf.group(1)) if lf.group(1) is not None else None
                    block = {"load_pct": load, "freq_mhz": freq, "freqs_mhz": freqs}
                    if tok == "EMC_FREQ":
                        out["emc"] = block
                    elif tok == "GR3D_FREQ":
                        out["gr3d"] = block
                    else:
                        out["freqs"][tok] = block
                    i += 2
                    continue
            if _INT_RE.match(nxt):
                out["engines"][tok] = int(nxt)
                i += 2
                continue
        out["unparsed"].append(tok)
        i += 1
    return out


# ---------------------------------------------------------------------------------------------------------
# meter


def find_tegrastats(root="/"):
    """Path of the tegrastats binary: on PATH, else <root>/usr/bin/tegrastats; None when absent."""
    exe = shutil.which("tegrastats")
    if exe:
        return exe
    for path in ("/usr/bin/tegrastats", "/usr/sbin/tegrastats"):
        full = under(root, path)
        if shutil.which(full):
            return full
    return None


NOT_FOUND = "tegrastats not found on PATH or in /usr/bin (not a Jetson)"


class TegrastatsMeter(PowerMeter):
    """Runs `tegrastats --interval MS` for the life of one start()/stop() and keeps each line's rails.

    Each line is stamped with perf_counter when it arrives (tegrastats prints no sub-second time), so the
    trace lags the true reading by up to the pipe latency. The rail is chosen as for the INA3221 meter
    (rails.total_rail on the first line's rails). tegrastats' "avg" is a running average since it
    started, so only "cur" is used.
    """

    name = "tegrastats"

    @classmethod
    def available(cls, root="/"):
        return None if find_tegrastats(root) else NOT_FOUND

    @classmethod
    def probe(cls, root="/"):
        exe = find_tegrastats(root)
        return {
            "found": exe is not None,
            "available": exe is not None,
            "reason": None if exe else NOT_FOUND,
            "path": exe,
            "note": "rails are known only once it runs; some images print rails only for root",
        }

    OPTIONS = {  # noqa: RUF012 - a declaration, never mutated
        "exe": Option(None, "str", "path of the tegrastats binary; null: found on PATH or in /usr/bin"),
    }

    def __init__(self, rail=None, rate_hz=1.0, root="/", exe=None, board_model=None):
        PowerMeter.__init__(self, rail=rail, rate_hz=rate_hz, root=root)
        self.exe = exe or find_tegrastats(root)
        if self.exe is None:
            raise MeterUnavailable(NOT_FOUND)
        self.interval_ms = max(int(TEGRASTATS_MIN_INTERVAL_MS), round(1000.0 / rate_hz))
        self.board_model = board_model if board_model is not None else read_board_model(root)
        self._proc = None
        self._thread = None
        self._stderr = None
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._t = []
        self._p = []
        self._selected = None
        self._rail_name = None
        self._last_rate = None
        self._all_rails = []
        self.lines = 0
        self.errors = []

    def rails(self):
        return list(self._all_rails)

    def _choose(self, rails):
        """Pick the rails to sum from the first line's rails; sets rule and the trace's rail name."""
        names = list(rails)
        self._all_rails = names
        total, total_rule = total_rail(names, self.board_model)
        rail = self.rail
        if rail in (None, "", "total", "auto"):
            self._selected = [total] if total else names
            self.rule = total_rule
        elif rail == "sum":
            self._selected = names
            self.rule = "sum of every rail, as the job asked (rail = 'sum')"
        else:
            match = [n for n in names if n == rail] or [n for n in names if n.lower() == rail.lower()]
            if not match:
                raise MeterUnavailable(
                    "rail {!r} not in tegrastats' rails ({})".format(rail, ", ".join(names) or "none")
                )
            self._selected = match[:1]
            self.rule = (
                total_rule
                if match[0] == total
                else (
                    "{}: the rail the job asked for; not the board total ({})".format(
                        match[0], total or "the sum of the rails"
                    )
                )
            )
        self.rule += f"; from tegrastats 'cur' values every {self.interval_ms} ms"
        self._rail_name = self._selected[0] if len(self._selected) == 1 else sum_rail_name(self._selected)

    def _reader(self, stream):
        for line in iter(stream.readline, ""):
            t = time.perf_counter()
            try:
                parsed = parse_tegrastats_line(line)
            except Exception as exc:  # noqa: BLE001 - the parser should not raise; a reader never dies
                self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            rails = parsed["rails"]
            with self._arrived:
                self.lines += 1
                if not rails:
                    self.errors.append("a line without power rails")
                    self._arrived.notify_all()
                    continue
                if self._selected is None:
                    try:
                        self._choose(rails)
                    except MeterUnavailable as exc:
                        self.errors.append(str(exc))
                        self._selected = []
                if self._selected and all(n in rails for n in self._selected):
                    self._t.append(t)
                    self._p.append(float(sum(rails[n]["cur_mw"] for n in self._selected)))
                self._arrived.notify_all()
        with self._arrived:
            self._arrived.notify_all()

    def _wait_for(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0 or (
                    self._proc is not None and self._proc.poll() is not None and not self._thread_alive()
                ):
                    return predicate()
                self._arrived.wait(min(left, 0.1))
            return True

    def _thread_alive(self):
        return self._thread is not None and self._thread.is_alive()

    def _stderr_tail(self):
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode("utf-8", "replace").strip()[-500:]
        except (OSError, ValueError):
            return ""

    def start(self):
        with self._lock:
            self._t = []
            self._p = []
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives until the process ends
        try:
            self._proc = subprocess.Popen(
                [self.exe, "--interval", str(self.interval_ms)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                universal_newlines=True,
                bufsize=1,
            )
        except OSError as exc:
            self._cleanup()
            raise MeterUnavailable(f"cannot run {self.exe}: {exc.strerror or exc}") from exc
        self._thread = threading.Thread(
            target=self._reader, args=(self._proc.stdout,), name="edgeprof-tegrastats"
        )
        self._thread.daemon = True
        self._thread.start()
        timeout = max(FIRST_LINE_TIMEOUT_S, 3 * self.interval_ms / 1000.0)
        got = self._wait_for(
            lambda: bool(self._t) or self._selected == [] or (self.lines > 0 and not self._all_rails), timeout
        )
        if not got or not self._t:
            lines = self.lines
            errors = list(self.errors)
            tail = self._stderr_tail()
            self._terminate()
            if lines and "a line without power rails" in errors:
                raise MeterUnavailable(
                    "tegrastats prints no power rails here (on some images it reads the INA3221 only as root)"
                )
            if errors and self._selected == []:
                raise MeterUnavailable(errors[-1])
            msg = f"tegrastats gave no line within {timeout:.1f} s"
            if tail:
                msg += f"; stderr: {tail}"
            raise MeterError(msg)

    def stop(self):
        if self._proc is None:
            raise MeterError("tegrastats: stop() without start()")
        t_stop = time.perf_counter()
        # one more line after the window closes, so the trace brackets it
        self._wait_for(lambda: bool(self._t) and self._t[-1] > t_stop, 2.0 * self.interval_ms / 1000.0 + 1.0)
        self._terminate()
        with self._lock:
            t, p = list(self._t), list(self._p)
        self._last_rate = achieved_rate_hz(t)
        return PowerTrace(t, p, self._rail_name, self.rule)

    def samples_in(self, t0, t1):
        with self._lock:
            return sum(1 for t in self._t if t0 <= t <= t1)

    def _terminate(self):
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        if proc is not None and proc.stdout is not None:
            try:
                proc.stdout.close()
            except OSError:
                pass
        self._cleanup()

    def _cleanup(self):
        if self._stderr is not None:
            try:
                self._stderr.close()
            except OSError:
                pass
            self._stderr = None

    def close(self):
        self._terminate()

    def describe(self):
        out = PowerMeter.describe(self)
        out.update(
            {
                "rail": self._rail_name,
                "interval_ms": self.interval_ms,
                "achieved_rate_hz": self._last_rate,
                "rails_seen": list(self._all_rails),
                "lines": self.lines,
                "errors": self.errors[-3:],
            }
        )
        return out
