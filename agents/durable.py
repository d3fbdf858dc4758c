"""The runner's durable files: the lock that keeps two runners off one results file (and one board), the
append-and-fsync of each result line, the repair of a line cut by a crash, and the atomic status.json.

They are apart from agents/runner.py, which drives workers and signals, because these are the pieces the
"nothing measured is ever lost" promise rests on, and they are tested on their own.
"""

import json
import os
import socket
import time

from .protocol import read_results, utc_now_iso

STALE_EMPTY_LOCK_S = 30.0


class RunnerError(Exception):
    """Base class of runner errors."""


class LockError(RunnerError):
    """Another runner holds the results file."""



# ---------------------------------------------------------------------------------------------------------
# lock


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


class ResultsLock:
    """out_path + ".lock", created with O_CREAT|O_EXCL and holding {"pid", "host", "started_at"}.

    A lock left by a dead process on this host is taken over; one from another host (a shared disk)
    cannot be checked and is refused with instructions.
    """

    def __init__(self, path, purpose="results file is locked", holder="another runner is writing it"):
        self.path = path
        self.purpose = purpose
        self.holder = holder
        self.held = False

    def read_owner(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                owner = json.load(f)
            return owner if isinstance(owner, dict) else None
        except (OSError, ValueError):
            return None

    def _is_stale(self, owner):
        if owner is None:  # empty or corrupt: a runner died between create and write, or a stray file
            try:
                return time.time() - os.path.getmtime(self.path) > STALE_EMPTY_LOCK_S
            except OSError:
                return True
        pid = owner.get("pid")
        return owner.get("host") == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid)

    def acquire(self):
        for attempt in (0, 1):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.read_owner()
                if attempt == 0 and self._is_stale(owner):
                    try:
                        os.unlink(self.path)
                    except FileNotFoundError:
                        pass
                    continue
                who = "an unknown process"
                if owner:
                    who = "pid {} on host {} (since {})".format(
                        owner.get("pid"), owner.get("host"), owner.get("started_at")
                    )
                raise LockError(
                    f"{self.purpose} by {who}: {self.holder}. If no runner is running, delete {self.path}"
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started_at": utc_now_iso()}, f)
                f.flush()
                os.fsync(f.fileno())
            self.held = True
            return self
        raise LockError(f"could not take over the stale lock {self.path}")

    def release(self):
        if not self.held:
            return
        owner = self.read_owner()
        if owner is None or owner.get("pid") == os.getpid():
            try:
                os.unlink(self.path)
            except OSError:
                pass
        self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


# ---------------------------------------------------------------------------------------------------------
# results file


def repair_results(path):
    """Cut a partial last line (a crash mid-append) so the next append starts on a fresh line."""
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
                f.flush()
                os.fsync(f.fileno())
                return True
    except FileNotFoundError:
        pass
    return False


def done_task_ids(path, job_id):
    """task_ids of this job that already have a line in the results file."""
    return {r.get("task_id") for r in read_results(path) if r.get("job_id") == job_id}


def append_line(path, line):
    """Append one line and make it durable before the next task starts."""
    new = not os.path.exists(path)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())
    if new:
        _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_status(path, status):
    """status.json, replaced atomically so a reader never sees half of it."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(status, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
