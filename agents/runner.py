"""The manager: runs each task of a job in a fresh worker process and appends one result line per task.

Results are appended, flushed and fsync'd as soon as a task ends, so a lost SSH session, a crash or a
power cut loses nothing already measured, and a rerun resumes where it stopped. A lock file keeps two
runners off one results file; SIGTERM/SIGINT stop the current worker and leave no partial line. A start
token recorded once in the job folder (runner.json) lets a host retry a start whose reply was lost: the
second runner finds the token taken and leaves without touching the job.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from .backends import BACKENDS
from .durable import (  # tests and callers import ResultsLock, LockError and repair_results from here
    LockError,
    ResultsLock,
    RunnerError,
    append_line,
    done_task_ids,
    repair_results,
    write_status,
)
from .environment import collect_environment
from .meters import METERS
from .protocol import error_result, load_job, result_to_line, utc_now_iso
from .start import claim_start
from .worker import prepare_job, read_result_file

AGENTS_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASS_ENV_NAMES = ("PATH", "HOME", "LANG", "LANGUAGE", "LD_LIBRARY_PATH", "TMPDIR", "USER", "LOGNAME")
PASS_ENV_PREFIXES = ("LC_", "OMP_", "MKL_", "OPENBLAS_", "CUDA_", "ORT_")
STDERR_TAIL_LINES = 15
STDERR_TAIL_CHARS = 2000


class BoardBusy(LockError):
    """Another job holds the board's lock: this one measured nothing (`agents run` exits EXIT_BOARD_BUSY)."""


class Interrupted(RunnerError):
    """SIGINT or SIGTERM stopped the job; exit_code is 130 or 143 (128 + signal number)."""

    def __init__(self, signum):
        self.signum = signum
        self.exit_code = 128 + int(signum)
        RunnerError.__init__(self, f"interrupted by signal {signum}")


# ---------------------------------------------------------------------------------------------------------
# workers


