"""The start record: which start of a job folder owns it, so that a retried start cannot start it twice.

A host that loses the link right after sending a start cannot tell whether the board ran it, so it sends
the same start again with the same token. The first runner records the token in ``runner.json``; a second
runner for that folder, with any token, finds the name taken and leaves before touching a lock, a status or
a result, so it can never report the first one's job as failed.
"""

import json
import os
import re
import socket

from .protocol import utc_now_iso

START_RECORD = "runner.json"
START_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class AlreadyStarted(Exception):
    """The job folder already records a start (runner.json); this runner changed nothing."""


def read_start_record(folder):
    """runner.json of a job folder as a dict, or None when absent or unreadable."""
    try:
        with open(os.path.join(folder, START_RECORD), encoding="utf-8") as f:
            record = json.load(f)
        return record if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None


def claim_start(folder, token):
    """Record {token, pid, parent_pid, host, started_at} in folder/runner.json, once per job folder.

    The record is written whole to a private file and published with link(), which fails when the name
    exists: a reader never sees half a record, and of two racing runners exactly one wins. The record
    stays after the job ends, so a start retried late still finds it. Raises AlreadyStarted otherwise.
    """
    if not START_TOKEN.match(token or ""):
        raise ValueError(f"start token {token!r}: expected 1 to 64 of A-Z a-z 0-9 _ -")
    path = os.path.join(folder, START_RECORD)
    record = {
        "token": token,
        "pid": os.getpid(),
        "parent_pid": os.getppid(),  # the host's wrapper, which writes exit_status after this runner ends
        "host": socket.gethostname(),
        "started_at": utc_now_iso(),
    }
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, sort_keys=True)  # one key a line: the host's shell reads it with sed
        f.write("\n")
    try:
        _publish_once(tmp, path)
    except FileExistsError:
        owner = read_start_record(folder) or {}
        which = "with this start token" if owner.get("token") == token else "under another start token"
        raise AlreadyStarted(
            f"job folder {folder} was already started {which} by pid {owner.get('pid')} on host "
            f"{owner.get('host')} (since {owner.get('started_at')}); this runner changed nothing"
        ) from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    return record


def _publish_once(tmp, path):
    """Give tmp's content the name path, or raise FileExistsError when path exists."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (FAT on an SD card): an exclusive create, then the content
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "wb") as f, open(tmp, "rb") as src:
            f.write(src.read())