def worker_environ(environ=None, extra_names=()):
    """A minimal, recorded environment for workers (pyperf's create_environ): no stray tuning variables.

    PYTHONPATH puts this agent first; an inherited PYTHONPATH follows it, because on Jetsons it is
    sometimes how TensorRT's Python bindings are found.
    """
    environ = os.environ if environ is None else environ
    env = {}
    for key, value in environ.items():
        if key in PASS_ENV_NAMES or key in extra_names or key.startswith(PASS_ENV_PREFIXES):
            env[key] = value
    paths = [AGENTS_PARENT] + [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("PATH", os.defpath)
    return env


def _tail(fileobj):
    try:
        fileobj.seek(0)
        text = fileobj.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    tail = "\n".join(lines[-STDERR_TAIL_LINES:])
    return tail[-STDERR_TAIL_CHARS:]


def _signal_name(signum):
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _JobRun:
    """State of one run_job call: the current worker and any stop request from a signal."""

    def __init__(self, job, job_path, out_path, python, root, extra_env):
        self.job = job
        self.job_path = os.path.abspath(job_path)
        self.out_path = out_path
        self.python = python
        self.root = root
        self.extra_env = tuple(extra_env or ())
        self.proc = None
        self.stop_signum = None
        self._environment = None
        self.job_state = None  # worker.prepare_job's record (setup, idle power), passed to every worker

    # -- signals
    def on_signal(self, signum, frame):
        self.stop_signum = signum
        self.kill_worker()

    def kill_worker(self):
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the worker leads its own process group
            except (ProcessLookupError, PermissionError):
                pass

    def check_stop(self):
        if self.stop_signum is not None:
            raise Interrupted(self.stop_signum)

    def environment(self):
        if self._environment is None:
            try:
                self._environment = collect_environment(self.root)
            except Exception:  # noqa: BLE001
                self._environment = {}
            if self.job_state is not None:
                self._environment["setup"] = self.job_state.get("setup")
                self._environment["idle_power"] = self.job_state.get("idle")
        return self._environment

    # -- one task
    def run_task(self, task, idle_power_mw):
        """Run one task in a fresh worker; always returns a result dict (Timeout/WorkerCrashed on failure)."""
        safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", task["task_id"])[:40]
        fd, tmp = tempfile.mkstemp(
            prefix=f".worker-{safe_id}-", suffix=".json", dir=os.path.dirname(self.out_path)
        )
        os.close(fd)
        os.unlink(tmp)  # the worker creates it atomically; its absence means "no result"
        argv = [self.python, "-m", "agents", "worker", "--job", self.job_path, "--task", task["task_id"]]
        argv += ["--out", tmp]
        if idle_power_mw is not None:
            argv += ["--idle-mw", repr(float(idle_power_mw))]
        if self.job_state is not None:
            argv += ["--job-state", result_to_line(self.job_state)]
        if (self.root or "/") != "/":
            argv += ["--root", os.path.abspath(self.root)]
        timeout_s = self.job["protocol"]["timeout_s"]
        started_at = utc_now_iso()
        t0 = time.monotonic()
        try:
            with tempfile.TemporaryFile() as log:
                rc, timed_out = self._spawn_and_wait(argv, log, timeout_s)
                self.check_stop()  # a result from an interrupted task is never written
                wall = time.monotonic() - t0
                if timed_out:
                    msg = f"worker exceeded timeout_s={timeout_s:g} s and was killed"
                    return self._error(task, "Timeout", msg, started_at, wall)
                result = read_result_file(tmp)
                if result is not None and result.get("task_id") == task["task_id"]:
                    return result
                if rc < 0:
                    msg = f"worker was killed by {_signal_name(-rc)}"
                    if -rc == signal.SIGKILL:
                        msg += " (out of memory?)"
                else:
                    msg = f"worker exited with code {rc} without writing a result"
                tail = _tail(log)
                if tail:
                    msg += "; last output:\n" + tail
                return self._error(task, "WorkerCrashed", msg, started_at, wall)
        finally:
            for path in (tmp, tmp + ".part"):
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def _spawn_and_wait(self, argv, log, timeout_s):
        """(exit status, timed out?) of a worker in its own session, so that killing its group takes its
        children too and a terminal's Ctrl-C reaches only the runner."""
        try:
            self.proc = subprocess.Popen(
                argv,
                cwd=AGENTS_PARENT,
                env=worker_environ(extra_names=self.extra_env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            if self.stop_signum is not None:  # a signal that came while the worker was being started
                self.kill_worker()
            try:
                return self.proc.wait(timeout=timeout_s), False
            except subprocess.TimeoutExpired:
                self.kill_worker()
                return self.proc.wait(), True
        finally:
            self.kill_worker()
            self.proc = None

    def _error(self, task, exc_type, message, started_at, wall_s):
        return error_result(
            task,
            self.job,
            exc_type,
            message,
            environment=self.environment(),
            started_at=started_at,
            finished_at=utc_now_iso(),
            wall_s=wall_s,
        )


def run_job(
    job_path,
    out_path=None,
    resume=True,
    python=sys.executable,
    on_result=None,
    root="/",
    extra_env=(),
    board_lock=None,
    start_token=None,
):
    """Run every task of job_path not yet in out_path (default: results.jsonl beside the job).

    on_result(result, progress) is called after each line is written, progress being
    {"done", "total", "skipped"}. Returns a summary dict. Raises JobError (invalid job), LockError
    (another runner), Interrupted (SIGINT/SIGTERM; no partial line, lock released).

    board_lock, when given, is a second lock file for the whole board: two jobs measuring at once on
    one board would disturb each other's timings, so the second one refuses to start.

    start_token, when given, is claimed in runner.json beside out_path before any lock is taken; a job
    folder that already records a start raises AlreadyStarted and is left exactly as it was.
    """
    job = load_job(job_path, backends=BACKENDS.names(), meters=METERS.names())
    if out_path is None:
        out_path = os.path.join(os.path.dirname(os.path.abspath(job_path)), "results.jsonl")
    out_path = os.path.abspath(out_path)
    status_path = os.path.join(os.path.dirname(out_path), "status.json")
    if start_token is not None:
        claim_start(os.path.dirname(out_path), start_token)
    run = _JobRun(job, job_path, out_path, python, root, extra_env)
    total = len(job["tasks"])
    summary = {
        "job_id": job["job_id"],
        "out_path": out_path,
        "total": total,
        "skipped": 0,
        "ran": 0,
        "ok": 0,
        "error": 0,
        "missing": [],
    }

    lock = ResultsLock(out_path + ".lock")
    board = None
    if board_lock:
        board = ResultsLock(board_lock, "board is busy", "another job is measuring on this board")
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, run.on_signal)
    state = "running"
    try:
        if board is not None:
            try:
                board.acquire()
            except LockError as exc:
                raise BoardBusy(str(exc)) from None
        lock.acquire()
        run.check_stop()
        repair_results(out_path)
        done = done_task_ids(out_path, job["job_id"]) if resume else set()
        todo = [t for t in job["tasks"] if t["task_id"] not in done]
        summary["skipped"] = total - len(todo)
        finished = summary["skipped"]

        def status(current):
            write_status(
                status_path,
                {
                    "job_id": job["job_id"],
                    "results": os.path.basename(out_path),
                    "state": state,
                    "done": finished,
                    "total": total,
                    "skipped": summary["skipped"],
                    "current": current,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "updated_at": utc_now_iso(),
                },
            )

        status(None)
        idle_power_mw = None
        if todo:  # board setup, then idle power: once per job, before the first task
            run.job_state = prepare_job(job, root)
            idle_power_mw = run.job_state["idle"]["power_mw"]
        for task in todo:
            run.check_stop()
            status(task["task_id"])
            result = run.run_task(task, idle_power_mw)
            append_line(out_path, result_to_line(result))
            finished += 1
            summary["ran"] += 1
            summary["ok" if result.get("status") == "ok" else "error"] += 1
            if on_result is not None:
                on_result(result, {"done": finished, "total": total, "skipped": summary["skipped"]})
        run.check_stop()
        have = done_task_ids(out_path, job["job_id"])
        summary["missing"] = [t["task_id"] for t in job["tasks"] if t["task_id"] not in have]
        state = "finished"
        status(None)
        return summary
    except Interrupted:
        state = "interrupted"
        try:
            status(None)
        except Exception:  # noqa: BLE001, S110
            pass
        raise
    finally:
        run.kill_worker()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        lock.release()
        if board is not None:
            board.release()
